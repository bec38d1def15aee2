"""The ``whisper-genio`` command line.

    whisper-genio transcribe FILE... [--model base] [--language en] [--beam-size 5] ...

Errors the user can fix (missing file, bad option, missing weights) print one line and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from . import _core
from .errors import InvalidOptionError, WhisperGenioError
from .transcription.writers import OUTPUT_FORMATS, format_timestamp, get_writer, segment_line


def _optional_float(value: str) -> Optional[float]:
    return None if value.lower() == "none" else float(value)


def _optional_int(value: str) -> Optional[int]:
    return None if value.lower() == "none" else int(value)


def _bool(value: str) -> bool:
    v = value.lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def _cpu_list(value: str) -> list[int]:
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated CPU ids, got {value!r}") from None


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="base", help="size name (base, small, large-v3, ...) or a path to a .pt file, "
                   "Hugging Face folder or CTranslate2 folder (default: base)")
    p.add_argument("--backend", default="auto",
                   help="encoder backend: auto (neuron, then onnxruntime, then cpu), neuron, onnxruntime, replay, cpu "
                   "(default: auto)")
    p.add_argument("--compute-type", default="auto", choices=_core.COMPUTE_TYPES,
                   help="weight precision on the CPU (default: auto = float32)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: min(4, cores))")
    p.add_argument("--cpu-affinity", type=_cpu_list, default=None,
                   help="pin threads to these CPU ids, e.g. the big cores: 4,5,6,7")
    e = p.add_argument_group("encoder backends (NPU, ONNX Runtime, replay)")
    e.add_argument("--encoder-model", default=None,
                   help="encoder.dla (neuron), encoder.onnx (onnxruntime) or a model-bundle folder with manifest.json")
    e.add_argument("--encoder-output", nargs="+", action="extend", default=None, metavar="BIN",
                   help="replay: output.bin file(s) written by neuronrt, one per 30-second window in order "
                   "(put the audio, if any, before this option)")
    e.add_argument("--encoder-output-dtype", default=None, choices=_core.IO_DTYPES,
                   help="replay: dtype of the output.bin bytes (default: the bundle manifest's, else float32)")
    e.add_argument("--scale", type=float, default=None, help="replay: quantization scale of the output tensor")
    e.add_argument("--zero-point", type=int, default=None, help="replay: quantization zero point of the output tensor")
    e.add_argument("--layout", default=None, choices=["ntc", "nct"],
                   help="replay: ntc = [1, 1500, d] (Whisper's), nct = [1, d, 1500]")
    e.add_argument("--neuron-qos", default=None, metavar="K=V,...",
                   help="neuron: QoS, e.g. preference=performance,priority=high,boost=100")
    e.add_argument("--neuron-api", default="auto", choices=_core.NEURON_APIS, help="neuron: runtime API")
    e.add_argument("--no-self-test", action="store_true",
                   help="neuron: skip the load-time check that a changed input changes the output")
    e.add_argument("--providers", default=None, metavar="NAME,...",
                   help="onnxruntime: execution providers in order (default: NeuronExecutionProvider if present, else CPU)")
    o = p.add_argument_group("decoder offload (NPU subgraphs)")
    o.add_argument("--decoder-offload", default="none", choices=_core.DECODER_OFFLOAD_MODES,
                   help="which decoder ops run on NPU subgraphs (see whisper_genio/backends/decoder_offload.py)")
    o.add_argument("--decoder-subgraphs", default=None, metavar="BUNDLE",
                   help="bundle folder with decoder subgraphs (default: --encoder-model when it is a bundle)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whisper-genio", description="OpenAI Whisper for MediaTek Genio boards")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe or translate audio files",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("audio", nargs="*", help="audio files (any format ffmpeg or libsndfile reads); with "
                   "--encoder-output: the recording the device encoded (optional; adds a comparison with the CPU encoder)")
    _add_model_arguments(t)
    t.add_argument("--language", default=None, help="spoken language (code or name); detected when omitted")
    t.add_argument("--task", default="transcribe", choices=["transcribe", "translate"])
    t.add_argument("--temperature", type=float, default=0.0, help="first sampling temperature")
    t.add_argument("--temperature-increment-on-fallback", type=_optional_float, default=0.2,
                   help="temperature step for the fallback; None disables the fallback")
    t.add_argument("--best-of", type=_optional_int, default=5, help="samples per temperature > 0")
    t.add_argument("--beam-size", type=_optional_int, default=5, help="beams at temperature 0; None: greedy")
    t.add_argument("--patience", type=float, default=None)
    t.add_argument("--length-penalty", type=float, default=None)
    t.add_argument("--suppress-tokens", default="-1")
    t.add_argument("--initial-prompt", default=None)
    t.add_argument("--carry-initial-prompt", type=_bool, default=False)
    t.add_argument("--condition-on-previous-text", type=_bool, default=True)
    t.add_argument("--compression-ratio-threshold", type=_optional_float, default=2.4)
    t.add_argument("--logprob-threshold", type=_optional_float, default=-1.0)
    t.add_argument("--no-speech-threshold", type=_optional_float, default=0.6)
    t.add_argument("--clip-timestamps", default="0")
    t.add_argument("--output-format", "-f", default=None, choices=list(OUTPUT_FORMATS) + ["all"],
                   help="write files in this format (default when --output-dir is given: all)")
    t.add_argument("--output-dir", "-o", default=None, help="write files here (default when --output-format is given: .)")
    t.add_argument("--verbose", type=_bool, default=False, help="print segments as they are decoded")
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    t.set_defaults(func=_cmd_transcribe)

    b = sub.add_parser("bench", help="per-stage time, CPU and memory of one transcription")
    b.add_argument("audio", help="audio file")
    _add_model_arguments(b)
    b.add_argument("--beam-size", type=_optional_int, default=None, help="beams (default: greedy)")
    b.add_argument("--language", default=None)
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(func=_cmd_bench)

    d = sub.add_parser("doctor", help="what can run here (NPU runtime, devices, tools, providers) and how to fix the rest")
    d.add_argument("--dla", default=None, help="also load this encoder DLA and run one round trip (and the self-test)")
    d.add_argument("--model", default="base", help="the model the DLA was exported from (for its dimensions)")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("--decoder-subgraphs", default=None, metavar="BUNDLE",
                   help="also load this bundle's decoder subgraphs into --model's decoder and print the plan")
    d.add_argument("--decoder-offload", default="auto", choices=[m for m in _core.DECODER_OFFLOAD_MODES if m != "none"],
                   help="the plan to build from --decoder-subgraphs")
    d.add_argument("--checklist", action="store_true", help="print the on-device checklist (docs/on-device.md) "
                   "with pass/fail where this machine can tell")
    d.set_defaults(func=_cmd_doctor)

    m = sub.add_parser("mel", help="write the encoder input files for a device (one raw [1, n_mels, 3000] per window)")
    m.add_argument("audio", help="audio file")
    m.add_argument("--output-dir", "-o", default=".", help="where mel_000.bin, mel_001.bin ... go")
    m.add_argument("--n-mels", type=int, default=80, choices=[80, 128])
    m.add_argument("--dtype", default="float32", choices=_core.IO_DTYPES,
                   help="the DLA input's dtype")
    m.add_argument("--scale", type=float, default=None, help="quantization scale of the DLA input")
    m.add_argument("--zero-point", type=int, default=None, help="quantization zero point of the DLA input")
    m.add_argument("--layout", default="nct", choices=["nct", "ntc"], help="nct = [1, n_mels, 3000], ntc = [1, 3000, n_mels]")
    m.set_defaults(func=_cmd_mel)
    _add_quantization_parsers(sub)
    return parser


def _add_quantization_parsers(sub) -> None:
    """export, quantize, validate (whisper_genio.tools; torch/litert/onnx only where needed)."""
    x = sub.add_parser("export", help="export the encoder (TFLite for ncc-tflite, ONNX) and the model bundle")
    x.add_argument("--model", default="base", help="size name or checkpoint path (default: base)")
    x.add_argument("--output-dir", "-o", required=True, help="bundle folder to write")
    x.add_argument("--format", default="tflite,onnx", help="tflite, onnx or both (default: tflite,onnx)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    x.add_argument("--soc", default="genio-700", help="record the ncc-tflite command for this SoC/board "
                   "(genio-510/700/1200/520/720, mt8390 ...; 'none' to skip)")
    x.add_argument("--no-checkpoint", action="store_true", help="do not copy the weights and tokenizer into the bundle")
    x.add_argument("--decoder-subgraphs", default=None, metavar="KINDS",
                   help="also export decoder subgraphs for the NPU: 'linear' (projections + vocabulary chunks)")
    x.add_argument("--beams", default="1,5", help="decoder subgraph batches = beam counts (default 1,5)")
    x.add_argument("--decoder-quantize", default="none", choices=["none", "a16w8", "w8"],
                   help="decoder subgraphs: float (none), int16 activations + int8 weights, or int8 weights only")
    x.add_argument("--calibration", nargs="+", default=(), metavar="AUDIO",
                   help="a16w8: speech files or folders whose decoder activations calibrate the subgraphs")
    x.set_defaults(func=_cmd_export)

    q = sub.add_parser("quantize", help="calibrate on real audio and write a quantized bundle (TFLite + ONNX QDQ)")
    q.add_argument("--bundle", required=True, help="the float bundle written by `whisper-genio export`")
    q.add_argument("--calibration", nargs="+", required=True, metavar="AUDIO",
                   help="audio files or folders; clips are packed into full 30 s windows")
    q.add_argument("--scheme", default="a16w8", help="a16w8 (default), a16w8-tensor, a8w8, a8w8-tensor, w8 "
                   "(weight-only), mixed (search), or mixed:GROUP=16,... / a16w8:GROUP=8,...")
    q.add_argument("--output-dir", "-o", required=True, help="quantized bundle folder to write")
    q.add_argument("--format", default="tflite,onnx", help="tflite, onnx or both")
    q.add_argument("--soc", default="genio-700", help="SoC/board for the ncc-tflite command ('none' to skip)")
    q.add_argument("--max-windows", type=int, default=None, help="use at most this many 30 s calibration windows")
    q.add_argument("--target-db", type=float, default=20.0,
                   help="mixed search: minimum encoder SQNR on the speech frames (default 20)")
    q.add_argument("--max-wer-vs-float", type=float, default=0.05,
                   help="mixed search: maximum WER of the transcripts against the float encoder's (default 0.05)")
    q.add_argument("--no-compile", action="store_true", help="do not run ncc-tflite even when it is on PATH")
    q.add_argument("--no-host-check", action="store_true",
                   help="skip running each written model on one calibration window against the float encoder "
                        "(exit status 3 when one fails)")
    q.add_argument("--report", default=None, metavar="DIR", help="also write the diagnosis report (HTML + JSON) here")
    q.add_argument("--threads", type=int, default=2)
    q.set_defaults(func=_cmd_quantize)

    v = sub.add_parser("validate", help="compare an encoder output (device output.bin, TFLite, ONNX) with the float "
                       "reference; exit status 1 when the gate fails")
    v.add_argument("--audio", required=True, help="the audio the device encoded (its first 30 s window)")
    v.add_argument("--model", default="base", help="the model (for the float reference and decoder)")
    src = v.add_mutually_exclusive_group(required=True)
    src.add_argument("--encoder-output", help="raw encoder output (neuronrt's output.bin)")
    src.add_argument("--encoder-model", help="an encoder .tflite or .onnx to run on the host instead")
    v.add_argument("--dtype", default=None, choices=_core.IO_DTYPES,
                   help="dtype of output.bin (default: the bundle's, else float32)")
    v.add_argument("--scale", type=float, default=None, help="quantization scale of the output tensor")
    v.add_argument("--zero-point", type=int, default=None, help="quantization zero point of the output tensor")
    v.add_argument("--layout", default=None, choices=["ntc", "nct"], help="ntc = [1, 1500, d], nct = [1, d, 1500]")
    v.add_argument("--bundle", default=None, help="take dtype/scale/zero point/layout from this bundle's manifest")
    v.add_argument("--host-model", default=None, help="the quantized .tflite/.onnx the DLA came from: three-way check")
    v.add_argument("--min-sqnr", type=float, default=None, help="gate: minimum SQNR on the speech frames (dB)")
    v.add_argument("--min-cosine", type=float, default=None, help="gate: minimum cosine")
    v.add_argument("--max-wer", type=float, default=None, help="gate: maximum transcript WER against float (0-1)")
    v.add_argument("--language", default=None)
    v.add_argument("--json", default=None, metavar="FILE", help="also write the result as JSON")
    v.add_argument("--threads", type=int, default=2)
    v.set_defaults(func=_cmd_validate)


def _cmd_export(args: argparse.Namespace) -> int:
    from .tools.export import export_bundle

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    soc = None if args.soc in (None, "", "none") else args.soc
    b = export_bundle(args.model, args.output_dir, formats=formats, opset=args.opset, checkpoint=not args.no_checkpoint,
                      soc=soc, log=lambda m: print(m, file=sys.stderr))
    for kind, art in b.artifacts.items():
        print(f"{kind}: {b.root / art.file}")
        cmd = art.extra.get("compiler", {}).get("command")
        if cmd:
            print("  compile: " + " ".join(cmd))
    if args.decoder_subgraphs:
        from .tools.export_decoder import add_decoder_subgraphs

        kinds = [k.strip() for k in args.decoder_subgraphs.split(",") if k.strip()]
        beams = [int(v) for v in args.beams.split(",") if v.strip()]
        quant = None if args.decoder_quantize == "none" else args.decoder_quantize
        entries = add_decoder_subgraphs(args.output_dir, args.model, kinds=kinds, batches=beams, quantize=quant,
                                        calibration=args.calibration, soc=soc, log=lambda m: print(m, file=sys.stderr))
        print(f"decoder subgraphs: {len(entries)} in {args.output_dir} (manifest decoder.subgraphs)")
        if entries and "compiler" in entries[0]:
            print("  compile each: " + " ".join(entries[0]["compiler"]["command"]) + "  (and so on)")
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from .tools.quantize.pipeline import quantize_bundle

    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    soc = None if args.soc in (None, "", "none") else args.soc
    summary = quantize_bundle(args.bundle, args.calibration, args.scheme, args.output_dir,
                              formats=[f.strip() for f in args.format.split(",") if f.strip()], soc=soc,
                              max_windows=args.max_windows, target_db=args.target_db,
                              max_wer_vs_float=args.max_wer_vs_float, run_compiler=not args.no_compile,
                              threads=args.threads, host_check=not args.no_host_check, log=say)
    print(f"scheme {summary['scheme']}: int8 share of encoder MACs {100 * summary['int8_mac_share']:.0f} %")
    failed = [k for k, a in summary["artifacts"].items() if not a.get("host_check", {}).get("pass", True)]
    for kind, a in summary["artifacts"].items():
        io = a["io"]
        desc = ", ".join(f"{r} {io[r]['dtype']}" + (f" scale {io[r]['scale']:.6g} zero point {io[r]['zero_point']}"
                                                   if "scale" in io[r] else "") for r in ("input", "output"))
        print(f"{kind}: {a['file']} ({desc})")
        if a.get("host_check"):
            hc = a["host_check"]
            print(f"  host check (integer kernels, calibration window 0): SQNR {hc['sqnr_db']:.1f} dB, cosine "
                  f"{hc['cosine']:.4f}: {'pass' if hc['pass'] else 'FAIL'}")
        if a.get("ncc"):
            print("  ncc-tflite: " + " ".join(a["ncc"]))
    if args.report:
        from .tools.quantize.calibrate import build_windows
        from .tools.report import build_report

        w = build_windows(args.calibration, max_windows=args.max_windows,
                          cache=os.path.join(args.bundle, ".calibration", "windows.npz"))
        paths = build_report(args.bundle, summary["scheme"], args.report, calibration=w, threads=args.threads, log=say)
        print(f"report: {paths['html']}")
    if failed:
        print(f"FAILED host check: {', '.join(failed)} (do not compile; see the SQNR above)", file=sys.stderr)
        return 3
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from .tools.validate import Gate, format_result, validate

    fmt = None
    if any(v is not None for v in (args.dtype, args.scale, args.zero_point, args.layout)):
        fmt = {"dtype": args.dtype or "float32", "scale": args.scale, "zero_point": args.zero_point,
               "layout": args.layout or "ntc"}
    gate = Gate()
    changes = {k: v for k, v in (("min_sqnr_db", args.min_sqnr), ("min_cosine", args.min_cosine),
                                 ("max_wer", args.max_wer)) if v is not None}
    if changes:
        gate = dataclasses.replace(gate, **changes)
    r = validate(args.audio, model=args.model, encoder_output=args.encoder_output, encoder_model=args.encoder_model,
                 output_format=fmt, bundle=args.bundle, host_model=args.host_model, gate=gate, threads=args.threads,
                 language=args.language)
    print(format_result(r))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(r, f, indent=1, default=float)
    return 0 if r["passed"] else 1


def _encoder_options(args: argparse.Namespace) -> dict:
    """load_model keyword arguments for the encoder backend options given on the command line."""
    fmt = None
    if any(v is not None for v in (args.encoder_output_dtype, args.scale, args.zero_point, args.layout)):
        fmt = {"dtype": args.encoder_output_dtype or "float32", "scale": args.scale, "zero_point": args.zero_point,
               "layout": args.layout or "ntc"}
    from .backends import EncoderOptions

    return {"encoder_options": EncoderOptions(
        encoder_model=args.encoder_model, encoder_output=tuple(args.encoder_output or ()), encoder_output_format=fmt,
        neuron_qos=args.neuron_qos, neuron_api=args.neuron_api, self_test=not args.no_self_test,
        providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()) if args.providers else None)}


def _cmd_bench(args: argparse.Namespace) -> int:
    from .tools.bench import run_bench

    report = run_bench(args.audio, args.model, backend=args.backend, compute_type=args.compute_type,
                       threads=args.threads, beam_size=args.beam_size, cpu_affinity=args.cpu_affinity,
                       language=args.language, decoder_offload=args.decoder_offload,
                       decoder_subgraphs=args.decoder_subgraphs, load_options=_encoder_options(args))
    print(report.to_json() if args.json else report.format())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .tools.doctor import format_checklist, format_report, run_doctor

    report = run_doctor(dla=args.dla, model=args.model, decoder_subgraphs=args.decoder_subgraphs,
                        decoder_offload=args.decoder_offload)
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=2))
    elif args.checklist:
        print(format_checklist(report))
    else:
        print(format_report(report))
    return 1 if report.failed else 0


def _cmd_mel(args: argparse.Namespace) -> int:
    from .tools.device_files import write_mel_files

    paths = write_mel_files(args.audio, args.output_dir, n_mels=args.n_mels, dtype=args.dtype, scale=args.scale,
                            zero_point=args.zero_point, layout=args.layout)
    for p in paths:
        print(p)
    return 0


def _transcribe_options(args: argparse.Namespace, temps: tuple[float, ...]) -> dict:
    return dict(verbose=True if args.verbose and not args.quiet else None, language=args.language, task=args.task,
                temperature=temps, best_of=args.best_of, beam_size=args.beam_size, patience=args.patience,
                length_penalty=args.length_penalty, suppress_tokens=args.suppress_tokens,
                initial_prompt=args.initial_prompt, carry_initial_prompt=args.carry_initial_prompt,
                condition_on_previous_text=args.condition_on_previous_text,
                compression_ratio_threshold=args.compression_ratio_threshold,
                logprob_threshold=args.logprob_threshold, no_speech_threshold=args.no_speech_threshold,
                clip_timestamps=args.clip_timestamps)


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from . import load_model

    if not args.audio and not args.encoder_output:
        raise InvalidOptionError("give audio files to transcribe, or --encoder-output files to replay")
    model = load_model(args.model, backend=args.backend, compute_type=args.compute_type, threads=args.threads,
                       cpu_affinity=args.cpu_affinity, decoder_offload=args.decoder_offload,
                       decoder_subgraphs=args.decoder_subgraphs, **_encoder_options(args))
    if args.temperature_increment_on_fallback is not None and args.temperature_increment_on_fallback > 0:
        temps: tuple[float, ...] = tuple(
            round(t, 6) for t in _frange(args.temperature, 1.0 + 1e-6, args.temperature_increment_on_fallback))
    else:
        temps = (args.temperature,)
    writer = None
    if args.output_format or args.output_dir:
        output_dir = args.output_dir or "."
        os.makedirs(output_dir, exist_ok=True)
        writer = get_writer(args.output_format or "all", output_dir)
    # A backend that replays a device's outputs holds one recording: its files (and the audio they
    # encode, if given, to compare each window with the CPU encoder's).
    replaying = model.pipeline.window_count >= 0
    if replaying and len(args.audio) > 1:
        raise InvalidOptionError("replay takes at most one audio file: the recording the --encoder-output files encode")
    for path in args.audio or [None]:
        result = _transcribe_file(model, path, args, _transcribe_options(args, temps))
        if writer is not None:
            writer(result, path or args.encoder_output[0])
        if replaying and not args.quiet:
            _print_window_report(args, model, path)
        if not args.quiet and not args.verbose:
            for seg in result["segments"]:
                print(segment_line(seg))
    return 0


def _transcribe_file(model, path: Optional[str], args: argparse.Namespace, options: dict) -> dict:
    """One file (None: the replayed windows alone), with a progress bar on stderr for audio longer
    than a window."""
    from .audio import SAMPLE_RATE, load_audio

    samples = None if path is None else load_audio(path)
    if samples is None or args.quiet or args.verbose or len(samples) <= 30 * SAMPLE_RATE:
        return model.transcribe(samples, **options)
    import tqdm

    with tqdm.tqdm(total=len(samples) // 160, unit="frames", desc=os.path.basename(path), file=sys.stderr) as bar:
        return model.transcribe(samples, progress=lambda done, total: bar.update(done - bar.n), **options)


def _print_window_report(args: argparse.Namespace, model, audio: Optional[str]) -> None:
    """Each replayed window's file and span; with the audio, its cosine against the CPU encoder."""
    from . import load_model
    from .tools.device_files import compare_windows

    reference = None
    if audio is not None:
        reference = load_model(args.model, backend="cpu", threads=args.threads, cpu_affinity=args.cpu_affinity)
    for w in compare_windows(model, audio, reference):
        line = f"window {w['window']} ({w['file']}): {format_timestamp(w['start'])} --> {format_timestamp(w['end'])}"
        if "cosine" in w:
            verdict = "matches" if w["cosine"] >= 0.99 else "DIFFERS FROM"
            line += (f", cosine {w['cosine']:.5f} vs the CPU encoder ({verdict} it; max |diff| "
                     f"{w['max_abs_diff']:.3g}; mel convention: {w['mel_convention']})")
        print(line, file=sys.stderr)


def _frange(start: float, stop: float, step: float):
    value = start
    while value < stop:
        yield value
        value += step


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (WhisperGenioError, FileNotFoundError) as e:
        print(f"whisper-genio: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
