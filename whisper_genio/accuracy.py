"""How close an encoder's states are to the float32 reference: SQNR, cosine, per-frame error, and
the pass/fail gate calibrated against WER (docs/quantization.md). One definition, used by
`validate`, the quantization study and the NPU self-check at load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def sqnr_db(ref: np.ndarray, x: np.ndarray) -> float:
    ref = np.asarray(ref, np.float64).ravel()
    x = np.asarray(x, np.float64).ravel()
    err = np.linalg.norm(ref - x)
    if err == 0:
        return float("inf")
    return float(20 * np.log10(max(np.linalg.norm(ref), 1e-30) / err))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


@dataclass(frozen=True)
class Gate:
    """Pass/fail thresholds, calibrated against WER (docs/quantization.md)."""

    min_sqnr_db: float = 15.0
    min_cosine: float = 0.98
    max_wer: float = 0.10  # transcript WER against the float encoder's transcript

    def check(self, m: dict) -> list[str]:
        why = []
        if not m["sqnr_db"] >= self.min_sqnr_db:
            why.append(f"SQNR {m['sqnr_db']:.1f} dB < {self.min_sqnr_db:g} dB")
        if not m["cosine"] >= self.min_cosine:
            why.append(f"cosine {m['cosine']:.4f} < {self.min_cosine:g}")
        if m.get("wer") is not None and not m["wer"] <= self.max_wer:
            why.append(f"transcript WER vs float {100 * m['wer']:.1f} % > {100 * self.max_wer:g} %")
        return why


def compare(ref: np.ndarray, x: np.ndarray, frames: int) -> dict[str, Any]:
    with np.errstate(all="ignore"):  # a misread output may hold inf/nan: the metrics say so
        return _compare(ref, x, frames)


def _compare(ref: np.ndarray, x: np.ndarray, frames: int) -> dict[str, Any]:
    ref = np.asarray(ref, np.float32)
    x = np.asarray(x, np.float32)
    rs, xs = ref[:frames], x[:frames]
    err = xs - rs
    per_frame = np.linalg.norm(x - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
    worst = np.argsort(per_frame[:frames])[::-1][:5]
    return {
        "sqnr_db": sqnr_db(rs, xs), "sqnr_window_db": sqnr_db(ref, x), "cosine": cosine(rs, xs),
        "cosine_window": cosine(ref, x), "max_abs": float(np.abs(err).max()),
        "relative_error": float(np.linalg.norm(err) / max(np.linalg.norm(rs), 1e-12)),
        "per_frame_relative_error": {"median": float(np.median(per_frame[:frames])),
                                     "p95": float(np.quantile(per_frame[:frames], 0.95)),
                                     "worst_frames": [{"frame": int(i), "relative_error": float(per_frame[i])}
                                                      for i in worst]},
        "speech_frames": int(frames),
    }
