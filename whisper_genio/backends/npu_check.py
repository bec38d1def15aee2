"""Numerical self-check of NPU artifacts when they load: is what the NPU computes right?

Three kinds are checked with one cache, one error type and one fallback option: an encoder DLA
(the neuron backend), an ONNX encoder on a provider other than ORT's CPU one (the onnxruntime
backend with NeuronExecutionProvider: the same encoder check), and the decoder's NPU subgraphs
(the section "decoder subgraphs" below).

A runtime that trusts NPU output can return wrong text: on a Genio 720, Neuron runtime 8.2.16
computed a large FP16 BATCH_MATMUL wrongly on the MDLA (max abs error 29 where the simulator
gave 0.003; ../shared/docs/board-reports.md). So when an encoder DLA loads, one window of real
speech shipped with the package (``data/self_check_jfk_16k.npy``: the 11 s of JFK's 1961
inaugural address that openai-whisper tests with, public domain, 16 kHz int16) runs through the
NPU and through the float32 CPU encoder, and the NPU's states must pass the gate ``validate``
uses (:class:`whisper_genio.accuracy.Gate`: SQNR and cosine on the speech frames,
thresholds calibrated against WER in docs/quantization.md).

The verdict is cached per (artifact hash, I/O description, runtime version, SoC, model dims) in
``$WHISPER_GENIO_CACHE_DIR`` (default ``$XDG_CACHE_HOME/whisper_genio``, else
``~/.cache/whisper_genio``), file ``npu_self_check.json``: a second load reads it and runs nothing.
A failed check raises :class:`NpuSelfCheckError` with the numbers; with ``npu_fallback="cpu"``
the model runs the encoder on the CPU instead and says why (``Model.backend_skipped``,
``Model.backend_info``, ``doctor``).

``self_test=False`` (``--no-self-test``) skips this check with the input-latching one;
``WHISPER_GENIO_NPU_SELF_CHECK=0`` skips only this one (the tests set it for stand-in models
that compute a plain linear map, which no gate would pass).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from .. import _core
from ..errors import NpuSelfCheckError

CLIP = pathlib.Path(__file__).resolve().parent.parent / "data" / "self_check_jfk_16k.npy"
CACHE_FILE = "npu_self_check.json"
ENV = "WHISPER_GENIO_NPU_SELF_CHECK"
FALLBACKS = ("raise", "cpu")
HOP_LENGTH = 160


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> pathlib.Path:
    if os.environ.get("WHISPER_GENIO_CACHE_DIR"):
        return pathlib.Path(os.environ["WHISPER_GENIO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "whisper_genio"


def soc_name() -> str:
    """The SoC this runs on ("MT8390"), or "unknown" off a Genio board."""
    from ..socs import identify_soc, read_compatible

    soc = identify_soc(read_compatible())
    return soc.soc if soc is not None else "unknown"


def file_hash(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(artifact: os.PathLike | str, io: Any, runtime_version: str, soc: str, dims: Any) -> str:
    """One key per (artifact bytes, what the manifest says its bytes are, runtime, SoC, model)."""
    desc = json.dumps({"artifact": file_hash(artifact), "io": io, "runtime": runtime_version, "soc": soc,
                       "dims": dims.to_dict()}, sort_keys=True, default=str)
    return hashlib.sha256(desc.encode()).hexdigest()


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / CACHE_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or unreadable: the check runs again


def _cached(data: Mapping[str, Any], key: str) -> Optional[dict[str, Any]]:
    """The verdict stored under key (marked cached), or None when there is none usable."""
    v = data.get(key)
    if isinstance(v, dict) and "passed" in v and "sqnr_db" in v:
        return dict(v, cached=True)
    return None


def _write_cache(key: str, verdict: Mapping[str, Any]) -> None:
    _write_cache_many({key: verdict})


def _write_cache_many(verdicts: Mapping[str, Mapping[str, Any]]) -> None:
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        data = _read_cache()
        for key, verdict in verdicts.items():
            data[key] = {k: v for k, v in verdict.items() if k != "cached"}
        tmp = d / f".{CACHE_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, d / CACHE_FILE)
    except OSError:
        pass  # a read-only home: the check runs at every load, it is still right


def self_check_window(n_mels: int) -> tuple[np.ndarray, int]:
    """The shipped clip's mel window (as transcribe makes it) and its speech frames in the states."""
    samples = np.load(CLIP).astype(np.float32) / np.float32(32768.0)
    w = _core.MelWindows(samples, n_mels)
    mel = np.array(w.window(0, w.content_frames), np.float32)
    frames = -(-len(samples) // (2 * HOP_LENGTH))
    return mel, frames


def run_check(npu_encoder: Any, checkpoint: Any, pool: Any) -> dict[str, Any]:
    """The NPU encoder's states on the self-check window against the float32 CPU encoder's."""
    from ..accuracy import Gate, compare

    dims = checkpoint.dims
    mel, frames = self_check_window(dims.n_mels)
    frames = min(frames, dims.n_audio_ctx)
    ref = np.array(_core.CpuEncoder(dims.to_dict(), checkpoint.tensors, pool, "float32").encode(mel), np.float32)
    got = np.array(npu_encoder.encode(mel), np.float32)
    m = compare(ref, got, frames)
    gate = Gate()
    why = gate.check(m)
    return {"passed": not why, "why": why, "sqnr_db": m["sqnr_db"], "cosine": m["cosine"], "max_abs": m["max_abs"],
            "relative_error": m["relative_error"], "speech_frames": frames,
            "gate": {"min_sqnr_db": gate.min_sqnr_db, "min_cosine": gate.min_cosine}}


def describe(verdict: Mapping[str, Any]) -> str:
    """"SQNR 31.2 dB, cosine 0.9995, max |error| 0.02 on 550 speech frames" (+ what failed)."""
    s = (f"SQNR {verdict['sqnr_db']:.1f} dB, cosine {verdict['cosine']:.4f}, max |error| {verdict['max_abs']:.3g} "
         f"on {verdict['speech_frames']} speech frames of the self-check window")
    if verdict.get("why"):
        s += " (gate: " + "; ".join(verdict["why"]) + ")"
    return s


def check_encoder(name: str, npu_encoder: Any, checkpoint: Any, pool: Any, *, artifact: os.PathLike | str,
                  io: Any, runtime_version: str) -> dict[str, Any]:
    """Runs (or reads from the cache) the self-check of one NPU encoder; raises
    NpuSelfCheckError when it fails. Returns the verdict ({"passed", "cached", numbers})."""
    key = cache_key(artifact, io, runtime_version, soc_name(), checkpoint.dims)
    cached = _cached(_read_cache(), key)
    if cached is not None:
        verdict = cached
    else:
        verdict = run_check(npu_encoder, checkpoint, pool)
        _write_cache(key, verdict)
        verdict["cached"] = False
    if not verdict["passed"]:
        raise NpuSelfCheckError(
            f"{name}: the NPU's encoder output on real speech fails the accuracy gate: {describe(verdict)}. The "
            f"runtime ({runtime_version}) computes this artifact wrongly on this board, or the manifest misdescribes "
            "its I/O (dtype, scale, zero point, layout). Load with npu_fallback='cpu' to run the encoder on the CPU "
            "instead, or see docs/on-device.md", verdict)
    return verdict


# -- decoder subgraphs --------------------------------------------------------------------------
#
# The same question for the decoder's NPU subgraphs (whisper_genio/backends/decoder_offload.py):
# on the self-check window's encoder states, a greedy run of DECODER_STEPS single-token steps on
# the CPU kernels gives the reference tokens and logits; the plan then runs the same tokens
# (teacher-forced, each batch's subgraphs with that many identical rows) and its logits must pass
# accuracy.LogitsGate at every step. When they do not, halves of the unchecked subgraphs are
# installed alone until each failing subgraph is found by itself (or a group of them that fails
# only together), so the fallback moves only those to the CPU. Verdicts are cached per subgraph:
# (file hash, its manifest tensors and slot, runtime version, SoC, model dims).

DECODER_STEPS = 24  # single-token steps compared (a few tens of tokens of the JFK window)
# Steps compared for batches of several rows (beam search's subgraphs): the same ops on more
# rows; a few steps show whether the runtime computes them right, at a fraction of the time.
BATCH_STEPS = 4
# A greedy token may differ only where the CPU's top logit leads by at most this much: a near
# tie that any rounding may flip (float16 subgraphs move whisper-base's logits by ~0.01).
CLEAR_MARGIN = 0.5


def slot(e: Mapping[str, Any]) -> tuple[str, int, int, int]:
    """(op, layer, first vocabulary column, batch): which op of the plan an entry computes."""
    vocab = e["op"] == "vocab"
    return (str(e["op"]), -1 if vocab else int(e.get("layer", -1)), int(e.get("col0", 0)) if vocab else 0,
            int(e["batch"]))


def slot_name(s: tuple[str, int, int, int]) -> str:
    op, layer, col0, batch = s
    return (f"vocab[{col0}:] batch {batch}" if op == "vocab" else f"layer {layer} {op} batch {batch}")


def decoder_key(entry: Mapping[str, Any], runtime_version: str, soc: str, dims: Any) -> str:
    io = {"slot": list(slot(entry)), "cols": entry.get("cols"), "inputs": entry.get("inputs"),
          "outputs": entry.get("outputs")}
    return cache_key(entry["file"], io, runtime_version, soc, dims)


def describe_logits(v: Mapping[str, Any]) -> str:
    """"logits SQNR 52.1 dB, worst step cosine 1.0000, max |error| 0.02, 0 token(s) differ over 24
    steps" (+ what failed)."""
    s = (f"logits SQNR {v['sqnr_db']:.1f} dB, worst step cosine {v['cosine']:.4f}, max |error| {v['max_abs']:.3g}, "
         f"{v['token_mismatches']} greedy token(s) differ over {v['steps']} steps of the self-check window")
    if v.get("why"):
        s += " (gate: " + "; ".join(v["why"]) + ")"
    return s


class DecoderCheck:
    """One self-check of a decoder plan: the CPU reference once, then groups of subgraphs.

    decoder: the native Decoder; states: encoder states of the self-check window; prompt: the
    start-of-transcript tokens; install(entries) installs a plan of those entries (in the mode
    asked for) and returns it."""

    def __init__(self, decoder: Any, n_text_ctx: int, states: np.ndarray, prompt: Sequence[int],
                 install: Callable[[list], list], steps: int = DECODER_STEPS) -> None:
        self.decoder, self.states, self.prompt, self.install = decoder, states, list(prompt), install
        n_ctx = n_text_ctx
        self.steps = max(1, min(steps, n_ctx - len(self.prompt) - 1))
        self.ref_tokens: list[int] = []
        self.ref_logits: Optional[np.ndarray] = None
        self.runs = 0

    def reference(self) -> None:
        """The CPU decoder's greedy steps (the caller has installed no plan)."""
        self.decoder.set_audio(self.states)
        tokens, logits = self.decoder.step_logits(self.prompt, [-1] * self.steps, 1)
        self.ref_tokens, self.ref_logits = list(tokens), np.asarray(logits)[:, 0, :]

    def run_group(self, group: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Installs `group` alone and compares its steps with the CPU's: the verdict of the group."""
        from ..accuracy import LogitsGate, compare_logits

        plan = self.install(list(group))
        used = {slot(e) for e in plan if e["where"] == "npu"}
        gate = LogitsGate()
        worst: Optional[dict[str, Any]] = None
        for batch in sorted({s[3] for s in used}):
            self.decoder.set_audio(self.states)  # a new plan drops the window (layer steps hold its K/V)
            n = self.steps if batch == 1 else min(self.steps, BATCH_STEPS)
            _, logits = self.decoder.step_logits(self.prompt, self.ref_tokens[:n], batch)
            self.runs += 1
            m = compare_logits(self.ref_logits[:n], np.asarray(logits), CLEAR_MARGIN)
            m["why"], m["batch"] = gate.check(m), batch
            if worst is None or (bool(m["why"]), -m["sqnr_db"]) > (bool(worst["why"]), -worst["sqnr_db"]):
                worst = m
        if worst is None:  # nothing of the group loaded: nothing ran on the NPU to judge
            return {"passed": True, "why": [], "sqnr_db": float("inf"), "cosine": 1.0, "max_abs": 0.0,
                    "relative_error": 0.0, "token_mismatches": 0, "first_mismatch_step": -1, "steps": 0}
        worst["passed"] = not worst["why"]
        worst["gate"] = {"min_sqnr_db": gate.min_sqnr_db, "min_cosine": gate.min_cosine,
                         "max_token_mismatches": gate.max_token_mismatches, "clear_margin": CLEAR_MARGIN}
        return worst

    def localise(self, group: Sequence[Mapping[str, Any]], verdict: Optional[dict[str, Any]] = None
                 ) -> dict[tuple, dict[str, Any]]:
        """Per slot of `group`: its verdict, halving failing groups until each failing subgraph
        stands alone (two halves that pass only fail together: both keep the group's verdict)."""
        if verdict is None:
            verdict = self.run_group(group)
        if verdict["passed"] or len(group) == 1:
            return {slot(e): dict(verdict, alone=len(group) == 1) for e in group}
        half = len(group) // 2
        parts = [group[:half], group[half:]]
        found: dict[tuple, dict[str, Any]] = {}
        results = [self.run_group(p) for p in parts]
        if all(r["passed"] for r in results):
            return {slot(e): dict(verdict, alone=False) for e in group}
        for p, r in zip(parts, results):
            found.update(self.localise(p, r))
        return found


def check_decoder(decoder: Any, dims: Any, mode: str, entries: Sequence[Mapping[str, Any]],
                  install: Callable[[str, list], list], *, states: Callable[[], np.ndarray], prompt: Sequence[int],
                  runtime_version: str, fallback: str = "raise") -> tuple[list[dict[str, Any]], list[str]]:
    """Installs the plan of `entries` in `mode` with its NPU subgraphs checked (see above);
    returns (the plan, notes for Model.backend_info). A subgraph failing the gate raises
    NpuSelfCheckError (the decoder left with no plan) unless fallback == "cpu": then its op runs
    on the CPU and the plan's reason gives the numbers. Only subgraph files are checked (Python
    callbacks are host numerics). `states()` computes the self-check window's encoder states
    (called only when a check runs)."""
    entries = [dict(e) for e in entries]
    soc = soc_name()
    keys = {slot(e): decoder_key(e, runtime_version, soc, dims) for e in entries if e.get("file")}
    cache = _read_cache()
    verdicts: dict[tuple, dict[str, Any]] = {}
    for s, k in keys.items():
        v = _cached(cache, k)
        if v is not None:
            verdicts[s] = v
    failed = {s for s, v in verdicts.items() if not v["passed"]}
    check: Optional[DecoderCheck] = None
    ran = 0
    try:
        while True:
            current = [e for e in entries if slot(e) not in failed] if fallback == "cpu" else entries
            plan = install(mode, current)
            npu = {slot(p) for p in plan if p["where"] == "npu"}
            on_npu = [e for e in current if slot(e) in keys and slot(e) in npu]
            todo = [e for e in on_npu if slot(e) not in verdicts]
            if todo:
                if check is None:
                    install("none", [])  # the reference runs on the CPU kernels
                    check = DecoderCheck(decoder, dims.n_text_ctx, states(), prompt,
                                         lambda group: install(mode, group))
                    check.reference()
                found = check.localise(todo)
                for s, v in found.items():
                    v["cached"] = False
                    verdicts[s] = v
                _write_cache_many({keys[s]: v for s, v in found.items()})
                ran = check.runs
                plan = install(mode, current)  # the groups replaced it
            bad = [e for e in on_npu if not verdicts[slot(e)]["passed"]]
            if not bad:
                break
            if fallback != "cpu":
                s = slot(bad[0])
                v = verdicts[s]
                names = ", ".join(slot_name(slot(e)) for e in bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
                raise NpuSelfCheckError(
                    f"decoder subgraph(s) {names} ({bad[0]['file']}{'' if v.get('alone', True) else ', together'}): the "
                    f"decoder's logits on real speech fail the accuracy gate against the CPU decoder's: "
                    f"{describe_logits(v)}. The runtime ({runtime_version}) computes this subgraph wrongly on this "
                    "board, or the manifest misdescribes its I/O. Load with npu_fallback='cpu' to run that op on the "
                    "CPU instead, or see docs/on-device.md", dict(v, subgraphs=[slot_name(slot(e)) for e in bad]))
            failed.update(slot(e) for e in bad)
    except BaseException:
        install("none", [])  # never leave an unchecked or failed plan in place
        raise
    # what this plan would have run on the NPU but for the check (verdicts of other modes aside)
    in_plan = {slot(p) for p in plan}
    failed = {s for s in failed if s in in_plan or (s[0] == "layer_step" and mode in ("layer", "auto"))}
    plan = annotate(plan, {s: verdicts[s] for s in failed})
    notes = []
    checked = [verdicts[slot(p)] for p in plan if p["where"] == "npu" and slot(p) in verdicts]
    if checked:
        cached = all(v.get("cached") for v in checked)
        worst = min(checked, key=lambda v: v["sqnr_db"])
        notes.append(f"decoder subgraphs self-check passed{' (cached)' if cached else ''} for {len(checked)} "
                     f"subgraph(s){'' if cached else f' ({ran} check run(s))'}; worst {describe_logits(worst)}")
    if failed:
        notes.append(f"npu_fallback='cpu': decoder subgraph(s) {', '.join(slot_name(s) for s in sorted(failed))} "
                     "fail the self-check and run on the CPU")
    return plan, notes


def annotate(plan: list[dict[str, Any]], failed: Mapping[tuple, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The plan with each op whose subgraph failed the self-check saying so (its reason names the
    numbers), and the linear ops of a layer whose layer step failed saying why they run."""
    steps = {(s[1], s[3]): v for s, v in failed.items() if s[0] == "layer_step"}
    out = []
    for e in plan:
        e = dict(e)
        v = failed.get(slot(e))
        if v is not None and e["where"] == "cpu":
            e["reason"] = "self-check failed: " + describe_logits(v)
        elif (e["layer"], e["batch"]) in steps and e["op"] != "layer_step":
            why = "layer step: self-check failed: " + describe_logits(steps[(e["layer"], e["batch"])])
            e["reason"] = why + ("; " + e["reason"] if e["where"] == "cpu" and e["reason"] else "")
        out.append(e)
    return out
