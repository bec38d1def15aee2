"""Scoring an encoder against the float reference: SQNR, cosine, transcripts, WER.

    ev = Evaluator(model, windows, references=["the text", ...])   # model: a whisper_genio Model
    score = ev.score([states_0, states_1, ...])                    # one [1500, d] per window
    score["sqnr_db"], score["cosine"], score["wer"], score["wer_vs_float"]

SQNR = 20 log10(|ref| / |ref - x|) over the frames that hold audio (``sqnr_db``) and over the
whole window (``sqnr_window_db``): padding frames dominate whole-window numbers for short clips
and can make them misleading in both directions (host-quant-study.md), so decisions use the
speech frames. Transcripts come from whisper_genio's float CPU decoder given the states
(greedy, temperature 0, no timestamps), so every scheme is judged by the same decoder.
WER uses openai-whisper's EnglishTextNormalizer and jiwer when installed (word-level edit
distance otherwise), over the whole set (errors / reference words).
"""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence

import numpy as np

from ...accuracy import cosine, sqnr_db  # noqa: F401 (evaluate.cosine, evaluate.sqnr_db)
from .calibrate import CalibrationWindows


def normalizer() -> Any:
    try:
        from whisper.normalizers import EnglishTextNormalizer  # type: ignore

        return EnglishTextNormalizer()
    except ImportError:
        return _plain_normalizer


def _plain_normalizer(text: str) -> str:
    """Lower case, punctuation to spaces, one space between words (always a str, even for no words)."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def word_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[int, int]:
    """(errors, reference words) over normalized texts."""
    norm = normalizer()
    e = n = 0
    for r, h in zip(refs, hyps):
        rw, hw = norm(r).split(), norm(h).split()
        e += _edit_distance(rw, hw)
        n += len(rw)
    return e, n


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    e, n = word_errors(refs, hyps)
    return e / n if n else 0.0


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def transcribe_states(model: Any, states: np.ndarray, *, language: str = "en") -> str:
    """Text the float decoder reads from encoder states [1500, d] (greedy, no timestamps)."""
    s = np.ascontiguousarray(states, np.float32).reshape(model.dims.n_audio_ctx, model.dims.n_audio_state)
    kw = {"language": language} if model.is_multilingual else {}
    return model.decode(s, without_timestamps=True, **kw).text


class Evaluator:
    """Float reference states and transcripts of a set of windows, and scores against them."""

    def __init__(self, model: Any, windows: CalibrationWindows, references: Optional[Sequence[str]] = None,
                 reference_states: Optional[Sequence[np.ndarray]] = None, language: str = "en",
                 float_texts: Optional[Sequence[str]] = None) -> None:
        self.model = model
        self.windows = windows
        self.language = language
        self.references = list(references) if references is not None else None
        if reference_states is None:
            reference_states = [np.array(model.encode(np.ascontiguousarray(m)), np.float32) for m in windows.mels]
        self.ref_states = [np.asarray(s, np.float32).reshape(model.dims.n_audio_ctx, -1) for s in reference_states]
        self.float_texts = list(float_texts) if float_texts is not None else \
            [transcribe_states(model, s, language=language) for s in self.ref_states]

    def score(self, states: Sequence[np.ndarray], *, transcripts: bool = True) -> dict[str, Any]:
        n = [int(c) for c in self.windows.content_frames]
        d = self.model.dims.n_audio_state
        xs = [np.asarray(s, np.float32).reshape(-1, d) for s in states]
        ref_sp = np.concatenate([r[:k] for r, k in zip(self.ref_states, n)])
        x_sp = np.concatenate([x[:k] for x, k in zip(xs, n)])
        out: dict[str, Any] = {
            "sqnr_db": sqnr_db(ref_sp, x_sp),
            "sqnr_window_db": sqnr_db(np.stack(self.ref_states), np.stack(xs)),
            "cosine": cosine(ref_sp, x_sp),
            "max_abs": float(np.abs(ref_sp - x_sp).max()),
            "per_window_sqnr_db": [sqnr_db(r[:k], x[:k]) for r, x, k in zip(self.ref_states, xs, n)],
        }
        if transcripts:
            texts = [transcribe_states(self.model, x, language=self.language) for x in xs]
            out["texts"] = texts
            out["wer_vs_float"] = wer(self.float_texts, texts)
            out["same_transcripts"] = sum(normalizer()(a) == normalizer()(b) for a, b in zip(self.float_texts, texts))
            if self.references is not None:
                out["wer"] = wer(self.references, texts)
                out["wer_float"] = wer(self.references, self.float_texts)
        return out
