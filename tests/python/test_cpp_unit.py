"""The C++ unit tests (tests/cpp) as part of pytest: under AddressSanitizer + UBSan, and cross-built
for aarch64 (NEON kernels) and run under qemu-aarch64.

Each test runs ``tools/run_cpp_tests.sh <mode>``, which configures and builds into build/<mode>
with Ninja (incremental: a second run only re-runs the tests) and runs ctest. A test is skipped,
with the reason, when the tools it needs are not installed; it fails with the tail of the script's
output when a build step or a C++ test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "run_cpp_tests.sh"
TAIL_LINES = 120
TIMEOUT_S = 1800


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # cmake and ninja may come from pip, next to this interpreter, without the venv on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _require(*tools: str) -> None:
    """Skip unless every tool is on PATH; "a|b" means either will do."""
    path = _env()["PATH"]
    missing = [t for t in tools if not any(shutil.which(alt, path=path) for alt in t.split("|"))]
    if missing:
        pytest.skip(f"C++ unit tests need {', '.join(missing)} (not found on PATH)")


def _run(mode: str) -> str:
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), mode],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
        tail = "\n".join(out.splitlines()[-TAIL_LINES:])
        pytest.fail(f"tools/run_cpp_tests.sh {mode} timed out after {TIMEOUT_S} s:\n{tail}", pytrace=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-TAIL_LINES:])
        pytest.fail(f"tools/run_cpp_tests.sh {mode} failed (exit {proc.returncode}):\n{tail}", pytrace=False)
    return proc.stdout


@pytest.mark.slow
def test_cpp_unit_asan():
    """wg_tests built with -fsanitize=address,undefined (Debug): every test passes, no report."""
    _require("bash", "cmake", "ctest", "ninja", "c++|g++|clang++", "cc|gcc|clang")
    out = _run("asan")
    assert "100% tests passed" in out, out[-2000:]
    # Sanitizer reports abort the test process, but make sure none slipped through.
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in out, f"sanitizer report in the output:\n{out[-4000:]}"


@pytest.mark.slow
def test_cpp_unit_aarch64_qemu():
    """wg_tests cross-compiled for aarch64 (NEON kernels), run under qemu-aarch64."""
    _require("bash", "cmake", "ctest", "ninja", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++", "qemu-aarch64")
    out = _run("aarch64")
    if out.startswith("SKIP:"):
        pytest.skip(out.strip())
    assert "100% tests passed" in out, out[-2000:]
