"""Hostile model files: every one refused with a ModelLoadError naming the file and the problem,
before it costs memory, and never loaded as silent garbage (issue 16, the file-parser part)."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import struct
import sys
import zipfile

import numpy as np
import pytest

from whisper_genio.backends.bundle import MAX_SUBGRAPH_BATCH, load_bundle, make_manifest, write_manifest
from whisper_genio.checkpoints.canonical import validate_tensors
from whisper_genio.checkpoints.safetensors import read_safetensors
from whisper_genio.checkpoints.torch_zip import load_torch_zip
from whisper_genio.dims import ModelDims
from whisper_genio.errors import ModelLoadError
from whisper_genio.tokenizer import Tokenizer, _load_tiktoken_ranks, _load_tokenizers_json

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "fuzz"))

import harnesses  # noqa: E402  (builds valid seed files: torch zips, tokenizers, manifests)

DEEP = b"[" * 200_000 + b"]" * 200_000


# -- safetensors --------------------------------------------------------------------------------------

def _safetensors(header: object, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("content, fragment", [
    # 2**32 * 2**32 elements wraps to 0 in int64: it must not pass as an empty tensor
    (_safetensors({"w": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}}), "needs"),
    (_safetensors({"w": {"dtype": "F32", "shape": [2**62, 2**62, 3], "data_offsets": [0, 4]}}), "needs"),
    (_safetensors(DEEP), "nested too deeply"),
    (struct.pack("<Q", 2**63) + b"{}", "implausible"),
    (struct.pack("<Q", 1000) + b"{}", "truncated"),
    (_safetensors({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}, b"\0" * 8), "invalid shape"),
    # found by fuzz/run.sh safetensors (593 k executions in): an unhashable dtype raised TypeError
    (_safetensors({"w": {"dtype": {"dtype": "BF16"}, "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8), "dtype"),
    (_safetensors({"w": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "dtype"),
])
def test_hostile_safetensors(tmp_path, content, fragment):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=fragment) as info:
        read_safetensors(path)
    assert str(path) in str(info.value)


# -- tokenizer files ----------------------------------------------------------------------------------

def _tokenizer_spec() -> dict:
    return json.loads(harnesses.SEEDS["tokenizer_json"]()[0])


@pytest.mark.parametrize("mutate, fragment", [
    (lambda s: s["model"].__setitem__("merges", [[1, 2]]), r"merges\[0\]"),
    (lambda s: s["model"].__setitem__("merges", [7]), r"merges\[0\]"),
    (lambda s: s["model"].__setitem__("merges", {"a": "b"}), "expected a list"),
    (lambda s: s["model"]["vocab"].__setitem__("t", "zero"), "vocab entry 't'"),
    (lambda s: s["model"]["vocab"].__setitem__("t", -5), "non-negative"),
    (lambda s: s.__setitem__("model", [1]), "no 'model' object"),
])
def test_hostile_tokenizer_json(tmp_path, mutate, fragment):
    spec = _tokenizer_spec()
    mutate(spec)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ModelLoadError, match=fragment) as info:
        _load_tokenizers_json(str(path), harnesses._TOKENIZER_EOT)
    assert str(path) in str(info.value)


def test_deeply_nested_tokenizer_json_through_public_api(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(DEEP)
    with pytest.raises(ModelLoadError, match="nested too deeply"):
        Tokenizer.from_file(path, multilingual=True, num_languages=99)


@pytest.mark.parametrize("edit, fragment", [
    (lambda lines: lines + [lines[5]], "listed twice"),  # duplicate token: tiktoken would panic
    (lambda lines: lines[:-1] + [lines[-1].split()[0] + b" 3"], "two tokens"),  # duplicate rank
    (lambda lines: [b"YWFh %d" % 0] + lines[1:], "single-byte token"),  # byte 0 missing
])
def test_hostile_tiktoken_ranks(tmp_path, edit, fragment):
    lines = harnesses.SEEDS["tiktoken"]()[0].splitlines()
    path = tmp_path / "x.tiktoken"
    path.write_bytes(b"\n".join(edit(lines)) + b"\n")
    with pytest.raises(ModelLoadError, match=fragment):
        _load_tiktoken_ranks(str(path), harnesses._TOKENIZER_EOT)


# -- torch.save zip -----------------------------------------------------------------------------------

def test_torch_zip_bomb_refused_before_inflating(tmp_path, monkeypatch):
    n = 16 << 20  # 64 MB of zeros deflate to ~64 KB
    path = tmp_path / "bomb.pt"
    path.write_bytes(harnesses.torch_zip_bytes({"w": np.zeros(n, np.float32)}, compress=True))
    assert path.stat().st_size < 1 << 20
    inflated = []
    real_read = zipfile.ZipFile.read
    monkeypatch.setattr(zipfile.ZipFile, "read",
                        lambda self, name, pwd=None: inflated.append(getattr(name, "filename", name))
                        or real_read(self, name, pwd))
    with pytest.raises(ModelLoadError, match="zip bomb") as info:
        load_torch_zip(path)
    assert str(path) in str(info.value) and "archive/data/0" in str(info.value)
    assert "archive/data/0" not in inflated  # refused from the declared sizes, never inflated


def test_torch_zip_compressed_but_honest_still_loads(tmp_path):
    w = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    path = tmp_path / "rezipped.pt"
    path.write_bytes(harnesses.torch_zip_bytes({"w": w}, compress=True))
    np.testing.assert_array_equal(load_torch_zip(path)["w"], w)


@pytest.mark.parametrize("geometry, fragment", [
    (((1 << 19, 1 << 10), (0, 0), 0), "broadcast or overlapping"),  # 2 GiB as float32 from 4 bytes
    (((4, 4), (4, 1), 8), "runs past its storage"),
    (((2**40, 2**40), (1, 1), 0), "broadcast or overlapping"),
    (((4,), (1,), -1), "invalid tensor geometry"),
])
def test_torch_zip_hostile_geometry(tmp_path, geometry, fragment):
    path = tmp_path / "geometry.pt"
    path.write_bytes(harnesses.torch_zip_bytes({"w": np.arange(16, dtype=np.float32)}, geometry={"w": geometry}))
    with pytest.raises(ModelLoadError, match=fragment) as info:
        load_torch_zip(path)
    assert str(path) in str(info.value)


def test_torch_zip_crc_mismatch_in_mapped_storage(tmp_path):
    w = np.arange(64, dtype=np.float32)
    content = bytearray(harnesses.torch_zip_bytes({"w": w}))
    at = content.find(w.tobytes())
    assert at > 0
    content[at + 37] ^= 0x10  # one flipped bit in a weight
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(content))
    with pytest.raises(ModelLoadError, match="CRC-32") as info:
        load_torch_zip(path)
    assert "archive/data/0" in str(info.value)


# -- head counts --------------------------------------------------------------------------------------

def test_head_count_disagreeing_with_weight_shapes_refused():
    tiny = ModelDims.for_size("tiny")
    wrong = dataclasses.replace(tiny, n_audio_head=3, n_text_head=3)  # 384 / 3 divides: only the weights tell
    with pytest.raises(ModelLoadError, match="Whisper tiny, which has 6 and 6 heads") as info:
        validate_tensors(wrong, {}, "model.pt", dims_source="config.json")
    assert "config.json" in str(info.value)
    # Dimensions of no released size keep any head count that divides the width.
    custom = dataclasses.replace(tiny, n_text_layer=3)
    with pytest.raises(ModelLoadError, match="missing tensor"):
        validate_tensors(custom, {}, "model.pt")


# -- bundle manifests ---------------------------------------------------------------------------------

TINY = ModelDims.for_size("tiny")


def _bundle(tmp_path: pathlib.Path, **fields) -> pathlib.Path:
    folder = tmp_path / "bundle"
    folder.mkdir(exist_ok=True)
    (folder / "encoder.dla").write_bytes(b"dla!" * 64)
    write_manifest(folder, make_manifest(TINY, model="tiny", dla={"file": "encoder.dla"}))
    data = json.loads((folder / "manifest.json").read_text())
    data.update(fields)
    (folder / "manifest.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/../../outside.dla", "..\\..\\x.dla",
                                  "x" * 300])
def test_manifest_paths_stay_inside_the_bundle(tmp_path, name):
    folder = _bundle(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["encoder"]["dla"]["file"] = name
    data.pop("sha256")
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="leaves the bundle folder|too long") as info:
        load_bundle(folder)
    assert "encoder.dla.file" in str(info.value)


def test_manifest_symlink_out_of_the_bundle_refused(tmp_path):
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"x")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "link.pt").symlink_to(outside)
    folder = _bundle(tmp_path, checkpoint="link.pt")
    with pytest.raises(ModelLoadError, match="outside the bundle folder"):
        load_bundle(folder)


def test_manifest_deeply_nested_json(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "manifest.json").write_bytes(b'{"decoder": ' + DEEP + b"}")
    with pytest.raises(ModelLoadError, match="nested too deeply"):
        load_bundle(folder)


@pytest.mark.parametrize("batch", [10**12, MAX_SUBGRAPH_BATCH + 1, 0, 2**63])
def test_manifest_subgraph_batch_bounded(tmp_path, batch):
    folder = _bundle(tmp_path)
    (folder / "sub.dla").write_bytes(b"x")
    entry = {"op": "fc1", "layer": 0, "batch": batch, "files": {"dla": "sub.dla"},
             "inputs": [{"name": "x", "shape": [1, 384]}], "outputs": [{"name": "y", "shape": [1, 1536]}]}
    data = json.loads((folder / "manifest.json").read_text())
    data["decoder"] = {"subgraphs": [entry]}
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=rf"batch: expected an integer in 1\.\.{MAX_SUBGRAPH_BATCH}"):
        load_bundle(folder)


def test_bundle_checksums_recorded_and_checked(tmp_path):
    folder = _bundle(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    assert set(data["sha256"]) == {"encoder.dla"} and len(data["sha256"]["encoder.dla"]) == 64
    assert load_bundle(folder).path_of("dla") == folder / "encoder.dla"
    content = bytearray((folder / "encoder.dla").read_bytes())
    content[5] ^= 1
    (folder / "encoder.dla").write_bytes(bytes(content))
    with pytest.raises(ModelLoadError, match="corrupt or modified: its SHA-256") as info:
        load_bundle(folder)
    assert str(folder / "encoder.dla") in str(info.value)
    data.pop("sha256")  # a manifest without digests (hand-written, older) loads unverified
    (folder / "manifest.json").write_text(json.dumps(data))
    assert load_bundle(folder).path_of("dla") == folder / "encoder.dla"


@pytest.mark.parametrize("shard", ["../../etc/passwd", "/etc/passwd", "sub/model.safetensors", "..\\x"])
def test_hf_index_shards_are_plain_file_names(tmp_path, shard):
    from whisper_genio.checkpoints.huggingface import _read_sharded

    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"model.encoder.conv1.weight": shard}}))
    with pytest.raises(ModelLoadError, match="is not a file name"):
        _read_sharded(index)


def test_layer_counts_are_bounded():
    """A config asking for a million layers is refused before any schema is built (it once took
    minutes and gigabytes)."""
    from whisper_genio import _core

    dims = ModelDims.for_size("tiny").to_dict()
    dims.update(n_audio_layer=2**20, n_text_layer=2**20)
    with pytest.raises(ModelLoadError, match="n_audio_layer and n_text_layer must be <= 256"):
        _core.check_dims(dims)
