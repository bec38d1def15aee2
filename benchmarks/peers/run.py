"""Peer comparison on the same audio and the same whisper-base weights.

Each configuration runs in a fresh subprocess (so peak RSS is its own), and the table lists wall
time, process CPU seconds, peak RSS and WER, with ratios to whisper_genio in the same
decoding/threads setting. Engines: whisper_genio (int8, float32), openai-whisper (PyTorch fp32,
the users' status quo), faster-whisper/CTranslate2 (int8, float32), whisper.cpp through
pywhispercpp when it is installed (skipped otherwise, with the reason in the table), with
whisper-base converted to ggml from the same weights.

    python benchmarks/peers/run.py [--threads 1 2] [--beams 1 5] [--clips longform jfk speech] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"

ENGINES = ["whisper_genio:int8", "whisper_genio:float32", "openai-whisper:float32", "faster-whisper:int8",
           "faster-whisper:float32", "whisper.cpp:float16"]

# One run inside a fresh interpreter over a list of audio files (one per line of a file): the
# model loads once, the clock runs only while transcribing. Prints a JSON line
# {texts, wall, cpu, rss_mib} or {skip}.
CHILD = r"""
import json, os, resource, sys, time
engine, ctype, list_path, threads, beam, ct2_dir = sys.argv[1:7]
threads, beam = int(threads), int(beam)
audio_paths = open(list_path).read().splitlines()
os.environ["OMP_NUM_THREADS"] = str(threads)
def peak_rss_mib():
    # VmHWM: this process's own peak. ru_maxrss would start from the parent's peak (Linux keeps
    # it across exec), so every engine would look at least as big as this script.
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def timed(transcribe, load):
    texts, wall, cpu = [], 0.0, 0.0
    for path in audio_paths:
        audio = load(path)
        w, c = time.perf_counter(), time.process_time()
        texts.append(transcribe(audio))
        wall += time.perf_counter() - w
        cpu += time.process_time() - c
    print(json.dumps({"texts": texts, "wall": wall, "cpu": cpu, "rss_mib": peak_rss_mib()}))
try:
    if engine == "whisper_genio":
        import whisper_genio
        from whisper_genio.audio import load_audio
        m = whisper_genio.load_model("base", threads=threads, compute_type=ctype)
        timed(lambda a: m.transcribe(a, beam_size=beam if beam > 1 else None, language="en")["text"], load_audio)
    elif engine == "openai-whisper":
        import torch, whisper
        torch.set_num_threads(threads)
        sys.path.insert(0, os.path.join(os.environ["WG_REPO"], "tests", "python"))
        from testdata import openai_model, require_base_checkpoint
        m = openai_model(require_base_checkpoint(), threads)
        timed(lambda a: whisper.transcribe(m, a, fp16=False, beam_size=beam if beam > 1 else None,
                                           language="en")["text"], whisper.load_audio)
    elif engine == "faster-whisper":
        from faster_whisper import WhisperModel, decode_audio
        m = WhisperModel(ct2_dir, device="cpu", compute_type=ctype, cpu_threads=threads)
        def fw(a):
            segments, _ = m.transcribe(a, beam_size=beam, language="en", vad_filter=False)
            return "".join(s.text for s in segments)
        timed(fw, decode_audio)
    elif engine == "whisper.cpp":
        try:
            from pywhispercpp.model import Model
        except ImportError:
            print(json.dumps({"skip": "pywhispercpp is not installed"})); sys.exit(0)
        ggml = os.environ.get("WG_GGML_MODEL")
        if not ggml or not os.path.exists(ggml):
            print(json.dumps({"skip": "no ggml whisper-base file (set WG_GGML_MODEL)"})); sys.exit(0)
        m = Model(ggml, n_threads=threads)
        # pywhispercpp maps each keyword onto whisper_full_params: pass beam_search only for beams
        opts = {"beam_search": {"beam_size": beam, "patience": -1.0}} if beam > 1 else {}
        # it decodes the file itself: the path is the "audio"
        timed(lambda path: "".join(s.text for s in m.transcribe(path, language="en", **opts)), lambda path: path)
except Exception as e:  # a failing peer is reported, not fatal
    print(json.dumps({"skip": f"{type(e).__name__}: {e}"}))
