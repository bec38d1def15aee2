#!/usr/bin/env python3
"""The quantization study behind docs/quantization.md: every scheme, both host paths, WER.

    python tools/quant_study.py --work /tmp/quant-study            # whisper-base, ../shared/data/speech
    python tools/quant_study.py --work W --eval-limit 8 --schemes a16w8,w8   # a quick subset

Data: the English clips of ../shared/data/speech (manifest.tsv). Every 4th clip (sorted by id)
calibrates, packed into full 30 s windows; the other *verified* English clips are the held-out
evaluation set, each encoded as the one padded window the runtime would feed the encoder.

For each scheme and each host path (ONNX Runtime on the QDQ encoder; the LiteRT interpreter on
the ai-edge-quantizer TFLite, the file ncc-tflite compiles) it measures encoder-output SQNR on
the speech frames and on the whole window, cosine, the WER of whisper_genio's float decoder
reading those states (greedy, EnglishTextNormalizer), the file size and the int8 MAC share.
Results are cached per (path, scheme) in the work folder, so an interrupted run resumes.
Writes results.json and table.md there, and the diagnosis report of A8W8 (report.html/.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "data" / "speech"


def split(speech: pathlib.Path, every: int = 4):
    rows = list(csv.DictReader(open(speech / "manifest.tsv", encoding="utf-8"), delimiter="\t"))
    en = sorted((r for r in rows if r["language"] == "en"), key=lambda r: r["id"])
    calib = [r for i, r in enumerate(en) if i % every == 0]
    evals = [r for i, r in enumerate(en) if i % every != 0 and r["status"] == "verified"]
    return calib, evals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="work folder (bundles, caches, results)")
    ap.add_argument("--model", default="base")
    ap.add_argument("--speech", default=str(SPEECH))
    ap.add_argument("--schemes", default="float,a8w8-tensor,a8w8,a16w8,w8,mixed")
    ap.add_argument("--paths", default="onnx,tflite")
    ap.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N held-out clips only")
    ap.add_argument("--mixed-spec", default=None,
                    help="the scheme the 'mixed' rows use, e.g. a16w8:ln1=8,q=8,k=8,v=8,qk=8,ln2=8,fc1=8 (default: "
                         "the one the search found, searched once per work folder)")
    ap.add_argument("--target-db", type=float, default=20.0)
    ap.add_argument("--max-wer-vs-float", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)

    import whisper_genio
    from whisper_genio.tools.export import export_bundle
    from whisper_genio.tools.quantize import onnx_qdq, tflite_quant
    from whisper_genio.tools.quantize.calibrate import single_windows
    from whisper_genio.tools.quantize.evaluate import Evaluator
    from whisper_genio.tools.quantize.pipeline import Workspace, search_mixed
    from whisper_genio.tools.quantize.schemes import mac_summary, parse_scheme

    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    speech = pathlib.Path(args.speech)
    calib, evals = split(speech)
    if args.eval_limit:
        evals = evals[:args.eval_limit]
    log(f"calibration: {len(calib)} clips; evaluation: {len(evals)} held-out verified English clips")
    fbundle = work / "float"
    if not (fbundle / "manifest.json").is_file():
        export_bundle(args.model, fbundle, log=log)
    ws = Workspace(fbundle, log)
    w = ws.windows([], files=[speech / r["file"] for r in calib])
    model = whisper_genio.load_model(str(ws.bundle.checkpoint_path), backend="cpu", threads=args.threads)
    ev_windows = single_windows([speech / r["file"] for r in evals], n_mels=ws.dims.n_mels)
    t0 = time.perf_counter()
    ref_cache = work / "reference.npz"
    ids = "\n".join(r["id"] for r in evals)
    cached = None
    if ref_cache.is_file():
        z = np.load(ref_cache, allow_pickle=True)
        if str(z["ids"]) == ids:
            cached = (list(z["states"]), [str(t) for t in z["texts"]])
    ev = Evaluator(model, ev_windows, references=[r["transcript"] for r in evals],
                   reference_states=cached[0] if cached else None, float_texts=cached[1] if cached else None)
    if cached is None:
        np.savez(ref_cache, ids=np.array(ids), states=np.stack(ev.ref_states), texts=np.array(ev.float_texts, dtype=object))
    log(f"float reference: WER {100 * ev.score(ev.ref_states)['wer']:.2f} % ({time.perf_counter() - t0:.0f} s)")

    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"rows": {}}
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    mixed_spec = args.mixed_spec or results.get("mixed_spec")
    if args.mixed_spec:
        mixed_spec = parse_scheme(args.mixed_spec, name="mixed").spec()
    if "mixed" in schemes and mixed_spec is None:
        res = search_mixed(ws, w, target_db=args.target_db, max_wer_vs_float=args.max_wer_vs_float,
                           threads=args.threads)
        mixed_spec = res.scheme.spec()
        results["mixed_spec"] = mixed_spec
        results["search"] = res.to_json()
        results_path.write_text(json.dumps(results, indent=1))
    results["calibration"] = {"clips": [r["id"] for r in calib], "windows": len(w),
                              "speech_fraction": w.speech_fraction()}
    results["evaluation"] = {"clips": [r["id"] for r in evals]}
    for path_kind in [p.strip() for p in args.paths.split(",") if p.strip()]:
        for name in schemes:
            key = f"{path_kind}:{name}"
            sch = parse_scheme(mixed_spec, name="mixed") if name == "mixed" else parse_scheme(name)
            old = results["rows"].get(key)
            if old is not None and old["spec"] == sch.spec() and old.get("recipe") == _recipe(path_kind):
                continue
            t0 = time.perf_counter()
            if path_kind == "onnx":
                if sch.kind == "float":
                    f = ws.path("onnx")
                else:
                    f = onnx_qdq.quantize(ws.onnx_prepared(), work / f"encoder.{name}.onnx", sch,
                                          ws.onnx_ranges(w) if sch.kind == "static" else {})
                runner = onnx_qdq.session(f, threads=args.threads)
                run = lambda m: onnx_qdq.run(runner, m)  # noqa: E731
            else:
                if sch.kind == "float":
                    f = ws.path("tflite")
                else:
                    f = tflite_quant.quantize(ws.path("tflite"), work / f"encoder.{name}.tflite", sch,
                                              ws.tflite_qsvs(w) if sch.kind == "static" else None)
                from whisper_genio.tools.quantize.litert import interpreter

                runner = interpreter(f, threads=args.threads)
                run = lambda m: tflite_quant.run(runner, m)  # noqa: E731
            t1 = time.perf_counter()
            states = [run(m) for m in ev_windows.mels]
            t_run = (time.perf_counter() - t1) / len(states)
            score = ev.score(states)
            row = {"path": path_kind, "scheme": name, "spec": sch.spec(), "size_mb": f.stat().st_size / 1e6,
                   "sqnr_db": score["sqnr_db"], "sqnr_window_db": score["sqnr_window_db"], "cosine": score["cosine"],
                   "wer": score["wer"], "wer_float": score["wer_float"], "wer_vs_float": score["wer_vs_float"],
                   "same_transcripts": score["same_transcripts"], "windows": len(states),
                   "int8_mac_share": mac_summary(sch, ws.dims)["int8_mac_share"],
                   "seconds_per_window": t_run, "seconds": time.perf_counter() - t0, "recipe": _recipe(path_kind),
                   "example": score["texts"][0][:160]}
            if path_kind == "tflite" and sch.kind != "float":
                row["float_ops"] = len(tflite_quant.float_ops(f))
                row["io"] = tflite_quant.io_quantization(f)
            results["rows"][key] = row
            results_path.write_text(json.dumps(results, indent=1))
            log(f"{key:22s} SQNR {row['sqnr_db']:6.1f} dB (window {row['sqnr_window_db']:6.1f}), cos "
                f"{row['cosine']:.4f}, WER {100 * row['wer']:6.2f} % (float {100 * row['wer_float']:.2f}), "
                f"int8 MACs {100 * row['int8_mac_share']:4.1f} %, {row['size_mb']:.1f} MB, {t_run:.1f} s/window")
    (work / "table.md").write_text(table(results))
    log(table(results))
    if not args.no_report and "a8w8" in schemes:
        from whisper_genio.tools.report import build_report

        build_report(fbundle, "a8w8", work / "report", calibration=w, evaluation=ev_windows.subset(2),
                     results=results, log=log)
    return 0


def _recipe(path_kind: str):
    """What a cached row was written with: rows of an older TFLite recipe are measured again."""
    from whisper_genio.tools.quantize import tflite_quant

    return tflite_quant.RECIPE_REVISION if path_kind == "tflite" else None


def table(results: dict) -> str:
    lines = ["| path | scheme | size MB | SQNR dB (speech / window) | cosine | WER % | ΔWER vs float (points) | int8 MAC share |",
             "|---|---|---|---|---|---|---|---|"]
    for row in results["rows"].values():
        lines.append(f"| {row['path']} | {row['spec'] if row['scheme'] == 'mixed' else row['scheme']} | "
                     f"{row['size_mb']:.1f} | {row['sqnr_db']:.1f} / {row['sqnr_window_db']:.1f} | {row['cosine']:.4f} | "
                     f"{100 * row['wer']:.2f} | {100 * (row['wer'] - row['wer_float']):+.2f} | "
                     f"{100 * row['int8_mac_share']:.0f} % |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
