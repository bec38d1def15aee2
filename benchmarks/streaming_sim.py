"""Streaming latency on a simulated clock: audio is fed at real time, each feed is charged the
compute it took, and every committed word is stamped with the simulated time it came out.

    python benchmarks/streaming_sim.py [--clips jfk longform speech] [--threads 2] [--step 0.7]
                                       [--compute-type int8] [--json out.json]

The clock: a chunk of `--chunk` seconds arrives when the audio reaches its end (the clock waits
for it if it is ahead); processing it costs the process CPU seconds it took divided by the
threads (an ideal parallel wall time, far steadier than wall time on a shared machine); the clock
moves on by that much, so a policy that falls behind real time pays for it in latency. With an
NPU encoder (on a board: `--backend neuron --encoder-model bundle/ --clock wall`) the NPU's time is
not the process's CPU time: `--clock wall` charges wall seconds instead (run it on a quiet board).

Policies, over the same core and model:
  * ours: model.stream() (LocalAgreement-2 over word timestamps, VAD gating and endpoints);
  * whisper.cpp `stream`-style: every `--baseline-step` s (3) the last up to `--baseline-length` s
    (10) are decoded again, no agreement; the text is final when a window is full (whisper.cpp's
    n_new_line), the next window starting with the last 0.2 s.
Reported per policy: committed-word latency (commit time - the word's end in the audio) median
and 90th percentile, end of speech -> final text per utterance (ours: VAD endpoints; the
baseline: the window that finalises the utterance's last word), WER against the offline
transcript and the reference, CPU seconds per audio second, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))

SR = 16000


class SimClock:
    """kind "cpu": a step costs its process CPU seconds / threads; "wall": its wall seconds (an
    accelerator's time is not the process's CPU time: on a board with the NPU encoder, quiet)."""

    def __init__(self, threads: int, kind: str = "cpu") -> None:
        self.now = 0.0
        self.threads = threads
        self.kind = kind
        self.cpu = 0.0

    def run(self, audio_time: float, work: Callable[[], Any]) -> Any:
        self.now = max(self.now, audio_time)
        t0, w0 = time.process_time(), time.perf_counter()
        out = work()
        spent = time.process_time() - t0
        self.cpu += spent
        self.now += spent / self.threads if self.kind == "cpu" else time.perf_counter() - w0
        return out


def _normalize(text: str) -> str:
    try:
        from whisper.normalizers import EnglishTextNormalizer

        return EnglishTextNormalizer()(text)
    except ImportError:
        return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def _wer(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = _normalize(reference), _normalize(hypothesis)
    return jiwer.wer(ref, hyp) if ref.strip() else float(bool(hyp.strip()))


def run_ours(model: Any, audio: np.ndarray, *, threads: int, chunk: float, step: float, vad: bool,
             trim_window: float | None = None, clock: str = "cpu", **stream_options: Any) -> dict:
    clock = SimClock(threads, clock)
    session = model.stream(step=step, vad=vad, language="en", word_timestamps=True, trim_window=trim_window,
                           **stream_options)
    latencies, endpoints, texts = [], [], []
    last_word_end = None
    n = int(chunk * SR)
    for i in range(0, len(audio), n):
        events = clock.run((i + n) / SR, lambda: session.feed(audio[i:i + n]))
        last_word_end = _collect(events, clock.now, latencies, endpoints, texts, last_word_end)
    events = clock.run(len(audio) / SR, session.flush)
    _collect(events, clock.now, latencies, endpoints, texts, last_word_end)
    return {"latencies": latencies, "end_of_speech": endpoints, "text": "".join(texts), "cpu": clock.cpu,
            "steps": session.stats["steps"], "stages": {k: v for k, v in session.stats.items() if k.endswith("_cpu")},
            "decoded_seconds": session.stats["decoded_seconds"]}


def _collect(events, now, latencies, endpoints, texts, last_word_end):
    for e in events:
        if e.type == "committed":
            texts.append(e.text)
            latencies += [now - w["end"] for w in e.words]
            if e.words:
                last_word_end = e.words[-1]["end"]
        elif e.type == "endpoint" and last_word_end is not None:
            endpoints.append(now - last_word_end)
            last_word_end = None
    return last_word_end


def run_sliding_window(model: Any, audio: np.ndarray, *, threads: int, step: float = 3.0, length: float = 10.0,
                       keep: float = 0.2, trim_window: float | None = None, clock: str = "cpu") -> dict:
    """whisper.cpp `stream`'s default loop (no VAD) over our model."""
    clock = SimClock(threads, clock)
    n_new_line = max(1, int(length / step) - 1)
    window_start, latencies, texts, ends = 0.0, [], [], []
    t, iteration = 0.0, 0
    while t < len(audio) / SR:
        t = min(t + step, len(audio) / SR)
        start = max(window_start, t - length)
        piece = audio[int(start * SR):int(t * SR)]
        result = clock.run(t, lambda: model.transcribe(piece, language="en", temperature=0.0, word_timestamps=True,
                                                        condition_on_previous_text=False, trim_window=trim_window))
        iteration += 1
        final = iteration % n_new_line == 0 or t >= len(audio) / SR
        if final:
            words = [w for s in result["segments"] for w in s.get("words", [])]
            texts.append(result["text"])
            latencies += [clock.now - (start + w["end"]) for w in words]
            if words:
                ends.append(clock.now - (start + words[-1]["end"]))
            window_start = max(0.0, t - keep)
    return {"latencies": latencies, "end_of_speech": ends, "text": " ".join(texts), "cpu": clock.cpu,
            "steps": iteration}


