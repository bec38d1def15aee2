"""Decoder offload: which decoder ops run on NPU subgraphs, which on the CPU, and why.

``decoder_offload`` picks the plan:

- ``"none"``: every op on the CPU kernels;
- ``"linear"``: each projection (self-attention QKV and output, cross-attention query and
  output, fc1, fc2) and each vocabulary chunk on its own subgraph where the bundle has one;
- ``"layer"``: a whole decoder-layer step (its KV cache bound to the NPU) where the bundle has
  one, else that layer's linear subgraphs, else the CPU;
- ``"auto"``: the same as ``"layer"``, from whatever the bundle and the runtime offer (with no
  subgraphs at all it is ``"none"``).

Subgraphs have a fixed batch (the beam count they were compiled for). Single-token steps with
that many rows run on them; the prompt of each window runs on the CPU (see
csrc/src/offload/decoder_offload.h for why). A subgraph that is missing or fails to load leaves
its op on the CPU, and the plan says why. Subgraph files are checked numerically against the
CPU decoder when a plan is installed (``Model.set_decoder_offload``; see npu_check.py): one
that fails raises ``NpuSelfCheckError``, or with ``npu_fallback="cpu"`` its op stays on the CPU
with the numbers as the reason.
"""

from __future__ import annotations

import pathlib
from collections import defaultdict
from typing import Any, Iterable, Mapping, Optional, Sequence

from .. import _core

MODES = _core.DECODER_OFFLOAD_MODES  # "none", "linear", "layer", "auto"
LINEAR_OPS = ("self_qkv", "self_out", "cross_q", "cross_out", "fc1", "fc2")


def entries_from_bundle(bundle: Any, prefer: Sequence[str] = ("dla",)) -> list[dict[str, Any]]:
    """Native subgraph entries (absolute file paths) for the runtime, from a parsed Bundle."""
    out = []
    for e in bundle.decoder_subgraphs:
        kind = next((k for k in prefer if k in e["files"]), None)
        if kind is None:
            continue
        n = {k: e[k] for k in ("op", "layer", "chunk", "batch", "col0", "cols") if k in e}
        n["file"] = str(pathlib.Path(bundle.root) / e["files"][kind])
        n["inputs"] = [dict(t) for t in e["inputs"]]
        n["outputs"] = [dict(t) for t in e["outputs"]]
        out.append(n)
    return out


def install(decoder: Any, mode: str, entries: Iterable[Mapping[str, Any]] = (), *,
            batches: Optional[Sequence[int]] = None, library: Optional[str] = None,
            dma_heap: Optional[str] = None, neuron_api: str = "auto", strict: bool = False) -> list[dict[str, Any]]:
    """Loads the subgraphs into the native decoder and returns the plan (one dict per op).

    An entry is a subgraph file ({"op", "layer"/"chunk"+"col0"+"cols", "batch", "file",
    "inputs", "outputs"}) or a Python callback ({..., "callback": f}) with f(x [B, in]) ->
    [B, out] (host numerics: LiteRT, ONNX Runtime, tests)."""
    entries = [dict(e) for e in entries]
    if batches is None:
        batches = sorted({int(e["batch"]) for e in entries}) or [1]
    if dma_heap is not None and dma_heap.lower() in ("none", ""):
        dma_heap = ""
    return _core.decoder_set_offload(decoder, mode, list(batches), entries, library=library, dma_heap=dma_heap,
                                     neuron_api=neuron_api, strict=strict)


def summarize(plan: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per batch: planned MACs per row and token on the NPU and the CPU, their share, op counts.

    MACs are those of the projections and the vocabulary (the attention dot products, which
    grow with the position, are counted at run time: ``Model.offload_stats()``)."""
    out: dict[int, dict[str, Any]] = {}
    for e in plan:
        s = out.setdefault(e["batch"], {"npu_macs": 0, "cpu_macs": 0, "npu_ops": 0, "cpu_ops": 0})
        where = e["where"]
        s[f"{where}_macs"] += e["macs"]
        s[f"{where}_ops"] += 1
    for s in out.values():
        total = s["npu_macs"] + s["cpu_macs"]
        s["npu_share"] = s["npu_macs"] / total if total else 0.0
    return out


def _name(e: Mapping[str, Any]) -> str:
    if e["op"] == "vocab":
        return f"vocab[{e['col0']}:{e['col0'] + e['cols']}]"
    return f"layer {e['layer']} {e['op']}"


def format_plan(plan: Sequence[Mapping[str, Any]], mode: str = "") -> str:
    """A few lines: per batch the NPU share and op counts, then each distinct CPU reason with the
    ops it applies to."""
    if not plan:
        return "decoder plan: every op on the CPU (no plan installed)"
    lines = [f"decoder plan{f' ({mode})' if mode else ''}:"]
    for batch, s in sorted(summarize(plan).items()):
        lines.append(f"  batch {batch}: {s['npu_ops']} op(s) on the NPU, {s['cpu_ops']} on the CPU; "
                     f"{100 * s['npu_share']:.1f} % of the projection+vocabulary MACs per token on the NPU")
        reasons: dict[str, list[str]] = defaultdict(list)
        for e in plan:
            if e["batch"] == batch and e["where"] == "cpu":
                reasons[e["reason"]].append(_name(e))
        for why, ops in reasons.items():
            shown = ", ".join(ops[:4]) + (f" and {len(ops) - 4} more" if len(ops) > 4 else "")
            lines.append(f"    cpu: {shown}: {why}")
        npu = [e for e in plan if e["batch"] == batch and e["where"] == "npu"]
        if npu:
            kinds = sorted({e["op"] for e in npu})
            lines.append(f"    npu: {', '.join(kinds)} ({npu[0]['runner'].split(' (')[0]} ...)")
    return "\n".join(lines)
