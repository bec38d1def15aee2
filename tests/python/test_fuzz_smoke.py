"""A short, fixed-budget run of every parser fuzz harness (fuzz/harnesses.py).

Each harness gets seeded mutations of its generated seeds; only WhisperGenioError may escape a
parser, so any other exception fails the test with the input attached. Long, coverage-guided runs:
``fuzz/run.sh <target> <seconds>`` (fuzz/README.md).
"""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "fuzz"))

import harnesses  # noqa: E402

# Per harness: at most this many inputs or seconds, whichever ends first (the seed is fixed, so a
# failure reproduces: the same inputs come in the same order).
ITERATIONS = 4000
SECONDS = 4.0


@pytest.mark.parametrize("target", sorted(harnesses.HARNESSES))
def test_fuzz_smoke(target: str) -> None:
    done = harnesses.run_mutations(target, ITERATIONS, SECONDS, seed=1)
    assert done >= len(harnesses.SEEDS[target]())


@pytest.mark.parametrize("target", sorted(harnesses.HARNESSES))
def test_seeds_parse(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeds are valid files (else mutations would only explore the error paths)."""
    monkeypatch.setattr(harnesses, "_guard", lambda fn: harnesses._touch(fn()))
    for seed in harnesses.SEEDS[target]():
        harnesses.HARNESSES[target](seed)


# -- native side: findings of the libFuzzer targets (fuzz/native) as regressions, and a short run --

import shutil  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

from whisper_genio import _core  # noqa: E402
from whisper_genio.errors import InvalidOptionError  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]

_SAMPLES = np.zeros(16, np.float32)
# (call, words the message must hold): sizes whose product overflowed int64 (TensorSpec::numel)
# or that asked for gigabytes to exabytes before any check.
BAD_SIZES = [
    pytest.param(lambda: _core.dequantize(b"\0" * 16, {"dtype": "float32"}, 2**62 + 1, 4), "too large", id="dequantize-2^62"),
    pytest.param(lambda: _core.dequantize(b"\0" * 16, {"dtype": "float32"}, 2**64, 4), "rows", id="dequantize-2^64"),
    pytest.param(lambda: _core.dequantize(b"\0" * 16, {"dtype": "int8", "scale": 1.0}, 4, -4), "non-positive",
                 id="dequantize-negative"),
    pytest.param(lambda: _core.dequantize(b"\0" * 16, {"dtype": "float32"}, 2**31, 2**31), "too large",
                 id="dequantize-2^62-elements"),
    pytest.param(lambda: _core.log_mel_spectrogram(_SAMPLES, 80, 2**62), "MelWindows", id="log-mel-padding-2^62"),
    pytest.param(lambda: _core.log_mel_spectrogram(_SAMPLES, 80, 2**63 - 1), "MelWindows", id="log-mel-padding-max"),
    pytest.param(lambda: _core.log_mel_spectrogram(_SAMPLES, 128, 4 * 3600 * 16000), "4 hours", id="log-mel-padding-4h"),
    pytest.param(lambda: _core.log_mel_spectrogram(_SAMPLES, 80, 2**64), "padding", id="log-mel-padding-2^64"),
    pytest.param(lambda: _core.log_mel_spectrogram(_SAMPLES, 80, -1), "negative", id="log-mel-padding-negative"),
    pytest.param(lambda: _core.dtw(np.zeros((1, 2**21), np.float32)), "dtw", id="dtw-2^21-frames"),
]


@pytest.mark.parametrize("call, words", BAD_SIZES)
def test_native_sizes_are_bounded(call, words: str) -> None:
    with pytest.raises(InvalidOptionError, match=words):
        call()


def test_native_sizes_within_bounds_still_work() -> None:
    out = _core.dequantize(np.arange(8, dtype=np.int8).tobytes(), {"dtype": "int8", "scale": 0.5}, 2, 4)
    assert out.shape == (2, 4) and out[1, 3] == 3.5
    assert _core.log_mel_spectrogram(_SAMPLES, 80, 480000).shape == (80, 3000)


NATIVE_TARGETS = ["fuzz_tensor_io", "fuzz_log_mel", "fuzz_checkpoint_schema", "fuzz_standin_model"]
NATIVE_SECONDS = 3


def _libfuzzer_missing() -> str:
    """Why the native targets cannot be built here ('' when they can): clang++ with libFuzzer,
    CMake and Ninja are needed (CI has GCC only, so there the native run is skipped)."""
    for tool in ("clang++", "clang", "cmake", "ninja"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install clang cmake ninja-build)"
    probe = subprocess.run(["clang++", "-fsanitize=fuzzer", "-x", "c++", "-", "-o", "/dev/null"],
                           input=b'#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput'
                                 b"(const uint8_t*, size_t) { return 0; }\n",
                           capture_output=True)
    return "" if probe.returncode == 0 else "clang++ has no libFuzzer: " + probe.stderr.decode(errors="replace")[-200:]


@pytest.mark.parametrize("target", NATIVE_TARGETS)
def test_native_fuzz_smoke(target: str, tmp_path: pathlib.Path) -> None:
    """Builds one libFuzzer target (ASan + UBSan) and runs it for a few seconds from its seeds:
    any crash, sanitizer report, leak or out-of-memory fails the test with libFuzzer's output."""
    missing = _libfuzzer_missing()
    if missing:
        pytest.skip(missing)
    env = dict(os.environ, WG_FUZZ_CORPUS=str(tmp_path / "corpus"), WG_JOBS=os.environ.get("WG_JOBS", "1"))
    run = subprocess.run([str(ROOT / "fuzz" / "run_native.sh"), target, str(NATIVE_SECONDS), "-seed=1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    executed = [line for line in run.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert executed and int(executed[0].split(":")[-1]) > 100, run.stderr[-2000:]
