"""Fixtures: real speech from ../shared/data, and whisper-base twice: ours and the
openai-whisper reference built from the very same weights."""

from __future__ import annotations

import time

import pytest

from testdata import TEST_THREADS, openai_model, require_base_checkpoint, require_speech


@pytest.fixture(scope="session")
def speech_items() -> list[dict]:
    return require_speech()


@pytest.fixture(scope="session")
def english_items(speech_items) -> list[dict]:
    return [r for r in speech_items if r["language"] == "en"]


@pytest.fixture(scope="session")
def base_checkpoint():
    return require_base_checkpoint()


@pytest.fixture(scope="session")
def base_model(base_checkpoint):
    import whisper_genio

    return whisper_genio.load_model("base", threads=TEST_THREADS)


@pytest.fixture(scope="session")
def openai_base(base_checkpoint):
    return openai_model(base_checkpoint)


@pytest.fixture(scope="session")
def float32_greedy_runs(english_items, base_model) -> dict:
    """id -> (result, seconds): base_model (float32) transcribing every English item greedily
    (temperature 0) from openai-whisper's audio loader. The oracle compares these with
    openai-whisper and the compute-type tests with int8 and float16: decoded once for both."""
    whisper = pytest.importorskip("whisper")
    runs = {}
    for row in english_items:
        audio = whisper.load_audio(str(row["path"]))
        t0 = time.perf_counter()
        result = base_model.transcribe(audio, temperature=0.0)
        runs[row["id"]] = (result, time.perf_counter() - t0)
    return runs


@pytest.fixture(scope="session")
def english_normalizer():
    normalizers = pytest.importorskip("whisper.normalizers")
    return normalizers.EnglishTextNormalizer()


# Export/quantize/validate/report fixtures (a bundle exported once per session, calibration statistics).
from quantfixtures import (  # noqa: E402,F401
    calibration_split,
    calibration_windows,
    cpu_model,
    float_bundle,
    heldout_window,
    onnx_ranges,
    tflite_qsvs,
    workspace,
)


def pytest_terminal_summary(terminalreporter):
    from testdata import METRICS

    if METRICS:
        terminalreporter.section("measured")
        for line in METRICS:
            terminalreporter.line(line)
