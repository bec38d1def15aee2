"""Live transcription: audio fed as it arrives, text committed while the person is still talking.

Every ``step`` seconds of new audio the buffer (at most one 30 s window: what the encoder takes) is
decoded again with word timestamps, through the same transcription path as files. A word is
committed once ``agreement`` consecutive hypotheses agree on it (LocalAgreement-n, the policy of
whisper_streaming). A word with less than ``unsure_word_wait`` seconds of audio after it also needs
at least ``min_word_probability`` in each of those hypotheses: a word heard with little audio after
it (the first words of an utterance, above all) is often agreed on wrongly, so an unsure one waits
for more audio, though not past that (a long utterance is not held up). What follows is the
partial hypothesis. Once the buffer is longer than
``trim_seconds`` it is cut after the committed words, so a step costs one window whatever the
stream's length, and memory stays bounded. Where the encoder allows it, a step encodes only the
buffer (``trim_window``), not a padded 30 s window. With voice activity detection (Silero, when
installed) silence is never decoded, and a pause after speech ends the utterance: everything still pending is
committed at once (an ``endpoint``), from a decode of a whole 30 s window when steps are trimmed
(``whole_window_at_endpoint``): the window offline transcription reads, for the text that waited.

Times in events are seconds from the stream's start.
"""

from __future__ import annotations

import collections
import math
import string
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from ..audio import MAX_INPUT_RATE, MIN_INPUT_RATE, SAMPLE_RATE, load_audio
from ..errors import BackendUnavailableError, InvalidOptionError
from .options import split_transcribe_kwargs
from .pipeline import STAGES

EVENT_TYPES = ("partial", "committed", "endpoint")
_TIMED_STAGES = (*STAGES, "decoder")  # the window path's stages, then the decode loop
_PUNCTUATION = string.punctuation + "¿¡…«»“”‘’"
_OVERLAP_WORDS = 10  # committed words a new hypothesis may repeat at its start (whisper_streaming checks 5)
_MIN_WORD_SECONDS = 0.02  # one audio position: a word shorter than that was not heard
_PROMPT_CHARS = 200  # committed text given as the prompt of the next decodes
# The fewest seconds a step encodes (transcribe's trim_window: the buffer and a second of padding
# when longer; shorter spans transcribe worse, Whisper being trained on 30 s windows): a step then
# encodes about the buffer, not a whole 30 s window. Set where the encoder allows it (the CPU
# encoder with the decoder on the CPU); encoders of a fixed shape encode whole windows.
TRIM_SECONDS = 10.0
STREAM_TEMPERATURE = 0.0
STREAM_REPETITION_CUTOFF = 3
_PRE_ROLL = 0.5  # seconds of audio kept before speech starts (the VAD triggers after the onset)
# Options a stream decides itself: each decode is one buffer with word timestamps.
_FIXED = ("word_timestamps", "condition_on_previous_text", "verbose", "clip_timestamps", "vad_filter",
          "multilingual", "log_progress")


