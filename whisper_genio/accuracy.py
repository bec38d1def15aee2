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


@dataclass(frozen=True)
class LogitsGate:
    """Pass/fail thresholds of the decoder's logits on NPU subgraphs against the CPU decoder's,
    over the self-check's single-token steps (whisper_genio/backends/npu_check.py). Float16
    subgraphs of whisper-base stay far above them (docs/on-device.md gives the measured margin);
    a subgraph the runtime computes wrongly falls far below."""

    min_sqnr_db: float = 30.0
    min_cosine: float = 0.999  # the worst step's
    max_token_mismatches: int = 0  # greedy tokens that differ where the CPU's choice is clear

    def check(self, m: dict) -> list[str]:
        why = []
        if not m["sqnr_db"] >= self.min_sqnr_db:
            why.append(f"logits SQNR {m['sqnr_db']:.1f} dB < {self.min_sqnr_db:g} dB")
        if not m["cosine"] >= self.min_cosine:
            why.append(f"worst step's logits cosine {m['cosine']:.4f} < {self.min_cosine:g}")
        if not m["token_mismatches"] <= self.max_token_mismatches:
            why.append(f"{m['token_mismatches']} greedy token(s) differ from the CPU's")
        return why


def compare_logits(ref: np.ndarray, x: np.ndarray, clear_margin: float) -> dict[str, Any]:
    """ref [steps, V] (the CPU decoder) against x [steps, rows, V] (a plan, each row fed the same
    tokens): SQNR and relative error over everything, the worst step-row's cosine, the largest
    |error|, and the steps whose argmax differs from the CPU's where the CPU's top logit leads
    the runner-up by more than `clear_margin` (a near tie may flip under any rounding)."""
    with np.errstate(all="ignore"):
        ref = np.asarray(ref, np.float32)
        x = np.asarray(x, np.float32)
        r = np.broadcast_to(ref[:, None, :], x.shape)
        err = (x - r).astype(np.float64)
        rn = np.linalg.norm(r.astype(np.float64), axis=-1)
        cos = (np.einsum("srv,srv->sr", r.astype(np.float64), x.astype(np.float64)) /
               (rn * np.linalg.norm(x.astype(np.float64), axis=-1) + 1e-30))
        top2 = np.sort(ref, axis=-1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > clear_margin
        differ = (np.argmax(x, axis=-1) != np.argmax(ref, axis=-1)[:, None]).any(axis=1)
        mism = np.nonzero(differ & clear)[0]
        cos_min = float(np.nan_to_num(cos, nan=-1.0).min())
        return {"sqnr_db": sqnr_db(r, x), "cosine": cos_min, "max_abs": float(np.nan_to_num(np.abs(err), nan=np.inf).max()),
                "relative_error": float(np.linalg.norm(err) / max(float(np.linalg.norm(rn)), 1e-12)),
                "token_mismatches": int(len(mism)), "first_mismatch_step": int(mism[0]) if len(mism) else -1,
                "steps": int(x.shape[0])}
