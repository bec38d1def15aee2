"""``whisper-genio quantize``: calibrate, quantize, (search), write a quantized bundle.

    from whisper_genio.tools.quantize.pipeline import quantize_bundle
    out = quantize_bundle("bundle/", ["clips/"], "a16w8", "bundle-a16w8/", soc="genio-700")

Input: a float bundle from ``whisper-genio export`` (encoder.tflite and/or encoder.onnx).
Output: a new bundle folder with the quantized encoder.tflite (ai-edge-quantizer; integer I/O)
and encoder.onnx (QDQ; float I/O with the QuantizeLinear/DequantizeLinear inside), the same
checkpoint and tokenizer (hard links when possible), and a manifest whose artifacts carry the
quantization: scheme, per-role precisions, every I/O scale and zero point, the int8 MAC share,
the ops left in float, the calibration set, and the ``ncc-tflite`` command for the SoC (run
when ``ncc-tflite`` is on PATH, which adds the DLA to the bundle).

Calibration windows and statistics are cached in ``<float bundle>/.calibration/`` keyed by the
audio files and the model, so a second scheme costs only the quantization itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ...errors import InvalidOptionError
from .calibrate import CalibrationWindows, build_windows
from .schemes import Scheme, mac_summary, parse_scheme

PathLike = Union[str, os.PathLike]


class Workspace:
    """Float artifacts of a bundle plus cached calibration data and statistics."""

    def __init__(self, bundle_dir: PathLike, log: Optional[Callable[[str], None]] = None) -> None:
        from ...backends.bundle import load_bundle

        self.bundle = load_bundle(bundle_dir)
        self.root = self.bundle.root
        self.cache = self.root / ".calibration"
        self.cache.mkdir(exist_ok=True)
        self.log = log or (lambda _m: None)
        self.dims = self.bundle.dims
        for kind in ("onnx", "tflite"):
            art = self.bundle.artifacts.get(kind)
            if art is not None and art.extra.get("quantization"):
                raise InvalidOptionError(f"{self.root}: the {kind} encoder is already quantized; quantize the float "
                                         "bundle written by `whisper-genio export`")
        self._prepared: Optional[pathlib.Path] = None

    def path(self, kind: str) -> Optional[pathlib.Path]:
        return self.bundle.path_of(kind)

    def windows(self, sources: Sequence[PathLike], max_windows: Optional[int] = None,
                files: Optional[Sequence[PathLike]] = None) -> CalibrationWindows:
        w = build_windows(sources, n_mels=self.dims.n_mels, max_windows=max_windows, files=files,
                          cache=self.cache / "windows.npz")
        self.log(f"calibration: {len(w)} windows of 30 s, {100 * w.speech_fraction():.0f} % of frames hold audio")
        return w

    def _key(self, w: CalibrationWindows) -> str:
        return hashlib.sha256(w.mels.tobytes()[::97]).hexdigest()[:16]

    def onnx_prepared(self) -> pathlib.Path:
        from . import onnx_qdq

        if self._prepared is None:
            src = self.path("onnx")
            if src is None:
                raise InvalidOptionError(f"{self.root} has no encoder.onnx (whisper-genio export --format onnx)")
            dst = self.cache / "encoder.prepared.onnx"
            if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime or not onnx_qdq.is_prepared(dst):
                onnx_qdq.prepare(src, dst)
            self._prepared = dst
        return self._prepared

    def onnx_ranges(self, w: CalibrationWindows) -> dict:
        from . import onnx_qdq

        t0 = time.perf_counter()
        r = onnx_qdq.collect_ranges(self.onnx_prepared(), w.mels, cache=self.cache / f"onnx_ranges_{self._key(w)}.json")
        self.log(f"ONNX calibration statistics: {len(r)} tensors ({time.perf_counter() - t0:.0f} s)")
        return r

    def tflite_qsvs(self, w: CalibrationWindows) -> dict:
        from . import tflite_quant

        src = self.path("tflite")
        if src is None:
            raise InvalidOptionError(f"{self.root} has no encoder.tflite (whisper-genio export --format tflite)")
        t0 = time.perf_counter()
        q = tflite_quant.collect_qsvs(src, w.mels, cache=self.cache / f"tflite_qsvs_{self._key(w)}.json")
        self.log(f"TFLite calibration statistics: {len(q)} tensors ({time.perf_counter() - t0:.0f} s)")
        return q


def search_mixed(ws: Workspace, w: CalibrationWindows, *, target_db: float = 20.0, max_wer_vs_float: float = 0.05,
                 search_windows: int = 6, threads: int = 2) -> Any:
    """The mixed-precision search (sensitivity.py) on the ONNX path (fast), scored on the first
    `search_windows` calibration windows against the float CPU encoder and decoder."""
    from ... import load_model
    from . import onnx_qdq, sensitivity
    from .evaluate import Evaluator

    ranges = ws.onnx_ranges(w)
    sub = w.subset(min(search_windows, len(w)))
    model = _model(ws, threads)
    ev = Evaluator(model, sub)
    prepared = ws.onnx_prepared()
    scratch = ws.cache / "search.onnx"

    def evaluate(scheme: Scheme) -> dict:
        out = onnx_qdq.quantize(prepared, scratch, scheme, ranges)
        s = onnx_qdq.session(out, threads=threads)
        return ev.score([onnx_qdq.run(s, m) for m in sub.mels])

    del load_model
    return sensitivity.search(evaluate, ws.dims, target_db=target_db, max_wer_vs_float=max_wer_vs_float, log=ws.log)


def _model(ws: Workspace, threads: int) -> Any:
    from ... import load_model

    ck = ws.bundle.checkpoint_path
    return load_model(str(ck) if ck is not None else (ws.bundle.model or "base"), backend="cpu", threads=threads)


def quantize_bundle(bundle_dir: PathLike, calibration: Sequence[PathLike], scheme: Union[str, Scheme],
                    out_dir: PathLike, *, formats: Sequence[str] = ("tflite", "onnx"), soc: Optional[str] = "genio-700",
                    max_windows: Optional[int] = None, calibration_files: Optional[Sequence[PathLike]] = None,
                    target_db: float = 20.0, max_wer_vs_float: float = 0.05, search_windows: int = 6,
                    run_compiler: bool = True, threads: int = 2, host_check: bool = True,
                    log: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """Quantizes the float bundle's encoders with `scheme` into a new bundle at `out_dir`.
    scheme "mixed" (no overrides) runs the search first. Returns a summary (also in the manifest).
    host_check: run every written artifact on the first calibration window with the host's integer
    kernels and record its SQNR against the float encoder (see _host_check)."""
    from ...backends.bundle import load_bundle, write_manifest

    ws = Workspace(bundle_dir, log)
    sch, w, search = _scheme_and_calibration(ws, scheme, calibration, max_windows, calibration_files,
                                             target_db=target_db, max_wer_vs_float=max_wer_vs_float,
                                             search_windows=search_windows, threads=threads)
    out = pathlib.Path(out_dir)
    if out.resolve() == ws.root.resolve():
        raise InvalidOptionError("write the quantized bundle to another folder than the float one")
    out.mkdir(parents=True, exist_ok=True)
    macs = mac_summary(sch, ws.dims)
    job = _start_output(ws, sch, w, search, out, macs, threads=threads, host_check=host_check)
    if "onnx" in formats and ws.path("onnx") is not None:
        _write_onnx(job)
    if "tflite" in formats and ws.path("tflite") is not None:
        art, cmd = _write_tflite(job, soc)
        if cmd:
            _compile_tflite(job, art, cmd, run_compiler)
    if not job.manifest["encoder"]:
        raise InvalidOptionError(f"{ws.root} has none of the formats {list(formats)}")
    job.manifest["quantized_from"] = os.path.relpath(ws.root, out)
    write_manifest(out, job.manifest)
    load_bundle(out)
    job.summary["int8_mac_share"] = macs["int8_mac_share"]
    if search is not None:
        job.summary["search"] = search.to_json()
    return job.summary


def _scheme_and_calibration(ws: Workspace, scheme: Union[str, Scheme], calibration: Sequence[PathLike],
                            max_windows: Optional[int], calibration_files: Optional[Sequence[PathLike]], *,
                            target_db: float, max_wer_vs_float: float, search_windows: int,
                            threads: int) -> tuple[Scheme, Optional[CalibrationWindows], Any]:
    """The scheme to write (for "mixed" without overrides: the one the search chooses), the
    calibration windows (static schemes only) and the search result (None without a search)."""
    sch = scheme if isinstance(scheme, Scheme) else parse_scheme(scheme)
    if sch.kind == "float":
        raise InvalidOptionError("scheme 'float' is the exported bundle itself")
    w = ws.windows(calibration, max_windows, calibration_files) if sch.kind == "static" else None
    search = None
    if sch.kind == "static" and sch.name == "mixed" and not sch.overrides:
        if ws.path("onnx") is None:
            raise InvalidOptionError("the mixed-precision search runs on the ONNX encoder: export with --format onnx")
        search = search_mixed(ws, w, target_db=target_db, max_wer_vs_float=max_wer_vs_float,
                              search_windows=search_windows, threads=threads)
        sch = search.scheme
        ws.log(f"mixed precision chosen: {sch.spec()}")
    return sch, w, search


@dataclass
class _Output:
    """The quantized bundle being written: what each artifact writer reads and adds to."""
    ws: Workspace
    sch: Scheme
    w: Optional[CalibrationWindows]
    out: pathlib.Path
    src_manifest: dict[str, Any]
    manifest: dict[str, Any]        # the new bundle's manifest (encoder entries added per format)
    quant_common: dict[str, Any]    # the part of every artifact's "quantization" record they share
    summary: dict[str, Any]         # what quantize_bundle returns
    threads: int
    host_check: bool

    def checked(self, art: dict[str, Any], kind: str, run: Callable[[np.ndarray], np.ndarray], name: str) -> None:
        """Runs the host check of the written artifact (when asked and calibrated) and records it
        in the manifest entry `art` and the summary."""
        if self.host_check and self.w is not None:
            art["quantization"]["host_check"] = self.summary["artifacts"][kind]["host_check"] = _host_check(
                self.ws, self.w, run, name, self.threads)


def _start_output(ws: Workspace, sch: Scheme, w: Optional[CalibrationWindows], search: Any, out: pathlib.Path,
                  macs: dict[str, Any], *, threads: int, host_check: bool) -> _Output:
    """The new bundle's manifest (the float one's, less the encoders), its checkpoint and tokenizer
    (linked), and the quantization record every artifact shares."""
    src_manifest = json.loads((ws.root / "manifest.json").read_text())
    manifest: dict[str, Any] = {k: v for k, v in src_manifest.items() if k != "encoder"}
    manifest["encoder"] = {}
    for name in [src_manifest.get("checkpoint"), src_manifest.get("tokenizer")]:
        if name:
            _link(ws.root / name, out / name)
    quant_common: dict[str, Any] = {
        "scheme": sch.spec(), "description": sch.description, "scheme_detail": sch.to_json(),
        "int8_mac_share": round(macs["int8_mac_share"], 4), "products": macs["products"],
    }
    if w is not None:
        quant_common["calibration"] = {"windows": len(w), "speech_fraction": round(w.speech_fraction(), 3),
                                       "method": "min-max over full 30 s windows of concatenated speech",
                                       "clips": sorted({s.replace(" (repeat)", "") for ws_ in w.sources for s in ws_})}
    if search is not None:
        quant_common["search"] = search.to_json()
    summary: dict[str, Any] = {"scheme": sch.spec(), "out": str(out), "artifacts": {}}
    return _Output(ws, sch, w, out, src_manifest, manifest, quant_common, summary, threads, host_check)


def _write_onnx(job: _Output) -> None:
    """encoder.onnx (QDQ), its manifest entry (with the NeuronExecutionProvider pre-flight) and
    summary, and its host check."""
    from ..export_onnx import neuron_ep_record
    from . import onnx_qdq

    ws, sch, w = job.ws, job.sch, job.w
    t0 = time.perf_counter()
    ranges = ws.onnx_ranges(w) if w is not None else {}
    path = onnx_qdq.quantize(ws.onnx_prepared(), job.out / "encoder.onnx", sch, ranges)
    io = onnx_qdq.io_quantization(path)
    art = dict(job.src_manifest["encoder"]["onnx"])
    art["quantization"] = dict(job.quant_common, io=io, tool="onnxruntime.quantization (QDQ)")
    art["opset"] = onnx_qdq.QDQ_OPSET
    art["neuron_ep"] = neuron_ep_record(path, ws.log)
    job.manifest["encoder"]["onnx"] = art
    job.summary["artifacts"]["onnx"] = {"file": str(path), "io": io, "seconds": round(time.perf_counter() - t0, 1)}
    ws.log(f"encoder.onnx ({sch.spec()}): {path.stat().st_size / 1e6:.1f} MB")
    job.checked(art, "onnx", lambda m: onnx_qdq.run(path, m, threads=job.threads), "encoder.onnx")


def _write_tflite(job: _Output, soc: Optional[str]) -> tuple[dict[str, Any], Optional[list[str]]]:
    """encoder.tflite (ai-edge-quantizer), its manifest entry (I/O dtypes, float ops, the
    ncc-tflite command for `soc`) and summary, and its host check. Returns the entry and the command."""
    from ..ncc import ncc_command
    from . import tflite_quant

    ws, sch, w = job.ws, job.sch, job.w
    t0 = time.perf_counter()
    qsvs = ws.tflite_qsvs(w) if w is not None else None
    path = tflite_quant.quantize(ws.path("tflite"), job.out / "encoder.tflite", sch, qsvs)
    io = tflite_quant.io_quantization(path)
    floats = tflite_quant.float_ops(path)
    art = dict(job.src_manifest["encoder"]["tflite"])
    for role in ("input", "output"):
        t = dict(art[role])
        t["dtype"] = io[role]["dtype"]
        for k in ("scale", "zero_point"):
            t.pop(k, None)
            if k in io[role]:
                t[k] = io[role][k]
        art[role] = t
    compute_floats = [f for f in floats if f[0] not in ("DEQUANTIZE", "QUANTIZE")]
    cmd = ncc_command("encoder.tflite", "encoder.dla", soc=soc, float_ops=bool(compute_floats)) if soc else None
    art["quantization"] = dict(job.quant_common, io=io, tool="ai-edge-quantizer",
                               float_ops=sorted({o for o, _ in compute_floats}), float_op_count=len(compute_floats))
    if cmd:
        art["compiler"] = {"tool": "ncc-tflite", "soc": soc, "command": cmd}
    job.manifest["encoder"]["tflite"] = art
    job.summary["artifacts"]["tflite"] = {"file": str(path), "io": io, "seconds": round(time.perf_counter() - t0, 1),
                                          "ncc": cmd}
    ws.log(f"encoder.tflite ({sch.spec()}): {path.stat().st_size / 1e6:.1f} MB; {len(compute_floats)} ops in float")
    job.checked(art, "tflite", lambda m: tflite_quant.run(path, m, threads=job.threads), "encoder.tflite")
    return art, cmd


def _compile_tflite(job: _Output, art: dict[str, Any], cmd: list[str], run_compiler: bool) -> None:
    """Says the ncc-tflite command; runs it when asked, on PATH, and the host check passed; a
    compiled encoder.dla joins the manifest."""
    from ..ncc import run_ncc

    say, out = job.ws.log, job.out
    say("compile for the NPU: (cd " + str(out) + " && " + " ".join(cmd) + ")")
    if run_compiler and not art["quantization"].get("host_check", {}).get("pass", True):
        say("not running ncc-tflite: encoder.tflite failed the host check")
    elif run_compiler:
        res = _in(out, lambda: run_ncc(cmd))
        if res is None:
            say("ncc-tflite is not on PATH: run the command above on a machine with the NeuroPilot SDK")
        else:
            job.summary["artifacts"]["tflite"]["ncc_result"] = res
            art["compiler"]["returncode"] = res["returncode"]
            if res["returncode"] == 0 and (out / "encoder.dla").is_file():
                job.manifest["encoder"]["dla"] = {"file": "encoder.dla", "input": art["input"],
                                                  "output": art["output"], "compiler": art["compiler"],
                                                  "quantization": art["quantization"]}
            else:
                say("ncc-tflite failed:\n" + res["output"])


def _host_check(ws: Workspace, w: CalibrationWindows, run: Callable[[np.ndarray], np.ndarray], name: str,
                threads: int) -> dict[str, Any]:
    """The written artifact, run by the host's integer kernels on the first calibration window,
    against the float CPU encoder. The search scores schemes on the ONNX path only; this catches
    an artifact that another converter broke (as the TFLite mixed scheme once was: see
    docs/quantization.md), before anyone compiles it for the NPU."""
    from ..validate import Gate
    from .evaluate import cosine, sqnr_db

    model = _model(ws, threads)
    mel = np.ascontiguousarray(w.mels[0])
    ref = np.asarray(model.encode(mel), np.float32).reshape(ws.dims.n_audio_ctx, -1)
    got = np.asarray(run(mel), np.float32).reshape(ref.shape)
    k = max(1, int(w.content_frames[0]))
    res = {"window": 0, "sqnr_db": round(sqnr_db(ref[:k], got[:k]), 2), "cosine": round(cosine(ref[:k], got[:k]), 5),
           "min_sqnr_db": Gate().min_sqnr_db}
    res["pass"] = bool(res["sqnr_db"] >= res["min_sqnr_db"])
    if res["pass"]:
        ws.log(f"host check of {name}: SQNR {res['sqnr_db']:.1f} dB, cosine {res['cosine']:.4f} (pass)")
    else:
        ws.log(f"WARNING: host check of {name} FAILED: SQNR {res['sqnr_db']:.1f} dB < {res['min_sqnr_db']:g} dB "
               f"(cosine {res['cosine']:.4f}) on the host's own integer kernels: this file would transcribe "
               "garbage on the NPU too; do not compile it. Try --scheme a16w8, or the report (--report) for the cause.")
    return res


def _in(folder: pathlib.Path, fn: Callable[[], Any]) -> Any:
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return fn()
    finally:
        os.chdir(cwd)


def _link(src: pathlib.Path, dst: pathlib.Path) -> None:
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size:
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def quantization_of(bundle: Any, kind: str = "tflite") -> Optional[dict]:
    art = bundle.artifacts.get(kind)
    return dict(art.extra.get("quantization", {})) if art is not None else None


__all__ = ["Workspace", "quantize_bundle", "search_mixed", "quantization_of", "np"]
