"""Numerical self-check of an NPU encoder when it loads: is what the NPU computes right?

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
from typing import Any, Mapping

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


def _write_cache(key: str, verdict: Mapping[str, Any]) -> None:
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        data = _read_cache()
        data[key] = dict(verdict)
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
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and "passed" in cached and "sqnr_db" in cached:
        verdict = dict(cached, cached=True)
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
