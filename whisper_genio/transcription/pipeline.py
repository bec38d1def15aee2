"""The one window path of a model: audio -> mel -> encoder backend -> the decoder's cross K/V.

A :class:`Pipeline` owns what one Model runs on: the thread pool, the encoder backend and the
native decoder. Every entry point (the long-form loop, ``decode``, ``detect_language``,
``encode``) puts a window in through :meth:`Pipeline.set_window` or :meth:`Pipeline.encode`,
which hand the mel straight to the backend's input buffer and the backend's output straight
to the decoder (``_core.prepare_window``). One window at a time: callers hold :attr:`lock`.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from .. import _core
from ..audio import HOP_LENGTH, N_FRAMES, SAMPLE_RATE
from ..dims import ModelDims
from ..errors import InvalidOptionError
from ..tokenizer import Tokenizer
from .decoding import DecodingResult, decode_window, language_probabilities
from .options import DecodingOptions

STAGES = ("mel", "encoder", "cross_kv")


class Pipeline:
    def __init__(self, dims: ModelDims, pool: Any, encoder: Any, decoder: Any) -> None:
        self.dims = dims
        self.pool = pool
        self.encoder = encoder
        self.decoder = decoder
        self.lock = threading.RLock()
        # (decoder layer, head) pairs whose cross-attention follows the words (word timestamps).
        self.alignment_heads: tuple[tuple[int, int], ...] = ()

    # -- what the backend can encode -----------------------------------------------------------

    @property
    def reads_mel(self) -> bool:
        return bool(self.encoder.reads_mel)

    @property
    def window_stride(self) -> int:
        """0: a window may start anywhere; else only at multiples of this many frames (replay)."""
        return int(self.encoder.window_stride)

    @property
    def variable_positions(self) -> bool:
        """Whether a window trimmed to its audio (trim_window) can be encoded and decoded here:
        the CPU encoder, and no decoder layers on the NPU (those take whole windows)."""
        return bool(self.encoder.variable_positions) and not self.decoder.fixed_window

    @property
    def window_count(self) -> int:
        """Windows the backend holds (replay: its files), -1 when the audio decides."""
        return int(self.encoder.window_count)

    # -- mel sources -----------------------------------------------------------------------------

    def recording(self, samples: Optional[np.ndarray]) -> "Recording":
        """A recording's windows as transcribe() cuts them (global maximum, 30 s of padding)."""
        if samples is None:
            if self.reads_mel:
                raise InvalidOptionError(f"the {self.encoder.name} encoder needs audio")
            return Recording(None, max(self.window_count, 0) * N_FRAMES)
        if not self.reads_mel:
            return Recording(None, len(samples) // HOP_LENGTH)  # no mel to compute: its length only
        windows = _core.MelWindows(samples, self.dims.n_mels, self.pool)
        return Recording(windows, windows.content_frames)

    def one_window(self, audio: Any) -> Any:
        """The mel source of one window: a given mel [n_mels, 3000] as it is, else the samples'
        ``log_mel_spectrogram(pad_or_trim(samples))`` (openai-whisper's decode())."""
        if isinstance(audio, np.ndarray) and audio.ndim == 2:
            return audio
        if not self.reads_mel:
            return None
        return _core.MelWindows(audio, self.dims.n_mels, self.pool, one_window=True)

    # -- the window path -------------------------------------------------------------------------

    def set_window(self, source: Any, seek: int = 0, size: int = N_FRAMES,
                   timings: Optional[dict] = None, trim_min_frames: int = -1) -> None:
        """Encodes frames [seek, seek + size) of `source` (see one_window / recording) into the
        decoder (trimmed to the audio and a second of padding, at least trim_min_frames, when that
        is >= 0); adds each stage's seconds to `timings`."""
        t = _core.prepare_window(source, seek, size, self.encoder, self.decoder, self.pool, trim_min_frames)
        if timings is not None:
            for stage in STAGES:
                timings[stage] = timings.get(stage, 0.0) + t[stage]
                timings[stage + "_cpu"] = timings.get(stage + "_cpu", 0.0) + t[stage + "_cpu"]
            timings["windows"] = timings.get("windows", 0) + 1

    def set_states(self, states: np.ndarray) -> None:
        """Puts encoder states [n_audio_ctx, d] computed elsewhere into the decoder."""
        self.decoder.set_audio(states)

    def encode(self, source: Any, seek: int = 0, size: int = N_FRAMES) -> np.ndarray:
        """Encoder states [n_audio_ctx, d] of one window, as a new array."""
        return self.encoder.encode(source, seek, size, self.pool)

    def language_probs(self, tokenizer: Tokenizer) -> dict[str, float]:
        """Language probabilities on the window in the decoder."""
        return language_probabilities(self.decoder, tokenizer)

    def decode(self, options: DecodingOptions, tokenizer: Tokenizer) -> DecodingResult:
        """Decodes the window in the decoder."""
        return decode_window(self.decoder, options, tokenizer, self.dims)


class Recording:
    """A recording's mel windows (None for backends that read no mel) and its length in frames."""

    def __init__(self, windows: Any, content_frames: int) -> None:
        self.windows = windows
        self.content_frames = int(content_frames)

    @property
    def seconds(self) -> float:
        return self.content_frames * HOP_LENGTH / SAMPLE_RATE
