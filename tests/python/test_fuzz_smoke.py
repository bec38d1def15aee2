"""A short, fixed-budget run of every parser fuzz harness (fuzz/harnesses.py).

Each harness gets seeded mutations of its generated seeds; only WhisperGenioError may escape a
parser, so any other exception fails the test with the input attached. Long, coverage-guided runs:
``fuzz/run.sh <target> <seconds>`` (fuzz/README.md).
"""

from __future__ import annotations

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