@dataclass(frozen=True)
class StreamOptions:
    """How a stream decodes and commits (threads, compute type and backend are the model's)."""

    step: float = 0.7  # seconds of new audio between decodes
    agreement: int = 2  # LocalAgreement-n: consecutive hypotheses that must agree before a word is committed
    vad: Optional[bool] = None  # gate decoding on speech (Silero VAD); None: when a VAD model is installed
    vad_threshold: float = 0.5  # speech probability of a 32 ms frame above which it is speech
    endpoint_silence: float = 0.6  # seconds of non-speech after speech that end an utterance (with VAD)
    trim_seconds: float = 8.0  # a longer buffer is cut after its committed words (their text stays the prompt)
    max_buffer: float = 28.0  # the longest buffer ever decoded (seconds, at most 30)
    language: Optional[str] = None  # fixed; None: detected once, on the first decode
    word_timestamps: bool = False  # committed events carry their words
    min_word_probability: float = 0.5  # an agreed word below this probability waits (0: agreement alone)
    unsure_word_wait: float = 1.5  # ... until this many seconds of audio follow it
    whole_window_at_endpoint: bool = True  # the decode that ends an utterance encodes a whole window

    def __post_init__(self) -> None:
        def number(name: str, low: float, high: float) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (low <= v <= high):
                raise InvalidOptionError(f"{name} must be a number of seconds in [{low}, {high}], got {v!r}")

        number("step", 0.1, 30.0)
        number("endpoint_silence", 0.1, 10.0)
        number("unsure_word_wait", 0.0, 30.0)
        number("max_buffer", 2.0, 30.0)
        number("trim_seconds", 1.0, self.max_buffer if isinstance(self.max_buffer, (int, float)) else 30.0)
        if isinstance(self.agreement, bool) or not isinstance(self.agreement, int) or not 1 <= self.agreement <= 5:
            raise InvalidOptionError(f"agreement must be 1 to 5 hypotheses, got {self.agreement!r}")
        if self.vad not in (None, True, False):
            raise InvalidOptionError(f"vad must be True, False or None, got {self.vad!r}")
        def probability(name: str, zero: bool) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v if zero else 0.0 < v) or v >= 1.0:
                raise InvalidOptionError(f"{name} must be a probability in {'[' if zero else '('}0, 1), got {v!r}")

        probability("vad_threshold", zero=False)
        probability("min_word_probability", zero=True)  # 0: agreement alone
        for name in ("word_timestamps", "whole_window_at_endpoint"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOptionError(f"{name} must be True or False, got {getattr(self, name)!r}")


@dataclass
class StreamEvent:
    """type: 'partial' (the hypothesis after the committed text; it may change), 'committed' (final
    text, never retracted), or 'endpoint' (an utterance ended). start/end: seconds of the stream."""

    type: str
    text: str = ""
    start: float = 0.0
    end: float = 0.0
    words: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _can_trim(model: Any) -> bool:
    pipeline = getattr(model, "pipeline", None)
    return bool(getattr(pipeline, "variable_positions", False))


def _without_squeezed_tail(words: list[dict]) -> list[dict]:
    """The hypothesis without its trailing words of no duration: text the decoder ran on with
    past the buffer's audio (a phrase repeated into the last frames), which the next step, decoding
    the same audio, tends to repeat and so agree on. Real words squeezed there come back once
    more audio arrives, or at the utterance's end, which takes the whole hypothesis."""
    n = len(words)
    while n > 0 and words[n - 1]["end"] - words[n - 1]["start"] < _MIN_WORD_SECONDS:
        n -= 1
    return words[:n]


def _key(word: dict) -> str:
    return word["word"].strip().strip(_PUNCTUATION).lower()


def _agreed_prefix(hypotheses: list[list[dict]], min_probability: float, unsure_after: float) -> int:
    """How many leading words all hypotheses say alike; a word ending after ``unsure_after`` (too
    little audio follows it) also needs at least min_probability in each."""
    n = min(len(h) for h in hypotheses)
    for i in range(n):
        if len({_key(h[i]) for h in hypotheses}) != 1:
            return i
        if (hypotheses[-1][i]["end"] > unsure_after
                and min(h[i].get("probability", 1.0) for h in hypotheses) < min_probability):
            return i
    return n


class StreamSession:
    """One live stream: ``feed(samples)`` as audio arrives, ``flush()`` at its end. Both return a
    list of :class:`StreamEvent`. Not thread-safe: one thread feeds a session."""

    def __init__(self, model: Any, options: StreamOptions, transcribe_options: dict[str, Any]) -> None:
        for name in _FIXED:
            if name in transcribe_options:
                raise InvalidOptionError(f"{name} can't be set for a stream: each step decodes one buffer "
                                         "with word timestamps")
        self._kwargs = dict(transcribe_options, word_timestamps=True, condition_on_previous_text=False)
        if "trim_window" not in self._kwargs and _can_trim(model):
            self._kwargs["trim_window"] = TRIM_SECONDS
        # Greedy only, unless asked: a fallback re-decodes the step at a temperature (its cost in
        # the latency path), and sampled text rarely agrees with the next step's anyway. Without
        # the fallback a greedy loop ("for our purpose. printing then for our purpose. ...") would
        # be decoded identically by consecutive steps, agreed on and committed: the loop guard cuts
        # it after a few repeats instead (one copy kept).
        self._kwargs.setdefault("temperature", STREAM_TEMPERATURE)
        self._kwargs.setdefault("repetition_cutoff", STREAM_REPETITION_CUTOFF)
        split_transcribe_kwargs(dict(self._kwargs, language=options.language))  # every option checked now
        self.model = model
        self.options = options
        self._vad = self._make_vad(options.vad)
        self._buffer = np.zeros(0, np.float32)
        self._offset = 0.0  # stream time of the buffer's first sample
        self._fed = 0  # samples at 16 kHz so far
        self._since_step = 0  # samples fed since the last decode
        self._language = options.language
        self._hypotheses: collections.deque[list[dict]] = collections.deque(maxlen=max(1, options.agreement - 1))
        self._committed: collections.deque[dict] = collections.deque(maxlen=64)  # the newest committed words
        self._committed_end = 0.0
        self._vad_rest = np.zeros(0, np.float32)  # samples short of a whole VAD frame
        self._speech_start: Optional[float] = None  # the current utterance's first speech frame
        self._last_speech = 0.0  # end of the newest speech frame
        self._rate: Optional[int] = None
        self._resampler: Any = None
        self.closed = False
        self.stats = {"steps": 0, "decoded_seconds": 0.0, "audio_seconds": 0.0,
                      **{stage + "_cpu": 0.0 for stage in _TIMED_STAGES}}

    # -- input -----------------------------------------------------------------------------

    @staticmethod
    def _make_vad(wanted: Optional[bool]) -> Any:
        if wanted is False:
            return None
        from ..vad import SileroVad

        try:
            return SileroVad()
        except BackendUnavailableError:
            if wanted:
                raise
            return None

    @property
    def vad_enabled(self) -> bool:
        return self._vad is not None

    def _samples(self, samples: Any, sample_rate: Optional[int]) -> np.ndarray:
        """The chunk as float32 at 16 kHz; checked whole before the session changes. Arrays are
        read as load_audio reads them (dtypes, channel layouts, NaN/infinity refused)."""
        a = load_audio(np.asarray(samples))
        rate = SAMPLE_RATE if sample_rate is None else sample_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
            raise InvalidOptionError(f"sample_rate must be a whole number of Hz from {MIN_INPUT_RATE} to "
                                     f"{MAX_INPUT_RATE}, got {sample_rate!r}")
        if self._rate is not None and rate != self._rate:
            raise InvalidOptionError(f"sample_rate changed from {self._rate} to {rate} Hz within one stream")
        self._rate = int(rate)
        if self._rate == SAMPLE_RATE:
            return a
        if self._resampler is None:
            import soxr

            self._resampler = soxr.ResampleStream(self._rate, SAMPLE_RATE, 1, dtype="float32")
        return self._resampler.resample_chunk(a)

    # -- public ----------------------------------------------------------------------------

    def feed(self, samples: Any, sample_rate: Optional[int] = None) -> list[StreamEvent]:
        """Adds audio (float32/float64 in [-1, 1] or int16 PCM, any chunk size; at 16 kHz unless
        ``sample_rate`` says otherwise) and returns what it changed."""
        if self.closed:
            raise InvalidOptionError("this stream was flushed: start another with model.stream()")
        x = self._samples(samples, sample_rate)
        if not len(x):
            return []
        self._buffer = np.concatenate([self._buffer, x])
        self._fed += len(x)
        self._since_step += len(x)
        self.stats["audio_seconds"] = self._fed / SAMPLE_RATE
        if self._vad is not None:
            self._run_vad(x)
            if self._speech_start is None:
                self._drop_silence()
                return []
            if self.now - self._last_speech >= self.options.endpoint_silence:
                return self._finish()
        if self._since_step < self.options.step * SAMPLE_RATE:
            return []
        return self._step()

    def flush(self) -> list[StreamEvent]:
        """Ends the stream: commits what is pending (one last decode)."""
        if self.closed:
            return []
        events: list[StreamEvent] = []
        if len(self._buffer) and (self._vad is None or self._speech_start is not None):
            events = self._finish()
        self.closed = True
        self._buffer = np.zeros(0, np.float32)
        return events

    @property
    def now(self) -> float:
        """Seconds of audio fed so far."""
        return self._fed / SAMPLE_RATE

    @property
    def language(self) -> Optional[str]:
        return self._language

    # -- voice activity --------------------------------------------------------------------

    def _run_vad(self, x: np.ndarray) -> None:
        from ..vad import FRAME

        start = self._fed - len(x) - len(self._vad_rest)  # stream sample of the first pending sample
        pending = np.concatenate([self._vad_rest, x])
        whole = len(pending) - len(pending) % FRAME
        self._vad_rest = pending[whole:]
        if not whole:
            return
        probs = self._vad.probabilities(pending[:whole])
        for i, p in enumerate(probs):
            if p >= self.options.vad_threshold:
                t = (start + i * FRAME) / SAMPLE_RATE
                if self._speech_start is None:
                    self._speech_start = t
                self._last_speech = t + FRAME / SAMPLE_RATE

    def _drop_silence(self) -> None:
        """No speech since the last utterance: keep only the pre-roll."""
        keep = int(_PRE_ROLL * SAMPLE_RATE)
        if len(self._buffer) > keep:
            self._cut(len(self._buffer) - keep)
        self._since_step = 0

    # -- decoding --------------------------------------------------------------------------

    def _cut(self, n: int) -> None:
        n = max(0, min(n, len(self._buffer)))
        self._buffer = self._buffer[n:].copy()
        self._offset += n / SAMPLE_RATE

    def _decode(self, final: bool = False) -> list[dict]:
        """The buffer's words, in stream time, after what is committed. ``final``: the decode that
        ends an utterance."""
        kwargs = dict(self._kwargs)
        if final and self.options.whole_window_at_endpoint and kwargs.get("trim_window") is not None:
            kwargs["trim_window"] = None
        if self._language is not None:
            kwargs["language"] = self._language
        prompt = "".join(w["word"] for w in self._committed if w["end"] <= self._offset + 0.01)[-_PROMPT_CHARS:]
        if prompt.strip():
            kwargs["initial_prompt"] = prompt.strip()
        result = self.model.transcribe(self._buffer, **kwargs)
        self.stats["steps"] += 1
        self.stats["decoded_seconds"] += len(self._buffer) / SAMPLE_RATE
        timings = getattr(self.model, "last_timings", None) or {}
        for stage in _TIMED_STAGES:  # CPU seconds of the whole process in each stage of the steps
            self.stats[stage + "_cpu"] += float(timings.get(stage + "_cpu", 0.0))
        if self._language is None:
            self._language = result["language"]
        words = []
        for segment in result["segments"]:
            for w in segment.get("words", []):
                words.append(dict(w, start=w["start"] + self._offset, end=w["end"] + self._offset))
        return self._after_committed(words)

    def _after_committed(self, words: list[dict]) -> list[dict]:
        """Drops the words that repeat committed ones (the buffer still holds their audio)."""
        words = [w for w in words if w["end"] > self._committed_end + 0.05]
        tail = [_key(w) for w in self._committed]
        for n in range(min(_OVERLAP_WORDS, len(tail), len(words)), 0, -1):
            if tail[-n:] == [_key(w) for w in words[:n]]:
                return words[n:]
        return words

    def _commit(self, words: list[dict]) -> list[StreamEvent]:
        if not words:
            return []
        for w in words:  # committed time only moves forward
            w["start"] = max(w["start"], self._committed_end)
            w["end"] = max(w["end"], w["start"])
            self._committed_end = w["end"]
            self._committed.append(w)
        text = "".join(w["word"] for w in words)
        kept = [dict(w) for w in words] if self.options.word_timestamps else []
        return [StreamEvent("committed", text, words[0]["start"], words[-1]["end"], kept)]

    def _step(self) -> list[StreamEvent]:
        self._since_step = 0
        events = self._trim()
        hypothesis = _without_squeezed_tail(self._decode())
        history = list(self._hypotheses) + [hypothesis]
        unsure_after = self._offset + len(self._buffer) / SAMPLE_RATE - self.options.unsure_word_wait
        agreed = (_agreed_prefix(history, self.options.min_word_probability, unsure_after)
                  if len(history) >= self.options.agreement else 0)
        events += self._commit(hypothesis[:agreed])
        pending = hypothesis[agreed:]
        self._hypotheses.append(pending)
        for i in range(len(self._hypotheses) - 1):  # older hypotheses lose the committed prefix too
            self._hypotheses[i] = self._hypotheses[i][agreed:]
        text = "".join(w["word"] for w in pending)
        end = pending[-1]["end"] if pending else self._committed_end
        events.append(StreamEvent("partial", text, pending[0]["start"] if pending else end, end))
        return events

    def _trim(self) -> list[StreamEvent]:
        """Keeps the buffer within trim_seconds by cutting after committed words; past max_buffer
        (nothing agreed for that long) the oldest pending words are committed first."""
        events: list[StreamEvent] = []
        seconds = len(self._buffer) / SAMPLE_RATE
        if seconds > self.options.trim_seconds and self._committed_end > self._offset:
            self._cut(int((self._committed_end - self._offset) * SAMPLE_RATE))
            seconds = len(self._buffer) / SAMPLE_RATE
        if seconds <= self.options.max_buffer:
            return events
        if self._hypotheses:
            horizon = self._offset + seconds - self.options.trim_seconds
            forced = [w for w in self._hypotheses[-1] if w["end"] <= horizon]
            events = self._commit(forced)
            for i in range(len(self._hypotheses)):
                self._hypotheses[i] = self._hypotheses[i][len(forced):]
        cut = max(self._committed_end - self._offset, seconds - self.options.max_buffer)
        self._cut(int(math.ceil(cut * SAMPLE_RATE)))
        return events

    def _finish(self) -> list[StreamEvent]:
        """The utterance ended (a pause, or the stream's end): commit all that is pending."""
        self._since_step = 0
        events = self._trim()
        events += self._commit(self._decode(final=True))
        events.append(StreamEvent("endpoint", "", self._speech_start or self._offset, self.now))
        self._hypotheses.clear()
        self._speech_start = None
        if self._vad is not None:
            self._drop_silence()
        else:
            self._cut(len(self._buffer))
        return events