def clips(names: list[str]) -> list[tuple[str, np.ndarray, str]]:
    from testdata import LONGFORM, speech_manifest
    from whisper_genio import load_audio

    out = []
    rows = [r for r in speech_manifest() if r["language"] == "en" and r["status"] == "verified"]
    if "jfk" in names:
        out += [(r["id"], load_audio(str(r["path"])), r["transcript"]) for r in rows if r["id"] == "en_jfk_inaugural_1961"]
    if "speech" in names:
        out += [(r["id"], load_audio(str(r["path"])), r["transcript"]) for r in rows]
    if "longform" in names:
        for wav in sorted(LONGFORM.glob("*.wav")):
            reference = wav.with_name(wav.name.replace(".16k.wav", ".txt")).read_text(encoding="utf-8")
            out.append((wav.stem, load_audio(str(wav)), reference))
    return out


def summarize(name: str, runs: list[dict], offline: list[str], references: list[str], audio_seconds: float) -> dict:
    lat = np.array([x for r in runs for x in r["latencies"]]) if runs else np.zeros(0)
    eos = np.array([x for r in runs for x in r["end_of_speech"]])
    streamed = " ".join(r["text"] for r in runs)
    return {
        "policy": name,
        "words": int(len(lat)),
        "latency_median_s": float(np.median(lat)) if len(lat) else None,
        "latency_p90_s": float(np.percentile(lat, 90)) if len(lat) else None,
        "end_of_speech_median_s": float(np.median(eos)) if len(eos) else None,
        "wer_vs_offline": _wer(" ".join(offline), streamed),
        "wer_vs_reference": _wer(" ".join(references), streamed),
        "cpu_per_audio_s": sum(r["cpu"] for r in runs) / audio_seconds,
        "decodes": sum(r["steps"] for r in runs),
        # Per decode (ours only): CPU seconds in each stage and seconds of audio decoded: what an
        # NPU encoder would take over (the encoder stage) and what stays on the CPU.
        "per_decode_cpu_s": {k: sum(r["stages"][k] for r in runs) / max(1, sum(r["steps"] for r in runs))
                             for k in (runs[0].get("stages") or {})} if runs else {},
        "decoded_seconds_per_decode": (sum(r.get("decoded_seconds", 0.0) for r in runs)
                                       / max(1, sum(r["steps"] for r in runs))),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", nargs="+", default=["jfk", "longform"], choices=["jfk", "longform", "speech"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--backend", default="cpu", help="the encoder backend (on a board: neuron, with --encoder-model)")
    p.add_argument("--encoder-model", default=None, help="the encoder bundle or model file of --backend")
    p.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                   help="what a step costs: process CPU s / threads (steady on a shared box), or wall s (NPU backends)")
    p.add_argument("--step", type=float, default=None, help="ours: seconds between decodes (default: the stream's)")
    p.add_argument("--chunk", type=float, default=0.1, help="seconds per feed (the capture period)")
    p.add_argument("--no-vad", action="store_true")
    p.add_argument("--baseline-step", type=float, default=3.0)
    p.add_argument("--baseline-length", type=float, default=10.0)
    p.add_argument("--policies", nargs="+", default=["ours", "sliding"], choices=["ours", "sliding"])
    p.add_argument("--trim-seconds", type=float, default=None,
                   help="ours: cut the buffer after its committed words past this many seconds (default: the stream's)")
    p.add_argument("--trim-window", default="10",
                   help="fewest seconds encoded per decode (the buffer + 1 s when longer), both policies (whisper.cpp's audio_ctx "
                        "fitted to the buffer); 'off': whole 30 s windows")
    p.add_argument("--stream-option", action="append", default=[], metavar="NAME=VALUE",
                   help="ours: another model.stream() option, the value as JSON (e.g. unsure_word_wait=1.5); repeatable")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    from whisper_genio.transcription.streaming import StreamOptions

    defaults = StreamOptions()
    args.step = defaults.step if args.step is None else args.step
    args.trim_seconds = defaults.trim_seconds if args.trim_seconds is None else args.trim_seconds
    trim = None if args.trim_window == "off" or args.backend != "cpu" else float(args.trim_window)
    encoded = "whole windows" if trim is None else f"trimmed, at least {trim:g} s"
    extra = {name: json.loads(value) for name, value in (o.split("=", 1) for o in args.stream_option)}

    import whisper_genio

    model = whisper_genio.load_model("base", compute_type=args.compute_type, threads=args.threads,
                                     backend=args.backend, encoder_model=args.encoder_model)
    data = clips(args.clips)
    if not data:
        sys.exit(f"no clips found for {args.clips}: the speech data lives in ../shared/data beside the repository")
    seconds = sum(len(a) for _, a, _ in data) / SR
    offline = [model.transcribe(a, language="en", temperature=0.0)["text"] for _, a, _ in data]
    references = [ref for _, _, ref in data]
    rows = []
    if "ours" in args.policies:
        runs = [run_ours(model, a, threads=args.threads, chunk=args.chunk, step=args.step, vad=not args.no_vad,
                         trim_window=trim, trim_seconds=args.trim_seconds, clock=args.clock, **extra)
                for _, a, _ in data]
        cut = f", cut past {args.trim_seconds:g} s" + "".join(f", {k} {v}" for k, v in extra.items())
        rows.append(summarize(f"ours (step {args.step} s, LocalAgreement-2, VAD {'off' if args.no_vad else 'on'}, "
                              f"{encoded}{cut})",
                              runs, offline, references, seconds))
    if "sliding" in args.policies:
        runs = [run_sliding_window(model, a, threads=args.threads, step=args.baseline_step,
                                   length=args.baseline_length, trim_window=trim, clock=args.clock) for _, a, _ in data]
        rows.append(summarize(f"whisper.cpp stream-style (step {args.baseline_step} s, window "
                              f"{args.baseline_length} s, {encoded})", runs, offline, references, seconds))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    offline_wer = _wer(" ".join(references), " ".join(offline))
    print(f"{len(data)} clip(s), {seconds:.1f} s of audio; whisper-base {args.compute_type}, {args.threads} threads; "
          f"peak RSS {rss:.0f} MiB (the whole run); offline transcript WER vs reference {100 * offline_wer:.2f} %")
    for r in rows:
        print(f"  {r['policy']}: words {r['words']}, latency median {r['latency_median_s']:.2f} s / p90 "
              f"{r['latency_p90_s']:.2f} s, end of speech -> final {r['end_of_speech_median_s'] or float('nan'):.2f} s, "
              f"WER vs offline {100 * r['wer_vs_offline']:.2f} %, vs reference {100 * r['wer_vs_reference']:.2f} %, "
              f"CPU {r['cpu_per_audio_s']:.2f} s per audio s, {r['decodes']} decodes")
        if r["per_decode_cpu_s"]:
            stages = ", ".join(f"{k[:-4]} {1000 * v:.0f} ms" for k, v in r["per_decode_cpu_s"].items())
            print(f"    per decode ({r['decoded_seconds_per_decode']:.1f} s of audio): CPU {stages}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"rows": rows, "peak_rss_mib": rss,
                                                       "offline_wer_vs_reference": offline_wer}, indent=1))
    return rows


if __name__ == "__main__":
    main()