"""


def ct2_folder() -> str:
    """faster-whisper reads a CTranslate2 folder; assemble one from the two weight packages."""
    from whisper_genio.checkpoints.locate import base_package_files

    parts, config_dir, _ = base_package_files()
    folder = pathlib.Path(tempfile.gettempdir()) / "wg-peers-ct2-base"
    folder.mkdir(exist_ok=True)
    target = folder / "model.bin"
    if not target.exists() or target.stat().st_size != sum(p.stat().st_size for p in parts):
        with open(target, "wb") as out:
            for p in parts:
                out.write(p.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        src = pathlib.Path(config_dir) / name
        if src.exists():
            (folder / name).write_bytes(src.read_bytes())
    return str(folder)


def wer(references: list, hypotheses: list) -> float:
    """Corpus WER: all errors over all reference words (Whisper's English normaliser)."""
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    n = EnglishTextNormalizer()
    pairs = [(n(r), n(h)) for r, h in zip(references, hypotheses) if n(r).strip()]
    return jiwer.wer([r for r, _ in pairs], [h if h.strip() else "<empty>" for _, h in pairs])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    p.add_argument("--engines", nargs="+", default=ENGINES)
    p.add_argument("--clips", nargs="+", default=["longform", "jfk"], choices=["longform", "jfk", "speech"],
                   help="speech: every verified English item of ../shared/data/speech (corpus WER)")
    p.add_argument("--out", default=str(HERE / "results.json"))
    args = p.parse_args()

    import csv

    with open(SHARED / "speech" / "manifest.tsv", newline="", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f, delimiter="\t"))
    longform = sorted((SHARED / "longform").glob("*.wav"))[0]
    jfk = next(r for r in manifest if r["file"] == "en_jfk_inaugural_1961.wav")
    verified = [r for r in manifest if r["language"] == "en" and r["status"] == "verified"]
    clips = {  # name -> ([audio files], [reference transcripts])
        "longform 229 s": ([longform], [longform.with_name(longform.name.replace(".16k.wav", ".txt")).read_text()]),
        "JFK 11 s": ([SHARED / "speech" / jfk["file"]], [jfk["transcript"]]),
        f"speech: {len(verified)} verified English items, {sum(float(r['seconds']) for r in verified):.0f} s":
            ([SHARED / "speech" / r["file"] for r in verified], [r["transcript"] for r in verified]),
    }
    clips = {k: v for k, v in clips.items() if k.split()[0].lower().rstrip(":") in args.clips}
    ct2 = ct2_folder()
    env = {**os.environ, "WG_REPO": str(REPO)}
    if "WG_GGML_MODEL" not in env:
        # whisper.cpp gets the same weights, converted once (benchmarks/peers/ggml_convert.py)
        ggml = pathlib.Path(tempfile.gettempdir()) / "wg-peers-ggml-base.bin"
        if not ggml.exists():
            sys.path.insert(0, str(HERE))
            from ggml_convert import convert

            convert("base", str(ggml))
        env["WG_GGML_MODEL"] = str(ggml)
    rows = []
    for clip, (paths, references) in clips.items():
        list_file = pathlib.Path(tempfile.gettempdir()) / "wg-peers-audio.txt"
        list_file.write_text("\n".join(str(p) for p in paths))
        for beam in args.beams:
            for threads in args.threads:
                for spec in args.engines:
                    engine, ctype = spec.split(":")
                    out = subprocess.run([sys.executable, "-c", CHILD, engine, ctype, str(list_file), str(threads),
                                          str(beam), ct2], capture_output=True, text=True, env=env,
                                         cwd=tempfile.gettempdir())
                    line = (out.stdout.strip().splitlines() or ['{"skip": "no output: ' + out.stderr[-300:].replace('"', "'") + '"}'])[-1]
                    r = json.loads(line)
                    r.update(clip=clip, beam=beam, threads=threads, engine=spec)
                    if "texts" in r:
                        r["wer"] = wer(references, r["texts"])
                    rows.append(r)
                    print(json.dumps({k: v for k, v in r.items() if k != "texts"}), flush=True)
    meta = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "python": platform.python_version()}
    for mod in ("whisper_genio", "whisper", "faster_whisper", "ctranslate2", "torch"):
        try:
            meta[mod] = __import__(mod).__version__
        except Exception:
            pass
    pathlib.Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(table(rows, meta))
    return 0


def table(rows, meta) -> str:
    lines = [f"machine: {meta['machine']}; versions: " + ", ".join(f"{k} {v}" for k, v in meta.items() if k != "machine"),
             "", "| clip | beam | threads | engine | wall s | CPU s | peak RSS MiB | WER | wall / ours | CPU / ours | RSS / ours |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skip" in r:
            why = " ".join(str(r["skip"]).split())[:120]  # one table row, however long the error
            lines.append(f"| {r['clip']} | {r['beam']} | {r['threads']} | {r['engine']} | skipped: {why} | | | | | | |")
            continue
        base = next((x for x in rows if x.get("engine") == "whisper_genio:int8" and x["clip"] == r["clip"]
                     and x["beam"] == r["beam"] and x["threads"] == r["threads"] and "wall" in x), None)
        ratio = lambda k: f"{r[k] / base[k]:.2f}" if base else "-"  # noqa: E731
        lines.append(f"| {r['clip']} | {r['beam']} | {r['threads']} | {r['engine']} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                     f"{r['rss_mib']:.0f} | {r['wer']:.2%} | {ratio('wall')} | {ratio('cpu')} | {ratio('rss_mib')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
