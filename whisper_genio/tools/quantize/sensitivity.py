"""Per-layer sensitivity and the mixed-precision search.

A matrix product runs in int8 only when the activations it reads *and* writes are 8-bit (the
TFLite kernel's type is its output's; an int8 input with an int16 output is an int16x8 op).
So the search moves whole products to int8, each move setting the roles it touches to 8 bits:

    qkv     ln1, q, k, v           q/k/v projections            ~17 % of a block's MACs
    fc1     ln2, fc1               fc1                           ~22 %
    logits  q, k, qk               q·kᵀ                          ~16 %
    attn_v  softmax, v, pv         softmax·v                     ~16 %
    out     pv, attn_out           out-projection                 ~6 %
    fc2     gelu, fc2              fc2                           ~22 %
    stem    mel, conv1, gelu1, conv2   conv stem              (a few % overall)

Starting from A16W8, each move is first tried alone (its *sensitivity*: the SQNR it costs),
then moves are added greedily, cheapest loss per int8 MAC first, keeping a move only when the
encoder output still meets the target: SQNR on the speech frames >= target_db and, because
SQNR alone picked bad sets in the study (host-quant-study.md), transcripts from the float
decoder within max_wer_vs_float of the float encoder's. The result is the scheme with the
largest int8 MAC share found that way (greedy, not exhaustive).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from .schemes import BUILTIN, Scheme, mac_summary

MOVES: dict[str, tuple[str, ...]] = {
    "qkv": ("ln1", "q", "k", "v"),
    "fc1": ("ln2", "fc1"),
    "logits": ("q", "k", "qk"),
    "attn_v": ("softmax", "v", "pv"),
    "out": ("pv", "attn_out"),
    "fc2": ("gelu", "fc2"),
    "stem": ("mel", "conv1", "gelu1", "conv2"),
}


def with_moves(base: Scheme, moves: Sequence[str], name: str = "mixed") -> Scheme:
    overrides = dict(base.overrides)
    for m in moves:
        for r in MOVES[m]:
            overrides[r] = 8
    return Scheme(name, base.kind, base.activation_bits, base.weight_bits, base.per_channel, overrides)


@dataclass
class Trial:
    moves: tuple[str, ...]
    scheme: Scheme
    score: dict[str, Any]
    int8_mac_share: float
    accepted: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        s = {k: v for k, v in self.score.items() if k != "texts"}
        return {"moves": list(self.moves), "scheme": self.scheme.spec(), "int8_mac_share": self.int8_mac_share,
                "accepted": self.accepted, "seconds": round(self.seconds, 1), "score": s}


@dataclass
class SearchResult:
    scheme: Scheme
    baseline: Trial
    isolated: dict[str, Trial] = field(default_factory=dict)
    steps: list[Trial] = field(default_factory=list)
    target_db: float = 0.0
    max_wer_vs_float: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"scheme": self.scheme.spec(), "target_db": self.target_db, "max_wer_vs_float": self.max_wer_vs_float,
                "baseline": self.baseline.to_json(), "isolated": {k: v.to_json() for k, v in self.isolated.items()},
                "steps": [t.to_json() for t in self.steps]}


def search(evaluate: Callable[[Scheme], dict[str, Any]], dims: Any, *, base: Optional[Scheme] = None,
           target_db: float = 20.0, max_wer_vs_float: float = 0.05, moves: Sequence[str] = tuple(MOVES),
           log: Optional[Callable[[str], None]] = None) -> SearchResult:
    """Greedy mixed-precision search. `evaluate(scheme)` returns a score with "sqnr_db" and
    "wer_vs_float" (see evaluate.Evaluator.score)."""
    say = log or (lambda _m: None)
    base = base or BUILTIN["a16w8"]

    def trial(ms: Sequence[str]) -> Trial:
        scheme = with_moves(base, ms)
        t0 = time.perf_counter()
        score = evaluate(scheme)
        t = Trial(tuple(ms), scheme, score, mac_summary(scheme, dims)["int8_mac_share"],
                  seconds=time.perf_counter() - t0)
        t.accepted = ok(score)
        return t

    def ok(score: dict[str, Any]) -> bool:
        return score["sqnr_db"] >= target_db and score.get("wer_vs_float", 0.0) <= max_wer_vs_float

    baseline = trial(())
    say(f"baseline {base.name}: {baseline.score['sqnr_db']:.1f} dB, "
        f"WER vs float {100 * baseline.score.get('wer_vs_float', 0):.1f} %")
    result = SearchResult(base, baseline, target_db=target_db, max_wer_vs_float=max_wer_vs_float)
    for m in moves:
        t = trial((m,))
        result.isolated[m] = t
        say(f"  alone {m:7s}: {t.score['sqnr_db']:6.1f} dB, WER vs float "
            f"{100 * t.score.get('wer_vs_float', 0):5.1f} %, int8 MACs {100 * t.int8_mac_share:4.1f} %")

    def cost(m: str) -> float:
        loss = max(0.0, baseline.score["sqnr_db"] - result.isolated[m].score["sqnr_db"])
        gain = max(result.isolated[m].int8_mac_share, 1e-6)
        return loss / gain

    chosen: list[str] = []
    best = baseline
    for m in sorted(moves, key=cost):
        if not result.isolated[m].accepted:
            continue
        t = trial(chosen + [m])
        result.steps.append(t)
        say(f"  + {m:7s}: {t.score['sqnr_db']:6.1f} dB, WER vs float {100 * t.score.get('wer_vs_float', 0):5.1f} %, "
            f"int8 MACs {100 * t.int8_mac_share:4.1f} % -> {'keep' if t.accepted else 'reject'}")
        if t.accepted:
            chosen.append(m)
            best = t
    result.scheme = with_moves(base, chosen, "mixed")
    if best is baseline:
        result.scheme = Scheme("mixed", base.kind, base.activation_bits, base.weight_bits, base.per_channel, {})
    return result
