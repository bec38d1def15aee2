"""Word-level timestamps: openai-whisper's method on the native decoder.

The segment's text tokens are run through the decoder once as a forced prompt, recording the
cross-attention scores of the model's alignment heads (``Decoder.alignment``). Per head the
scores become attention weights over the audio frames (softmax), are standardised along the
tokens and median-filtered along time; averaged over the heads they form a token x frame
similarity whose least-cost monotonic path (dynamic time warping, native) says at which audio
frame each token starts. Words are the tokenizer's word splits; a word starts where its first
token's path starts and ends where the next word's does. Punctuation then joins its neighbour
word, and words that run too long at pauses and sentence ends are trimmed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .. import _core
from ..audio import HOP_LENGTH, SAMPLE_RATE
from ..tokenizer import Tokenizer

# openai-whisper's defaults for which punctuation joins the next / the previous word.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END_MARKS = ".。!！?？"
TOKENS_PER_SECOND = SAMPLE_RATE // (2 * HOP_LENGTH)  # audio positions per second: 50
MEDIAN_FILTER_WIDTH = 7


@dataclass
class WordTiming:
    word: str
    tokens: list[int] = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0
    probability: float = 0.0


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a sliding window of odd `width` along the last axis, reflected at the edges."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x  # too short to reflect: leave it (openai-whisper does the same)
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.sort(windows, axis=-1)[..., pad]


def _attention_matrix(qk: np.ndarray, prefix: int, medfilt_width: int, qk_scale: float) -> np.ndarray:
    """Token x frame similarity from the heads' scores [heads, tokens, frames]: per head a softmax over
    the frames, standardised over the tokens, median-filtered over time; then the heads' mean. Rows
    from `prefix` (the <|notimestamps|> position) to the last text token."""
    w = qk.astype(np.float32) * np.float32(qk_scale)
    w = np.exp(w - w.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    mean = w.mean(axis=-2, keepdims=True)
    std = w.std(axis=-2, keepdims=True)
    # A frame every token attends to alike (e.g. a one-frame window) has std 0: it carries no
    # alignment, so it stays 0 instead of openai-whisper's NaN (which would poison the DTW).
    w = np.divide(w - mean, std, out=np.zeros_like(w), where=std > 0)
    w = median_filter(w, medfilt_width)
    return w.mean(axis=0)[prefix:-1]


def find_alignment(decoder: Any, tokenizer: Tokenizer, heads: Sequence[tuple[int, int]], text_tokens: list[int],
                   num_frames: int, medfilt_width: int = MEDIAN_FILTER_WIDTH, qk_scale: float = 1.0) -> list[WordTiming]:
    """Each word of `text_tokens` with its start and end (seconds from the window's start) and the mean
    probability of its tokens, on the window set in `decoder` (`num_frames` mel frames of audio)."""
    if not text_tokens or num_frames // 2 < 1:
        return []
    prefix = list(tokenizer.sot_sequence)
    tokens = prefix + [tokenizer.no_timestamps] + list(text_tokens) + [tokenizer.eot]
    qk, next_probs = decoder.alignment(tokens, [tuple(h) for h in heads], num_frames // 2, tokenizer.eot)
    matrix = _attention_matrix(qk, len(prefix), medfilt_width, qk_scale)
    token_rows, frames = _core.dtw(-matrix)
    words, word_tokens = tokenizer.split_to_word_tokens(list(text_tokens) + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []  # only <|endoftext|>: nothing to time
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    # The path's first frame on each token row is where that token starts.
    jumps = np.pad(np.diff(token_rows), (1, 0), constant_values=1).astype(bool)
    jump_times = frames[jumps] / TOKENS_PER_SECOND
    starts, ends = jump_times[boundaries[:-1]], jump_times[boundaries[1:]]
    text_probs = next_probs[len(prefix):len(prefix) + len(text_tokens)]
    probabilities = [float(np.mean(text_probs[i:j])) for i, j in zip(boundaries[:-1], boundaries[1:])]
    return [WordTiming(w, t, float(s), float(e), p)
            for w, t, s, e, p in zip(words, word_tokens, starts, ends, probabilities)]


def merge_punctuations(alignment: list[WordTiming], prepended: str, appended: str) -> None:
    """Opening punctuation (a word of its own in `prepended`) joins the word after it; closing
    punctuation (in `appended`) joins the word before it. The emptied entries stay, word ''."""
    following = len(alignment) - 1
    for i in range(len(alignment) - 2, -1, -1):  # right to left: "( ( word" all join `word`
        previous, nxt = alignment[i], alignment[following]
        if previous.word.startswith(" ") and previous.word.strip() in prepended:
            nxt.word, nxt.tokens = previous.word + nxt.word, previous.tokens + nxt.tokens
            previous.word, previous.tokens = "", []
        else:
            following = i
    preceding = 0
    for j in range(1, len(alignment)):  # left to right: "word . ." all join `word`
        prev, nxt = alignment[preceding], alignment[j]
        if not prev.word.endswith(" ") and nxt.word in appended:
            prev.word, prev.tokens = prev.word + nxt.word, prev.tokens + nxt.tokens
            nxt.word, nxt.tokens = "", []
        else:
            preceding = j


def _median_duration(alignment: list[WordTiming]) -> float:
    durations = np.array([w.end - w.start for w in alignment])
    durations = durations[durations.nonzero()]
    return min(0.7, float(np.median(durations))) if len(durations) else 0.0


def _clip_at_sentence_ends(alignment: list[WordTiming], max_duration: float) -> None:
    """A sentence mark, or the word after one, is not longer than `max_duration`."""
    for i in range(1, len(alignment)):
        w = alignment[i]
        if w.end - w.start <= max_duration:
            continue
        if w.word in SENTENCE_END_MARKS:
            w.end = w.start + max_duration
        elif alignment[i - 1].word in SENTENCE_END_MARKS:
            w.start = w.end - max_duration


def _fit_segment(segment: dict, words: list[dict], median: float, last_speech: float) -> None:
    """The first words after a pause, and the segment's ends, made consistent with each other."""
    max_duration = 2 * median
    first = words[0]
    long_after_pause = first["end"] - last_speech > 4 * median and (
        first["end"] - first["start"] > max_duration
        or (len(words) > 1 and words[1]["end"] - first["start"] > 2 * max_duration))
    if long_after_pause:
        if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
            boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
            first["end"] = words[1]["start"] = boundary
        first["start"] = max(0, first["end"] - max_duration)
    # A first (last) word much longer than the segment's own bound gives way to it, else the
    # segment takes the word's time.
    if segment["start"] < first["end"] and segment["start"] - 0.5 > first["start"]:
        first["start"] = max(0, min(first["end"] - median, segment["start"]))
    else:
        segment["start"] = first["start"]
    last = words[-1]
    if segment["end"] > last["start"] and segment["end"] + 0.5 < last["end"]:
        last["end"] = max(last["start"] + median, segment["end"])
    else:
        segment["end"] = last["end"]


def add_word_timestamps(segments: list[dict], decoder: Any, tokenizer: Tokenizer, heads: Sequence[tuple[int, int]],
                        num_frames: int, *, prepend_punctuations: str = PREPEND_PUNCTUATIONS,
                        append_punctuations: str = APPEND_PUNCTUATIONS, last_speech_timestamp: float = 0.0) -> None:
    """Gives each segment of one window its "words" ({word, start, end, probability}, seconds from the
    recording's start) and moves the segments' ends to their words'."""
    if not segments:
        return
    per_segment = [[t for t in s["tokens"] if t < tokenizer.eot] for s in segments]
    alignment = find_alignment(decoder, tokenizer, heads, list(itertools.chain.from_iterable(per_segment)),
                               num_frames)
    median = _median_duration(alignment)
    if median > 0:
        _clip_at_sentence_ends(alignment, 2 * median)
    merge_punctuations(alignment, prepend_punctuations, append_punctuations)
    time_offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE
    timings = iter(alignment)
    for segment, tokens in zip(segments, per_segment):
        words, taken = [], 0
        while taken < len(tokens):
            timing = next(timings, None)
            if timing is None:
                break
            if timing.word:
                words.append({"word": timing.word, "start": round(time_offset + timing.start, 2),
                              "end": round(time_offset + timing.end, 2), "probability": timing.probability})
            taken += len(timing.tokens)
        if words:
            _fit_segment(segment, words, median, last_speech_timestamp)
            last_speech_timestamp = segment["end"]
        segment["words"] = words


def last_word_end(segments: list[dict]) -> Optional[float]:
    """The end of the last word of these segments, else the last segment's end (None: no segments)."""
    ends = [w["end"] for s in segments for w in s.get("words", [])]
    return ends[-1] if ends else (segments[-1]["end"] if segments else None)


def _word_anomaly(word: dict) -> float:
    """How unlike speech a timed word looks: improbable, far too short, or far too long."""
    duration = word["end"] - word["start"]
    score = 1.0 if word.get("probability", 0.0) < 0.15 else 0.0
    if duration < 0.133:
        score += (0.133 - duration) * 15
    if duration > 2.0:
        score += duration - 2.0
    return score


def is_anomalous(segment: Optional[dict]) -> bool:
    """A segment whose first eight (non-punctuation) words look like a hallucination."""
    if segment is None or not segment.get("words"):
        return False
    words = [w for w in segment["words"] if w["word"] not in PREPEND_PUNCTUATIONS + APPEND_PUNCTUATIONS][:8]
    score = sum(_word_anomaly(w) for w in words)
    return score >= 3 or score + 0.01 >= len(words)


def first_with_words(segments: Sequence[dict]) -> Optional[dict]:
    return next((s for s in segments if s.get("words")), None)
