"""Options, written once: openai-whisper's names, meanings and defaults.

``DecodingOptions`` covers one 30-second window (openai-whisper's ``DecodingOptions``);
``TranscribeOptions`` adds the long-form policy of ``transcribe()``. Both validate on
construction, so a bad value fails before any audio is touched. The native side receives
an already-tokenised form built by :mod:`whisper_genio.decoding` and checks it again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence, Union

from ..errors import InvalidOptionError

TokensOrText = Union[str, Sequence[int], None]

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class DecodingOptions:
    task: str = "transcribe"  # "transcribe" (X -> X) or "translate" (X -> English)
    language: Optional[str] = None  # None: detected from the audio
    temperature: float = 0.0
    sample_len: Optional[int] = None  # maximum sampled tokens; None: n_text_ctx // 2
    best_of: Optional[int] = None  # independent samples when temperature > 0
    beam_size: Optional[int] = None  # beam search when temperature == 0
    patience: Optional[float] = None  # beam search patience (arxiv:2204.05424)
    length_penalty: Optional[float] = None  # None: length normalisation; else alpha in [0, 1]
    prompt: TokensOrText = None  # previous context (text or token ids)
    prefix: TokensOrText = None  # forced start of this window's text
    suppress_tokens: Union[str, Iterable[int], None] = "-1"  # "-1": the non-speech symbol set
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: Optional[float] = 1.0
    fp16: bool = False  # accepted for openai-whisper compatibility; precision is the model's compute_type
    seed: int = 0  # sampling seed (temperature > 0), for reproducible fallbacks

    def __post_init__(self) -> None:
        if self.task not in ("transcribe", "translate"):
            raise InvalidOptionError(f"task must be 'transcribe' or 'translate', got {self.task!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise InvalidOptionError(f"temperature must be a number >= 0, got {self.temperature!r}")
        for name in ("sample_len", "best_of", "beam_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")
        if self.beam_size is not None and self.best_of is not None:
            raise InvalidOptionError("beam_size and best_of can't be given together")
        if self.temperature == 0 and self.best_of is not None:
            raise InvalidOptionError("best_of with greedy sampling (T=0) is not compatible")
        if self.patience is not None and self.beam_size is None:
            raise InvalidOptionError("patience requires beam_size to be given")
        if self.patience is not None and self.patience <= 0:
            raise InvalidOptionError(f"patience must be > 0, got {self.patience!r}")
        if self.length_penalty is not None and not 0 <= self.length_penalty <= 1:
            raise InvalidOptionError("length_penalty (alpha) should be a value between 0 and 1")
        if self.max_initial_timestamp is not None and self.max_initial_timestamp < 0:
            raise InvalidOptionError("max_initial_timestamp must be >= 0")

    def replace(self, **changes: Any) -> "DecodingOptions":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TranscribeOptions:
    """The long-form policy of openai-whisper's ``transcribe()`` (same defaults)."""

    temperature: Union[float, tuple[float, ...]] = DEFAULT_TEMPERATURES
    compression_ratio_threshold: Optional[float] = 2.4
    logprob_threshold: Optional[float] = -1.0
    no_speech_threshold: Optional[float] = 0.6
    condition_on_previous_text: bool = True
    initial_prompt: Optional[str] = None
    carry_initial_prompt: bool = False
    clip_timestamps: Union[str, Sequence[float]] = "0"
    verbose: Optional[bool] = None  # True: print segments; False: progress bar; None: silent
    best_of: Optional[int] = None  # samples per temperature > 0 (the t == 0 pass ignores it)
    decode: DecodingOptions = field(default_factory=DecodingOptions)

    def __post_init__(self) -> None:
        temps = self.temperatures
        if not temps or any(not isinstance(t, (int, float)) or t < 0 for t in temps):
            raise InvalidOptionError(f"temperature must be a number >= 0 or a sequence of them, got {self.temperature!r}")
        self.clip_frames(10**12)  # validates clip_timestamps
        if self.best_of is not None and (not isinstance(self.best_of, int) or self.best_of < 1):
            raise InvalidOptionError(f"best_of must be a positive integer, got {self.best_of!r}")

    @property
    def temperatures(self) -> tuple[float, ...]:
        t = self.temperature
        return (float(t),) if isinstance(t, (int, float)) else tuple(float(x) for x in t)

    def clip_frames(self, content_frames: int) -> list[tuple[int, int]]:
        """clip_timestamps as (start, end) mel-frame pairs within the audio; an odd count ends at
        the audio's end, and a clip past the end is empty."""
        spec = self.clip_timestamps
        try:
            if isinstance(spec, str):
                seconds = [float(ts) for ts in spec.split(",")] if spec else []
            else:
                seconds = [float(ts) for ts in spec]
        except ValueError:
            raise InvalidOptionError(f"clip_timestamps must be comma-separated seconds, got {spec!r}") from None
        if any(s < 0 for s in seconds):
            raise InvalidOptionError(f"clip_timestamps must be >= 0, got {spec!r}")
        points = [round(s * 100) for s in seconds]  # 100 mel frames per second
        if not points:
            points.append(0)
        if len(points) % 2 == 1:
            points.append(content_frames)
        return [(start, min(end, content_frames)) for start, end in zip(points[::2], points[1::2])]


# Keyword arguments of transcribe() that belong to TranscribeOptions; the rest are decoding options.
_TRANSCRIBE_FIELDS = {f.name for f in dataclasses.fields(TranscribeOptions)} - {"decode"}
_DECODE_FIELDS = {f.name for f in dataclasses.fields(DecodingOptions)}
# openai-whisper options that need cross-attention timings, which whisper_genio does not compute yet.
_UNSUPPORTED = {"word_timestamps", "hallucination_silence_threshold", "prepend_punctuations", "append_punctuations"}


def split_transcribe_kwargs(kwargs: dict[str, Any]) -> TranscribeOptions:
    """Build TranscribeOptions from transcribe()'s flat keyword arguments (openai-whisper style)."""
    transcribe_args: dict[str, Any] = {}
    decode_args: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _TRANSCRIBE_FIELDS:
            transcribe_args[key] = value  # best_of included: it only applies to temperatures > 0
        elif key in _DECODE_FIELDS:
            if key == "temperature":
                continue
            decode_args[key] = value
        elif key in _UNSUPPORTED:
            if value not in (None, False) and key in ("word_timestamps", "hallucination_silence_threshold"):
                raise InvalidOptionError(f"{key} is not supported by whisper_genio yet (segment timestamps are)")
        else:
            raise InvalidOptionError(f"unknown transcribe option {key!r}")
    if "temperature" in kwargs:
        transcribe_args["temperature"] = kwargs["temperature"]
    return TranscribeOptions(decode=DecodingOptions(**decode_args), **transcribe_args)
