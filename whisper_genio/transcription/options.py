"""Options, written once: openai-whisper's names, meanings and defaults.

``DecodingOptions`` covers one 30-second window (openai-whisper's ``DecodingOptions``);
``TranscribeOptions`` adds the long-form policy of ``transcribe()``. Both validate on
construction, so a bad value fails before any audio is touched, with one message that names
the option. The options the native decode loop reads (temperature, beam_size, ...) are defined
and checked once, natively (csrc/include/whisper_genio/decoding.h): their defaults come from
there and their check is the native one; the text options (task, language, prompt, prefix,
suppress_tokens) and the long-form policy are defined here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from .. import _core
from ..errors import InvalidOptionError
from ..vad import VadOptions
from .timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS

TokensOrText = Union[str, Sequence[int], None]

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
TASKS = ("transcribe", "translate")

_NATIVE = _core.DecodingOptions()  # the native defaults
# DecodingOptions fields the native loop reads (checked by _core.DecodingOptions.check()).
NATIVE_FIELDS = ("temperature", "sample_len", "best_of", "beam_size", "patience", "length_penalty", "suppress_blank",
                 "without_timestamps", "max_initial_timestamp", "seed", "repetition_penalty", "no_repeat_ngram_size",
                 "repetition_cutoff")


@dataclass(frozen=True)
class DecodingOptions:
    task: str = "transcribe"  # "transcribe" (X -> X) or "translate" (X -> English)
    language: Optional[str] = None  # None: detected from the audio
    temperature: float = _NATIVE.temperature
    sample_len: Optional[int] = _NATIVE.sample_len  # maximum sampled tokens; None: n_text_ctx // 2
    best_of: Optional[int] = _NATIVE.best_of  # independent samples when temperature > 0
    beam_size: Optional[int] = _NATIVE.beam_size  # beam search when temperature == 0
    patience: Optional[float] = _NATIVE.patience  # beam search patience (arxiv:2204.05424)
    length_penalty: Optional[float] = _NATIVE.length_penalty  # None: length normalisation; else alpha in [0, 1]
    prompt: TokensOrText = None  # previous context (text or token ids)
    prefix: TokensOrText = None  # forced start of this window's text
    suppress_tokens: Union[str, Iterable[int], None] = "-1"  # "-1": the non-speech symbol set
    suppress_blank: bool = _NATIVE.suppress_blank
    without_timestamps: bool = _NATIVE.without_timestamps
    max_initial_timestamp: Optional[float] = _NATIVE.max_initial_timestamp
    fp16: bool = False  # accepted for openai-whisper compatibility; precision is the model's compute_type
    seed: int = _NATIVE.seed  # sampling seed (temperature > 0), for reproducible fallbacks
    # Loop guards (faster-whisper's first two): > 1 penalises tokens already sampled in the window;
    # > 0 forbids sampling any n-gram of that size twice; a number of repeats after which a
    # window whose text ends in one repeated block (up to 32 tokens) stops (looped: fallback).
    repetition_penalty: float = _NATIVE.repetition_penalty
    no_repeat_ngram_size: int = _NATIVE.no_repeat_ngram_size
    repetition_cutoff: Optional[int] = _NATIVE.repetition_cutoff

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidOptionError(f"task must be 'transcribe' or 'translate', got {self.task!r}")
        if self.language is not None and not isinstance(self.language, str):
            raise InvalidOptionError(f"language must be a language code or name, got {self.language!r}")
        for name in ("prompt", "prefix"):
            _check_tokens_or_text(name, getattr(self, name))
        suppress_token_ids(self.suppress_tokens)
        if not isinstance(self.fp16, bool):
            raise InvalidOptionError(f"fp16 must be True or False, got {self.fp16!r}")
        self.native()

    def native(self) -> "_core.DecodingOptions":
        """The native options (token fields still empty), checked: InvalidOptionError names the option."""
        native = _core.DecodingOptions(**{name: getattr(self, name) for name in NATIVE_FIELDS})
        native.check()
        return native

    def replace(self, **changes: Any) -> "DecodingOptions":
        return dataclasses.replace(self, **changes)


def _check_tokens_or_text(name: str, value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return
    raise InvalidOptionError(f"{name} must be text or a list of token ids, got {value!r}")


def suppress_token_ids(spec: Union[str, Iterable[int], None]) -> list[int]:
    """suppress_tokens as token ids: "-1" (the non-speech symbols, resolved by the tokenizer), a
    comma-separated string or a sequence of ints; None or "" for none."""
    if spec is None:
        return []
    try:
        if isinstance(spec, str):
            return [int(t) for t in spec.split(",") if t.strip()]
        ids = list(spec)
        if any(isinstance(t, bool) or not isinstance(t, int) for t in ids):
            raise ValueError
        return ids
    except (ValueError, TypeError):
        raise InvalidOptionError(f"suppress_tokens must be comma-separated token ids or a list of them, got {spec!r}") \
            from None


MAX_TRIM_SECONDS = 30.0  # a whole window
MAX_DETECTION_WINDOWS = 1000  # language_detection_segments: 8 h 20 min of windows
# faster-whisper's names for openai-whisper's options.
ALIASES = {"max_new_tokens": "sample_len"}


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
    word_timestamps: bool = False  # segments[i]["words"]: word, start, end, probability
    prepend_punctuations: str = PREPEND_PUNCTUATIONS  # join the word after them (word timestamps)
    append_punctuations: str = APPEND_PUNCTUATIONS  # join the word before them (word timestamps)
    # With word timestamps: skip silent stretches longer than this (seconds) around a segment that
    # looks like a hallucination.
    hallucination_silence_threshold: Optional[float] = None
    vad_filter: bool = False  # transcribe only the speech voice activity detection finds (whisper_genio.vad)
    vad_parameters: Any = None  # VadOptions or a dict of its fields (faster-whisper's names and defaults)
    # faster-whisper's language detection: a language is taken once its probability on a window is
    # above the threshold, trying up to this many windows; else the most probable over them all.
    # The defaults (one window) are openai-whisper's rule.
    language_detection_threshold: Optional[float] = 0.5
    language_detection_segments: int = 1
    multilingual: bool = False  # detect the language of every window (recordings that switch languages)
    log_progress: bool = False  # a progress bar on stderr (as verbose=False gives)
    # None: every window is encoded whole (30 s, padded: openai-whisper). Seconds s: a window is
    # encoded only as far as its audio and one second of the padding after it, but at least s
    # seconds, in whole seconds (whisper.cpp's audio_ctx, fitted to each window): short audio costs
    # less to encode, and the results differ from openai-whisper's (more the shorter the encoded
    # span: a few seconds of context transcribe worse). Encoders with a fixed shape refuse it.
    trim_window: Optional[float] = None
    decode: DecodingOptions = field(default_factory=DecodingOptions)

    def __post_init__(self) -> None:
        temps = self.temperatures
        if not temps:
            raise InvalidOptionError("temperature: the schedule is empty")
        for t in temps:  # each is one window's temperature: the native check
            DecodingOptions(temperature=t)
        if self.best_of is not None:
            DecodingOptions(temperature=1.0, best_of=self.best_of)  # it applies at temperatures > 0
        for name in ("compression_ratio_threshold", "logprob_threshold", "no_speech_threshold"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or math.isnan(value)):
                raise InvalidOptionError(f"{name} must be a number or None, got {value!r}")
        threshold = self.hallucination_silence_threshold
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not math.isfinite(threshold) or threshold < 0):
            raise InvalidOptionError(f"hallucination_silence_threshold must be a number of seconds >= 0, got {threshold!r}")
        for name in ("prepend_punctuations", "append_punctuations"):
            if not isinstance(getattr(self, name), str):
                raise InvalidOptionError(f"{name} must be a string, got {getattr(self, name)!r}")
        object.__setattr__(self, "vad_parameters", VadOptions.parse(self.vad_parameters))
        if self.vad_filter is True and self.clip_timestamps not in ("0", "", [0], (0,), [], ()):
            raise InvalidOptionError("vad_filter and clip_timestamps can't be given together: the speech the VAD "
                                     "keeps has a clock of its own")
        threshold = self.language_detection_threshold
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0.0 <= threshold <= 1.0):
            raise InvalidOptionError(f"language_detection_threshold must be a probability in [0, 1] or None, "
                                     f"got {threshold!r}")
        windows = self.language_detection_segments
        if isinstance(windows, bool) or not isinstance(windows, int) or not 1 <= windows <= MAX_DETECTION_WINDOWS:
            raise InvalidOptionError(f"language_detection_segments must be a number of windows between 1 and "
                                     f"{MAX_DETECTION_WINDOWS}, got {windows!r}")
        for name in ("condition_on_previous_text", "carry_initial_prompt", "word_timestamps", "vad_filter",
                     "multilingual", "log_progress"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOptionError(f"{name} must be True or False, got {getattr(self, name)!r}")
        trim = self.trim_window
        if trim is not None and (isinstance(trim, bool) or not isinstance(trim, (int, float))
                                 or not 0.0 <= trim <= MAX_TRIM_SECONDS):
            raise InvalidOptionError(f"trim_window must be None or the fewest seconds encoded, in [0, {MAX_TRIM_SECONDS:g}], "
                                     f"got {trim!r}")
        if self.initial_prompt is not None and not isinstance(self.initial_prompt, str):
            raise InvalidOptionError(f"initial_prompt must be text, got {self.initial_prompt!r}")
        if self.verbose not in (None, True, False):
            raise InvalidOptionError(f"verbose must be True, False or None, got {self.verbose!r}")
        self.clip_frames(10**12)  # validates clip_timestamps

    @property
    def trim_min_frames(self) -> int:
        """trim_window in mel frames for the core's window path (-1: whole windows)."""
        return -1 if self.trim_window is None else round(self.trim_window * 100)

    @property
    def temperatures(self) -> tuple[Any, ...]:
        t = self.temperature
        if isinstance(t, (str, bytes)) or not isinstance(t, Iterable):
            return (t,)
        return tuple(t)

    def clip_frames(self, content_frames: int) -> list[tuple[int, int]]:
        """clip_timestamps as (start, end) mel-frame pairs within the audio; an odd count ends at
        the audio's end, and a clip past the end is empty."""
        spec = self.clip_timestamps
        try:
            if isinstance(spec, str):
                seconds = [float(ts) for ts in spec.split(",")] if spec else []
            elif isinstance(spec, Sequence) and spec and all(isinstance(c, Mapping) for c in spec):
                # faster-whisper's batched form: [{"start": s, "end": e}, ...] in seconds
                seconds = [_seconds(c[k]) for c in spec for k in ("start", "end")]
            else:
                seconds = [_seconds(ts) for ts in spec]
        except (ValueError, TypeError, KeyError):
            raise InvalidOptionError(f"clip_timestamps must be comma-separated seconds, a list of seconds or a list "
                                     f"of {{'start': s, 'end': e}}, got {spec!r}") from None
        if any(not (0 <= s < 1e9) for s in seconds):  # also NaN; 1e9 s is 31 years of audio
            raise InvalidOptionError(f"clip_timestamps must be finite seconds >= 0, got {spec!r}")
        points = [round(s * 100) for s in seconds]  # 100 mel frames per second
        if not points:
            points.append(0)
        if len(points) % 2 == 1:
            points.append(content_frames)
        return [(start, min(end, content_frames)) for start, end in zip(points[::2], points[1::2])]


