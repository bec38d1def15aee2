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

from .errors import WhisperGenioError
from .writers import OUTPUT_FORMATS, format_timestamp, get_writer


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
    p.add_argument("--backend", default="auto", help="encoder backend: auto, cpu (default: auto)")
    p.add_argument("--compute-type", default="auto", help="weight precision on the CPU (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: min(4, cores))")
    p.add_argument("--cpu-affinity", type=_cpu_list, default=None,
                   help="pin threads to these CPU ids, e.g. the big cores: 4,5,6,7")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whisper-genio", description="OpenAI Whisper for MediaTek Genio boards")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe or translate audio files",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("audio", nargs="+", help="audio files (any format ffmpeg or libsndfile reads)")
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
    return parser


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from . import load_model
    from .audio import SAMPLE_RATE, load_audio

    model = load_model(args.model, backend=args.backend, compute_type=args.compute_type, threads=args.threads,
                       cpu_affinity=args.cpu_affinity)
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
    for path in args.audio:
        samples = load_audio(path)
        bar = None
        progress = None
        if not args.quiet and not args.verbose and len(samples) > 30 * SAMPLE_RATE:
            import tqdm

            bar = tqdm.tqdm(total=len(samples) // 160, unit="frames", desc=os.path.basename(path), file=sys.stderr)

            def progress(done: int, total: int, bar=bar) -> None:
                bar.update(done - bar.n)
        try:
            result = model.transcribe(
                samples, progress=progress, verbose=True if args.verbose and not args.quiet else None,
                language=args.language, task=args.task, temperature=temps, best_of=args.best_of,
                beam_size=args.beam_size, patience=args.patience, length_penalty=args.length_penalty,
                suppress_tokens=args.suppress_tokens, initial_prompt=args.initial_prompt,
                carry_initial_prompt=args.carry_initial_prompt,
                condition_on_previous_text=args.condition_on_previous_text,
                compression_ratio_threshold=args.compression_ratio_threshold,
                logprob_threshold=args.logprob_threshold, no_speech_threshold=args.no_speech_threshold,
                clip_timestamps=args.clip_timestamps)
        finally:
            if bar is not None:
                bar.close()
        if writer is not None:
            writer(result, path)
        if not args.quiet and not args.verbose:
            for seg in result["segments"]:
                print(f"[{format_timestamp(seg['start'])} --> {format_timestamp(seg['end'])}] {seg['text'].strip()}")
    return 0


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
