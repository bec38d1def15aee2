"""The "replay" backend: transcribe from encoder outputs a board already computed.

The user's on-device workflow today is ``neuronrt -m hw -a encoder.dla -i mel.bin -o
output.bin``: the DLA's output tensor, raw. Replay feeds each such file to the native decoder
as one 30-second window's encoder states (files in order: window 0 = audio 0-30 s, window 1 =
30-60 s, ...), so one command says whether the device's encoder output transcribes correctly:

    whisper-genio transcribe --encoder-output output.bin --model base
    whisper-genio transcribe --encoder-output w0.bin w1.bin --encoder-output-dtype int8 \\
        --scale 0.0213 --zero-point -4 --model base audio.wav   # audio too: compares with the CPU

Because each window's states are fixed, the seek pointer cannot move inside a window as
openai-whisper's loop does: every window is decoded whole (with the usual temperature
fallback and previous-text prompt) and the text after its last complete timestamp pair is kept
as a final segment ending at the window's end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

from . import _core
from .audio import HOP_LENGTH, N_FRAMES, SAMPLE_RATE, load_audio
from .backends import Availability, BackendSource, BackendSpec, register
from .bundle import DTYPES, LAYOUTS, QUANTIZED, TensorInfo, check_tensor, default_tensor
from .decoding import DecodingResult
from .errors import InvalidOptionError, ModelLoadError
from .options import split_transcribe_kwargs

if TYPE_CHECKING:
    from .model import Model


@dataclass(frozen=True)
class ReplayFormat:
    """What the bytes of a device output file are: dtype, quantization, layout ("ntc" =
    [1, 1500, d], Whisper's own; "nct" = [1, d, 1500])."""

    dtype: str = "float32"
    scale: Optional[float] = None
    zero_point: Optional[int] = None
    layout: str = "ntc"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InvalidOptionError(f"encoder output dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.layout not in LAYOUTS:
            raise InvalidOptionError(f"encoder output layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.dtype in QUANTIZED and self.scale is None:
            raise InvalidOptionError(f"{self.dtype} encoder outputs need their scale (and zero point): the "
                                     "quantization parameters of the DLA's output tensor")

    @classmethod
    def parse(cls, value: Any) -> "ReplayFormat":
        if isinstance(value, ReplayFormat):
            return value
        if isinstance(value, TensorInfo):
            return cls(value.dtype, value.scale, value.zero_point, value.layout or "ntc")
        if isinstance(value, Mapping):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise InvalidOptionError(f"encoder_output_format: unknown field(s) {', '.join(sorted(unknown))}")
            return cls(**{k: v for k, v in value.items() if v is not None})
        raise InvalidOptionError(f"encoder_output_format must be a dict or ReplayFormat, got {value!r}")

    def tensor(self, dims: Any) -> TensorInfo:
        t = default_tensor(dims, "output", self.dtype, self.scale, self.zero_point, self.layout)
        try:
            check_tensor(t, dims, "output", "encoder output")
        except ModelLoadError as e:
            raise InvalidOptionError(str(e)) from None
        return t


def _format_of(source: BackendSource) -> ReplayFormat:
    """Arguments win; else a bundle's DLA output description; else float32 [1, 1500, d]."""
    fmt = source.options.encoder_output_format
    if fmt is not None:
        return fmt
    art = source.artifact("dla")
    if art is not None:
        return ReplayFormat.parse(art[2])
    return ReplayFormat()


def _availability(source: Any) -> Availability:
    files = getattr(getattr(source, "options", None), "encoder_output", ())
    if not files:
        return Availability("replay", False, "no encoder output files given (encoder_output=['output.bin', ...])")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        return Availability("replay", False, f"encoder output file(s) not found: {', '.join(missing)}")
    return Availability("replay", True)


def _create(checkpoint: Any, pool: Any, *, source: BackendSource, **_options: Any) -> Any:
    t = _format_of(source).tensor(checkpoint.dims)
    return _core.ReplayEncoder(checkpoint.dims.to_dict(), list(source.options.encoder_output), t.native("output"))


register(BackendSpec("replay", "encoder states from a device's output.bin files (one per 30 s window)",
                     _availability, _create, auto=False), before="cpu")


def window_mel(samples: np.ndarray, windows: Any, index: int, convention: str, n_mels: int, pool: Any = None) -> np.ndarray:
    """Window `index`'s mel [n_mels, 3000] under one of two conventions:

    "transcribe": what ``transcribe`` feeds the encoder (openai-whisper's long-form loop): the
        log-mel of the whole recording, normalised by its global maximum, window i = frames
        [3000 i, 3000 (i + 1)), zero beyond the audio. ``whisper-genio mel`` writes these.
    "pad_or_trim": openai-whisper's single-window recipe, log_mel_spectrogram(pad_or_trim(chunk))
        of each 30-second chunk of audio on its own.
    """
    if convention == "transcribe":
        size = min(N_FRAMES, windows.content_frames - index * N_FRAMES)
        return windows.window(index * N_FRAMES, max(size, 0), pool)
    if convention == "pad_or_trim":
        from .audio import N_SAMPLES, pad_or_trim

        chunk = samples[index * N_SAMPLES:(index + 1) * N_SAMPLES]
        return _core.log_mel_spectrogram(pad_or_trim(chunk, N_SAMPLES), n_mels, 0, pool)
    raise InvalidOptionError(f"unknown mel convention {convention!r}: 'transcribe' or 'pad_or_trim'")


def compare_with_reference(states: np.ndarray, reference: Any, windows: Any, samples: np.ndarray, index: int,
                           size: int, pool: Any = None) -> dict[str, Any]:
    """Cosine and max |diff| of a device's states against the reference encoder's for the same
    window. The device's input may have been made either way (see window_mel): the
    "transcribe" convention is tried first, "pad_or_trim" too when that does not match."""
    best: dict[str, Any] = {}
    for convention in ("transcribe", "pad_or_trim"):
        ref = reference.encode(window_mel(samples, windows, index, convention, reference.dims.n_mels, pool))
        c = _cosine(states, ref)
        if not best or c > best["cosine"]:
            best = {"cosine": c, "max_abs_diff": float(np.abs(states - ref).max()), "mel_convention": convention}
        if c >= 0.99:
            break
    return best


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def transcribe_replay(model: "Model", audio: Any = None, *, reference: Any = None,
                      progress: Any = None, **kwargs: Any) -> dict:
    """Transcribes the replayed windows; openai-whisper's result shape plus "windows".

    audio (optional): the recording the device encoded; it bounds the last window's length and,
    with ``reference`` (a Model with a CPU encoder), each window's states are compared with the
    reference encoder's: result["windows"][i]["cosine"].
    """
    from .longform import decode_with_fallback, is_silence, resolve_language

    opts = split_transcribe_kwargs(kwargs)
    dims = model.dims
    encoder, decoder = model._encoder, model._decoder
    n_windows = encoder.window_count
    content_frames = None
    windows_mel = None
    if audio is not None:
        samples = load_audio(audio)
        windows_mel = _core.MelWindows(samples, dims.n_mels, model._pool)
        content_frames = windows_mel.content_frames
        needed = max(1, -(-content_frames // N_FRAMES))
        if needed != n_windows:
            raise InvalidOptionError(
                f"the audio is {content_frames * HOP_LENGTH / SAMPLE_RATE:.1f} s long: {needed} window(s) of 30 s, "
                f"but {n_windows} encoder output file(s) were given (one per window, in order)")
    input_stride = N_FRAMES // dims.n_audio_ctx
    time_precision = input_stride * HOP_LENGTH / SAMPLE_RATE
    timings = {"encoder": 0.0, "cross_kv": 0.0, "decoder": 0.0, "windows": 0, "decode_calls": 0}
    report: list[dict] = []

    decode_opts = opts.decode
    all_tokens: list[int] = []
    all_segments: list[dict] = []
    prompt_reset_since = 0
    initial_prompt_tokens: list[int] = []

    with model._lock:
        def set_window(i: int) -> None:
            encoder.select(i)
            t0 = time.perf_counter()
            timings["encoder"] += _core.encode_to_decoder(encoder, decoder)
            timings["cross_kv"] += time.perf_counter() - t0
            timings["windows"] += 1

        tokenizer, decode_opts = resolve_language(model, decode_opts, opts, lambda: set_window(0))
        language = decode_opts.language
        if opts.initial_prompt is not None:
            initial_prompt_tokens = tokenizer.encode(" " + opts.initial_prompt.strip())
            all_tokens.extend(initial_prompt_tokens)

        for i in range(n_windows):
            seek = i * N_FRAMES
            size = N_FRAMES if content_frames is None else min(N_FRAMES, content_frames - seek)
            time_offset = seek * HOP_LENGTH / SAMPLE_RATE
            duration = size * HOP_LENGTH / SAMPLE_RATE
            set_window(i)
            entry: dict[str, Any] = {"window": i, "file": encoder.files[i], "start": time_offset,
                                     "end": time_offset + duration}
            if reference is not None and windows_mel is not None:
                states = encoder.encode(np.zeros((dims.n_mels, N_FRAMES), np.float32))  # the replayed window
                entry.update(compare_with_reference(states, reference, windows_mel, samples, i, size, model._pool))
            report.append(entry)
            decode_opts = decode_opts.replace(prompt=all_tokens[prompt_reset_since:])
            result = decode_with_fallback(decoder, decode_opts, opts, tokenizer, dims, seek, timings)
            entry["text"] = ""
            if not is_silence(result, opts):
                current = _window_segments(result, tokenizer, seek, size, time_offset, duration, time_precision,
                                           input_stride)
                entry["text"] = "".join(s["text"] for s in current)
                if opts.verbose:
                    from .writers import format_timestamp

                    for s in current:
                        print(f"[{format_timestamp(s['start'])} --> {format_timestamp(s['end'])}] {s['text']}")
                all_segments.extend({"id": k, **s} for k, s in enumerate(current, start=len(all_segments)))
                all_tokens.extend(t for s in current for t in s["tokens"])
                if not opts.condition_on_previous_text or result.temperature > 0.5:
                    prompt_reset_since = len(all_tokens)
            if progress is not None:
                progress(i + 1, n_windows)

    model.last_timings = timings
    return {
        "text": tokenizer.decode(all_tokens[len(initial_prompt_tokens):]),
        "segments": all_segments,
        "language": language,
        "windows": report,
    }


def _window_segments(result: DecodingResult, tokenizer: Any, seek: int, size: int, time_offset: float,
                     duration: float, time_precision: float, input_stride: int) -> list[dict]:
    from .longform import split_segments

    tokens = list(result.tokens)
    pieces, advance = split_segments(tokens, tokenizer.timestamp_begin, size, time_precision, input_stride)
    used = sum(len(p[2]) for p in pieces)
    if used < len(tokens):  # the tail after the last complete pair: keep it, ending at the window's end
        tail = tokens[used:]
        ts = tokenizer.timestamp_begin
        start_pos = tail[0] - ts if tail[0] >= ts else (pieces[-1][1] if pieces else 0)
        pieces.append((start_pos, -1, tail))
    segments = []
    for start_pos, end_pos, part in pieces:
        text_tokens = [t for t in part if t < tokenizer.eot]
        text = tokenizer.decode(text_tokens)
        if not text.strip():
            continue
        start = time_offset + start_pos * time_precision
        end = time_offset + (end_pos * time_precision if end_pos >= 0 else duration)
        segments.append({
            "seek": seek, "start": start, "end": max(start, end), "text": text, "tokens": list(part),
            "temperature": result.temperature, "avg_logprob": result.avg_logprob,
            "compression_ratio": result.compression_ratio, "no_speech_prob": result.no_speech_prob,
        })
    return segments


def write_mel_files(audio: Any, output_dir: Any, *, n_mels: int = 80, dtype: str = "float32",
                    scale: Optional[float] = None, zero_point: Optional[int] = None, layout: str = "nct") -> list[str]:
    """Writes the encoder input of every 30-second window of `audio` as raw device bytes
    (``mel_000.bin``, ...: [1, n_mels, 3000] in `dtype`, "transcribe" convention, see window_mel):
    the ``-i`` files of ``neuronrt -m hw -a encoder.dla -i mel_000.bin -o output_000.bin``."""
    if dtype not in DTYPES:
        raise InvalidOptionError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if layout not in LAYOUTS:
        raise InvalidOptionError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if dtype in QUANTIZED and scale is None:
        raise InvalidOptionError(f"a {dtype} DLA input needs its quantization scale (and zero point)")
    samples = load_audio(audio)
    windows = _core.MelWindows(samples, n_mels)
    count = max(1, -(-windows.content_frames // N_FRAMES))
    spec = {"dtype": dtype, "scale": 1.0 if scale is None else float(scale),
            "zero_point": 0 if zero_point is None else int(zero_point), "transposed": layout == "ntc"}
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for i in range(count):
        mel = window_mel(samples, windows, i, "transcribe", n_mels)
        path = os.path.join(os.fspath(output_dir), f"mel_{i:03d}.bin")
        with open(path, "wb") as f:
            f.write(_core.quantize(mel, spec))
        paths.append(path)
    return paths