def _seconds(value: Any) -> float:
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(value)
    return float(value)


# Keyword arguments of transcribe() that belong to TranscribeOptions; the rest are decoding options.
_TRANSCRIBE_FIELDS = {f.name for f in dataclasses.fields(TranscribeOptions)} - {"decode"}
_DECODE_FIELDS = {f.name for f in dataclasses.fields(DecodingOptions)}


def split_transcribe_kwargs(kwargs: dict[str, Any]) -> TranscribeOptions:
    """Build TranscribeOptions from transcribe()'s flat keyword arguments (openai-whisper style;
    faster-whisper's names for the same options too)."""
    aliased = [(alias, name) for alias, name in ALIASES.items() if alias in kwargs]
    for alias, name in aliased:
        if name in kwargs:
            raise InvalidOptionError(f"{alias} and {name} are the same option: give one of them")
        kwargs = {(name if k == alias else k): v for k, v in kwargs.items()}
    try:
        return _split(kwargs)
    except InvalidOptionError as e:
        for alias, name in aliased:
            if name in str(e):
                raise InvalidOptionError(f"{alias} (faster-whisper's name for {name}): {e}") from None
        raise


def _split(kwargs: dict[str, Any]) -> TranscribeOptions:
    transcribe_args: dict[str, Any] = {}
    decode_args: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _TRANSCRIBE_FIELDS:
            transcribe_args[key] = value  # best_of included: it only applies to temperatures > 0
        elif key in _DECODE_FIELDS:
            if key == "temperature":
                continue
            decode_args[key] = value
        else:
            raise InvalidOptionError(f"unknown transcribe option {key!r}")
    if "temperature" in kwargs:
        transcribe_args["temperature"] = kwargs["temperature"]
    return TranscribeOptions(decode=DecodingOptions(**decode_args), **transcribe_args)
