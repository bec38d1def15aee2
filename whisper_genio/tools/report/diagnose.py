"""What a quantization scheme does to the encoder, tensor by tensor, and why.

Measured on the ONNX path (every quantized tensor of a QDQ graph has a named DequantizeLinear
output to compare with the float tensor of the same name), on real 30 s windows:

* per-layer SQNR and cosine of every role-tagged activation against float (cumulative error:
  the quantized model runs end to end, as a device would);
* activation ranges of the float model: min, max, 99.99th percentile of |x|, crest factor
  (max / rms), the outlier channels (per-channel max |x|) and where the largest value sits, for
  the residual stream, LayerNorm inputs/outputs, attention logits, softmax, GELU;
* what the scheme's grid does to them: the share of residual values an 8-bit step rounds to
  zero, the share of attention probabilities that become 0 and the probability mass each row
  loses (8 vs 16 bits);
* isolated sensitivity: each group alone at 8 bits, everything else float: the groups that
  dominate the error;
* encoder-output SQNR (speech frames) and WER against float on held-out audio;
* in plain words: why the scheme fails (or passes) and which change fixes it.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..quantize.calibrate import CalibrationWindows
from ..quantize.evaluate import cosine, sqnr_db
from ..quantize.schemes import DESCRIPTION, GROUPS, Role, Scheme, mac_summary, parse_scheme

PathLike = Union[str, os.PathLike]
DQ_SUFFIX = "_DequantizeLinear_Output"


def _range_stats(x: np.ndarray, role: Role) -> dict[str, Any]:
    a = np.abs(x.astype(np.float32))
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    amax = float(a.max())
    st: dict[str, Any] = {"min": float(x.min()), "max": float(x.max()), "absmax": amax, "rms": rms,
                          "p9999": float(np.quantile(a.ravel()[:: max(1, a.size // 2_000_000)], 0.9999)),
                          "crest_db": float(20 * np.log10(amax / max(rms, 1e-12)))}
    if x.ndim >= 2 and role.role not in ("qk", "softmax"):
        flat = a.reshape(-1, a.shape[-1])
        per_ch = flat.max(axis=0)
        top = np.argsort(per_ch)[::-1][:5]
        st["outlier_channels"] = [{"channel": int(c), "absmax": float(per_ch[c])} for c in top]
        med = float(np.median(per_ch))
        st["channel_median_absmax"] = med
        idx = np.unravel_index(int(np.argmax(a)), a.shape)
        st["argmax"] = {"frame": int(idx[-2]) if a.ndim >= 2 else 0, "channel": int(idx[-1])}
        st["values_over_20"] = int(np.sum(a >= 20))
        st["values"] = int(a.size)
    return st


def _grid_effects(x: np.ndarray, role: Role, lo: float, hi: float) -> dict[str, Any]:
    """What an 8-bit (asymmetric) and a 16-bit (symmetric) grid over [lo, hi] do to x."""
    out: dict[str, Any] = {}
    step8 = (max(hi, 0) - min(lo, 0)) / 255.0
    step16 = max(abs(lo), abs(hi)) / 32767.0
    out["step8"], out["step16"] = step8, step16
    if role.role == "softmax":
        p = x.astype(np.float32)
        q8 = np.round(p / step8) * step8
        q16 = np.round(p / step16) * step16
        out["probs_zeroed_8bit"] = float(np.mean((q8 == 0) & (p > 0)))
        out["probs_zeroed_16bit"] = float(np.mean((q16 == 0) & (p > 0)))
        lost8 = np.abs(1.0 - q8.sum(-1))
        lost16 = np.abs(1.0 - q16.sum(-1))
        out["row_mass_lost_8bit"] = {"median": float(np.median(lost8)), "p90": float(np.quantile(lost8, 0.9))}
        out["row_mass_lost_16bit"] = {"median": float(np.median(lost16)), "p90": float(np.quantile(lost16, 0.9))}
        out["uniform_weight"] = 1.0 / x.shape[-1]
    else:
        a = np.abs(x)
        out["zeroed_8bit"] = float(np.mean((a < step8 / 2) & (a > 0)))
        out["zeroed_16bit"] = float(np.mean((a < step16 / 2) & (a > 0)))
    return out


def diagnose(float_onnx: PathLike, quant_onnx: PathLike, scheme: Scheme, mels: Sequence[np.ndarray],
             content_frames: Sequence[int], ranges: dict, *, threads: int = 2) -> dict[str, Any]:
    """Per-layer comparison of a QDQ encoder with the float one on `mels` (the first is used for
    activation ranges; all for the per-layer SQNR). `float_onnx`: the prepared float encoder."""
    from ..quantize import onnx_qdq

    roles = onnx_qdq.tensor_roles(float_onnx)
    qmodel = onnx_qdq.load(quant_onnx)
    produced = {o for n in qmodel.graph.node for o in n.output}
    names = [n for n in roles if n != "mel"]
    qnames = [n + DQ_SUFFIX if n + DQ_SUFFIX in produced else (n if n in produced else None) for n in names]
    pairs = [(n, q) for n, q in zip(names, qnames) if q is not None]
    per: dict[str, dict[str, Any]] = {}
    stats: dict[str, Any] = {}
    for i, (mel, k) in enumerate(zip(mels, content_frames)):
        fa = onnx_qdq.activations(float_onnx, mel, [n for n, _ in pairs], threads=threads)
        qa = onnx_qdq.activations(quant_onnx, mel, [q for _, q in pairs], threads=threads)
        for n, q in pairs:
            f, x = fa[n], qa[q]
            if f.shape != x.shape:
                continue
            fs, xs = _speech(f, k), _speech(x, k)
            e = per.setdefault(n, {"err": 0.0, "sig": 0.0, "dot": 0.0, "nf": 0.0, "nx": 0.0})
            d = (fs - xs).astype(np.float64)
            e["err"] += float(np.sum(d * d))
            e["sig"] += float(np.sum(fs.astype(np.float64) ** 2))
            e["dot"] += float(np.sum(fs.astype(np.float64) * xs))
            e["nx"] += float(np.sum(xs.astype(np.float64) ** 2))
            if i == 0:  # ranges over the whole window: the grid has to hold the padding frames' values too
                r = roles[n]
                st = _range_stats(f, r)
                lo, hi = ranges.get(n, (float(f.min()), float(f.max())))
                st.update(_grid_effects(f, r, lo, hi))
                stats[n] = st
        del fa, qa
    layers = []
    for n, _ in pairs:
        if n not in per:
            continue
        e = per[n]
        r = roles[n]
        layers.append({
            "tensor": n, "block": r.block, "role": r.role, "group": r.group, "key": r.key,
            "bits": scheme.bits(r),
            "sqnr_db": float(10 * np.log10(max(e["sig"], 1e-30) / e["err"])) if e["err"] > 0 else float("inf"),
            "cosine": float(e["dot"] / np.sqrt(max(e["sig"] * e["nx"], 1e-30))),
            **({"stats": stats[n]} if n in stats else {}),
        })
    return {"layers": layers}


def _speech(x: np.ndarray, frames: int) -> np.ndarray:
    """The positions holding audio, for tensors laid out [1, 1500, ...] / [1, h, 1500, ...]."""
    if x.ndim == 3 and x.shape[1] == 1500:
        return x[:, :frames]
    if x.ndim == 4 and x.shape[2] == 1500:
        return x[:, :, :frames]
    if x.ndim == 3 and x.shape[2] == 1500:  # [1, d, 1500] (stem)
        return x[:, :, :frames]
    return x


def isolated_sensitivity(prepared: PathLike, ranges: dict, mels: Sequence[np.ndarray],
                         content_frames: Sequence[int], work: pathlib.Path, *, threads: int = 2,
                         groups: Sequence[str] = tuple(g for g in GROUPS if g != "mel"), log: Optional[Callable[[str], None]] = None) -> dict:
    """Encoder-output SQNR with one group at 8 bits and everything else float."""
    from ..quantize import onnx_qdq

    ref_s = onnx_qdq.session(prepared, threads=threads)
    refs = [onnx_qdq.run(ref_s, m) for m in mels]
    out = {}
    for g in groups:
        sch = Scheme(f"only-{g}", activation_bits=32, overrides={r: 8 for r in GROUPS[g]})
        path = onnx_qdq.quantize(prepared, work / "isolated.onnx", sch, ranges)
        s = onnx_qdq.session(path, threads=threads)
        ys = [onnx_qdq.run(s, m) for m in mels]
        ref = np.concatenate([r[:k] for r, k in zip(refs, content_frames)])
        y = np.concatenate([x[:k] for x, k in zip(ys, content_frames)])
        out[g] = {"sqnr_db": sqnr_db(ref, y), "cosine": cosine(ref, y)}
        if log:
            log(f"  {g:9s} alone at 8 bits: {out[g]['sqnr_db']:6.1f} dB")
    return out


def explain(scheme: Scheme, diag: dict, isolated: dict, evaluation: dict, tflite: Optional[dict] = None) -> dict:
    """Plain-words findings: verdict, causes (with numbers) and the fixes."""
    layers = diag["layers"]
    by_role: dict[str, list] = {}
    for l in layers:
        by_role.setdefault(l["role"], []).append(l)
    findings: list[str] = []
    fixes: list[str] = []
    sq = evaluation.get("sqnr_db")
    wer, wer_f = evaluation.get("wer"), evaluation.get("wer_float")
    failed = (sq is not None and sq < 15) or (wer is not None and wer_f is not None and wer - wer_f > 0.01)
    verdict = "FAILS" if failed else "works"
    head = f"{scheme.spec()} {verdict}: encoder-output SQNR {sq:.1f} dB on the speech frames" if sq is not None else \
        f"{scheme.spec()} {verdict}"
    if wer is not None:
        head += f", WER {100 * wer:.1f} % against {100 * wer_f:.1f} % for float"
    # first layer where the error explodes
    bad = next((l for l in layers if l["sqnr_db"] < 10), None)
    if bad is not None:
        findings.append(f"The error appears at the first tensor below 10 dB: {bad['key']} ({DESCRIPTION.get(bad['group'], bad['group'])}, "
                        f"{bad['bits']}-bit), SQNR {bad['sqnr_db']:.1f} dB, cosine {bad['cosine']:.3f}; everything "
                        "after it inherits the error.")
    # residual stream outlier
    res = [l for l in layers if l["group"] == "resid" and "stats" in l]
    if res:
        worst = max(res, key=lambda l: l["stats"]["absmax"])
        st = worst["stats"]
        ch = st.get("outlier_channels", [{}])[0]
        z8 = max(l["stats"].get("zeroed_8bit", 0) for l in res)
        txt = (f"The residual stream carries an outlier: channel {ch.get('channel')} reaches |x| = {st['absmax']:.0f} "
               f"at frame {st.get('argmax', {}).get('frame')} ({worst['key']}), while the median channel peaks at "
               f"{st.get('channel_median_absmax', 0):.1f} and only {st.get('values_over_20', 0)} of {st.get('values', 0)} "
               f"values exceed ±20 (crest factor {st['crest_db']:.0f} dB). One 8-bit scale for that tensor has a step "
               f"of {st['step8']:.2f}: it rounds up to {100 * z8:.0f} % of the residual values to zero. At 16 bits the "
               f"step is {st['step16']:.3f}.")
        findings.append(txt)
        if any(scheme.bits(Role(l["block"], l["role"])) == 8 for l in res):
            fixes.append("Keep the residual stream (and so the LayerNorm inputs) in 16 bits: A16W8, or a mixed "
                         "scheme with resid=16.")
    sm = [l for l in layers if l["role"] == "softmax" and "stats" in l]
    if sm:
        z8 = max(l["stats"]["probs_zeroed_8bit"] for l in sm)
        m8 = max(l["stats"]["row_mass_lost_8bit"]["median"] for l in sm)
        m16 = max(l["stats"]["row_mass_lost_16bit"]["median"] for l in sm)
        findings.append(f"Softmax over 1500 frames: a uniform weight is {sm[0]['stats']['uniform_weight']:.5f}, below "
                        f"the 8-bit step of {sm[0]['stats']['step8']:.4f}. At 8 bits up to {100 * z8:.0f} % of the "
                        f"probabilities become 0 and a row loses a median {100 * m8:.0f} % of its mass; at 16 bits "
                        f"{100 * m16:.2f} %.")
        if any(scheme.bits(Role(l["block"], "softmax")) == 8 for l in sm):
            fixes.append("Keep the softmax output (attention probabilities) in 16 bits.")
    lni = [l for l in layers if l["role"] in ("ln1", "ln2", "ln_post")]
    if lni and any(l["bits"] == 8 for l in lni):
        worst = min(lni, key=lambda l: l["sqnr_db"])
        findings.append(f"LayerNorm outputs at 8 bits: the worst ({worst['key']}) keeps {worst['sqnr_db']:.1f} dB.")
    if isolated:
        ranked = sorted(isolated.items(), key=lambda kv: kv[1]["sqnr_db"])
        top = ", ".join(f"{g} ({v['sqnr_db']:.1f} dB)" for g, v in ranked[:4])
        findings.append("Each group alone at 8 bits (everything else float), the encoder output keeps: " + top +
                        " — these dominate the error; " + ", ".join(f"{g} ({v['sqnr_db']:.0f} dB)" for g, v in ranked[-3:])
                        + " are harmless.")
    if tflite:
        findings.append(tflite.get("note", ""))
    if failed and not fixes:
        fixes.append("Use A16W8 (16-bit activations, 8-bit weights): every MDLA version runs symmetric int16.")
    if not failed:
        fixes.append("No change needed; confirm on the device with `whisper-genio validate` (three-way: float, host, "
                     "device).")
    else:
        fixes.append("Weights are not the cause: weight-only int8 keeps the transcripts (see the table).")
    return {"verdict": verdict, "headline": head, "findings": [f for f in findings if f], "fixes": fixes}


def _tflite_layernorm_note(ws: Any, calibration: CalibrationWindows) -> Optional[dict]:
    """The split LayerNorm of the TFLite encoder: how large its statistics get (from the
    calibration statistics), i.e. why they stay float."""
    if ws.path("tflite") is None:
        return None
    from ..quantize import tflite_quant

    qsvs = ws.tflite_qsvs(calibration)
    roles = tflite_quant.tensor_roles(ws.path("tflite"))
    g = tflite_quant.Graph(ws.path("tflite"))
    sq = [g.name(o["outputs"][0]) for o in g.ops if o["op_name"] == "SQUARED_DIFFERENCE"]
    peak = max((float(qsvs[n]["max"].max()) for n in sq if n in qsvs), default=0.0)
    n_stats = sum(1 for r in roles.values() if r.role == "ln_stats")
    return {"squared_difference_max": peak, "ln_stats_tensors": n_stats,
            "note": f"TFLite path: the converter splits each LayerNorm into MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, "
                    f"MUL, SUB; squaring the residual stream gives values up to {peak:.3g}, which no integer grid shared "
                    f"with ordinary variances holds (an int16 step would be {peak / 32767:.3g}). whisper_genio keeps these "
                    f"{n_stats} statistics tensors in float (FP16 on the MDLA with --relax-fp32); the normalising and "
                    "affine ops are quantized with the rest."}


def build_report(bundle_dir: PathLike, scheme: Union[str, Scheme], out_dir: PathLike, *,
                 calibration: CalibrationWindows, evaluation: Optional[CalibrationWindows] = None,
                 references: Optional[Sequence[str]] = None, results: Optional[dict] = None,
                 compare: Sequence[str] = ("a16w8",), threads: int = 2, isolated: bool = True, tflite_note: bool = True,
                 isolated_groups: Optional[Sequence[str]] = None,
                 log: Optional[Callable[[str], None]] = None) -> dict[str, pathlib.Path]:
    """Writes report.json and report.html (with PNG plots inlined) into out_dir."""
    from ... import load_model
    from ..quantize import onnx_qdq
    from ..quantize.evaluate import Evaluator
    from ..quantize.pipeline import Workspace
    from .html import write_html

    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    sch = scheme if isinstance(scheme, Scheme) else parse_scheme(scheme)
    ws = Workspace(bundle_dir, log)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared = ws.onnx_prepared()
    ranges = ws.onnx_ranges(calibration)
    ev_w = evaluation if evaluation is not None else calibration.subset(min(2, len(calibration)))
    qpath = onnx_qdq.quantize(prepared, out / f"encoder.{sch.name}.onnx", sch, ranges)
    say(f"per-layer comparison of {sch.spec()} with float on {len(ev_w)} window(s)")
    diag = diagnose(prepared, qpath, sch, list(ev_w.mels[:2]), list(ev_w.content_frames[:2]), ranges, threads=threads)
    comp = {}
    for other in compare:
        osch = parse_scheme(other)
        if osch.spec() == sch.spec():
            continue
        opath = onnx_qdq.quantize(prepared, out / f"encoder.{osch.name}.onnx", osch, ranges)
        d = diagnose(prepared, opath, osch, list(ev_w.mels[:1]), list(ev_w.content_frames[:1]), ranges, threads=threads)
        comp[osch.spec()] = [{"key": l["key"], "sqnr_db": l["sqnr_db"], "cosine": l["cosine"]} for l in d["layers"]]
        opath.unlink(missing_ok=True)
    iso = {}
    if isolated:
        say("isolated sensitivity (one group at 8 bits, the rest float):")
        kw = {"groups": tuple(isolated_groups)} if isolated_groups else {}
        iso = isolated_sensitivity(prepared, ranges, list(ev_w.mels[:1]), list(ev_w.content_frames[:1]), out,
                                   threads=threads, log=say, **kw)
        (out / "isolated.onnx").unlink(missing_ok=True)
    # encoder output and transcripts on the evaluation windows
    model = load_model(str(ws.bundle.checkpoint_path) if ws.bundle.checkpoint_path else (ws.bundle.model or "base"),
                       backend="cpu", threads=threads)
    ev = Evaluator(model, ev_w, references=references)
    s = onnx_qdq.session(qpath, threads=threads)
    score = ev.score([onnx_qdq.run(s, m) for m in ev_w.mels])
    evaluation_summary = {k: v for k, v in score.items() if k not in ("texts",)}
    evaluation_summary["texts"] = score["texts"][:3]
    evaluation_summary["float_texts"] = ev.float_texts[:3]
    evaluation_summary["windows"] = len(ev_w)
    if results:  # the study's held-out numbers, when given
        evaluation_summary["study"] = {k: v for k, v in results.get("rows", {}).items()}
        row = results.get("rows", {}).get(f"onnx:{sch.name}")
        if row:
            evaluation_summary.update(wer=row["wer"], wer_float=row["wer_float"], sqnr_db_heldout=row["sqnr_db"])
    tfl = _tflite_layernorm_note(ws, calibration) if tflite_note else None
    words = explain(sch, diag, iso, {"sqnr_db": score["sqnr_db"], "wer": evaluation_summary.get("wer", score.get("wer")),
                                     "wer_float": evaluation_summary.get("wer_float", score.get("wer_float"))}, tfl)
    report = {
        "scheme": sch.to_json(), "macs": mac_summary(sch, ws.dims), "summary": words,
        "evaluation": evaluation_summary, "layers": diag["layers"], "compare": comp, "isolated": iso,
        "calibration": {"windows": len(calibration), "speech_fraction": calibration.speech_fraction()},
        "model": ws.bundle.model, "dims": ws.dims.to_dict(), "seconds": round(time.perf_counter() - t0, 1),
    }
    jpath = out / "report.json"
    jpath.write_text(json.dumps(report, indent=1, default=float))
    hpath = write_html(report, out / "report.html")
    qpath.unlink(missing_ok=True)
    say(f"report: {hpath} ({report['seconds']:.0f} s)")
    return {"json": jpath, "html": hpath}
