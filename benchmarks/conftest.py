"""Benchmark fixtures and the ratio table: each stage runs for whisper_genio and for
openai-whisper in the same session, and the summary prints openai-whisper's time divided
by ours (higher is better for us). Run: python -m pytest benchmarks -p no:cacheprovider."""

from __future__ import annotations

import os
import pathlib
import platform
import sys
from collections import defaultdict

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))

from testdata import LONGFORM, TEST_THREADS, openai_model, require_base_checkpoint, require_speech  # noqa: E402

_RESULTS: dict[str, dict[str, float]] = defaultdict(dict)


def record(stage: str, impl: str, seconds: float, unit: str = "s") -> None:
    _RESULTS[stage][impl] = seconds
    _RESULTS[stage]["_unit"] = unit  # type: ignore[assignment]


@pytest.fixture(scope="session")
def threads() -> int:
    return int(os.environ.get("WG_BENCH_THREADS", TEST_THREADS))


@pytest.fixture(scope="session")
def base_checkpoint():
    return require_base_checkpoint()


@pytest.fixture(scope="session")
def ours(base_checkpoint, threads):
    import whisper_genio

    return whisper_genio.load_model("base", threads=threads)


@pytest.fixture(scope="session")
def reference(base_checkpoint, threads):
    return openai_model(base_checkpoint, threads)


@pytest.fixture(scope="session")
def jfk_audio():
    from whisper_genio.audio import load_audio

    row = next((r for r in require_speech() if r["id"] == "en_jfk_inaugural_1961"), None)
    if row is None:
        pytest.skip("JFK clip missing")
    return load_audio(str(row["path"]))


@pytest.fixture(scope="session")
def longform_audio():
    from whisper_genio.audio import load_audio

    wavs = sorted(LONGFORM.glob("*.wav"))
    if not wavs:
        pytest.skip("no long-form audio")
    return load_audio(str(wavs[0]))


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    import whisper_genio
    from whisper_genio import _core

    w = terminalreporter
    w.section("whisper_genio vs openai-whisper (same run)")
    w.line(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, kernels {_core.isa()} ({_core.cpu_features()}), "
           f"python {platform.python_version()}, whisper_genio {whisper_genio.__version__}")
    try:
        import torch
        import whisper

        w.line(f"openai-whisper {whisper.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    two_way = {"whisper_genio", "openai-whisper", "_unit"}
    w.line(f"{'stage':<34}{'whisper_genio':>16}{'openai-whisper':>16}{'ratio':>10}")
    for stage, r in _RESULTS.items():
        if not set(r) <= two_way:
            continue
        unit = r.get("_unit", "s")
        a, b = r.get("whisper_genio"), r.get("openai-whisper")
        fa = f"{a * 1e3:.1f} ms" if a is not None and unit == "s" else (f"{a:.3f} {unit}" if a is not None else "-")
        fb = f"{b * 1e3:.1f} ms" if b is not None and unit == "s" else (f"{b:.3f} {unit}" if b is not None else "-")
        ratio = f"{b / a:.2f}x" if a and b else "-"
        w.line(f"{stage:<34}{fa:>16}{fb:>16}{ratio:>10}")

    many = {stage: r for stage, r in _RESULTS.items() if not set(r) <= two_way}
    if many:
        w.section("kernels and decoder step (same run; ratio = its time / ours, > 1: ours is faster)")
        for stage, r in many.items():
            impls = [k for k in r if k != "_unit"]
            ours = next((k for k in impls if k.startswith("whisper_genio int8")), impls[0])
            unit = r.get("_unit", "s")
            w.line(stage)
            for impl in impls:
                t = r[impl]
                shown = f"{t * 1e3:>10.3f} ms" if unit == "s" else f"{t:>10.3f} {unit} "
                w.line(f"    {impl:<30}{shown}{t / r[ours]:>9.2f}x")
