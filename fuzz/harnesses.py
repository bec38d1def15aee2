"""Fuzz harnesses for the file parsers whisper_genio wrote itself.

Each harness is a function ``harness(data: bytes) -> None`` that feeds ``data`` to one parser as
the file it reads. The contract under test is the project rule for bad input: the parser either
succeeds or raises a ``WhisperGenioError`` subclass; anything else escaping (a ``TypeError``,
``RecursionError``, ``MemoryError``, a crash) is a bug. Harnesses return normally on a
``WhisperGenioError`` and let anything else propagate, so atheris (fuzz/run.sh) and the seeded
mutation loop of the CI smoke test (tests/python/test_fuzz_smoke.py) both see it.

Seeds are built here from small, valid files (``SEEDS[name]()``): no third-party file is needed.
Parsers take paths, so each input is written to one scratch file (on /dev/shm when there is one).
"""

from __future__ import annotations

import atexit
import io
import json
import os
import pathlib
import random
import shutil
import struct
import sys
import tempfile
import zipfile
from typing import Callable, Dict, List, Optional

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from whisper_genio.errors import WhisperGenioError  # noqa: E402

_SCRATCH = pathlib.Path(tempfile.mkdtemp(prefix="wg-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


def _scratch(name: str, data: bytes) -> pathlib.Path:
    path = _SCRATCH / name
    path.write_bytes(data)
    return path


def _touch(value: object) -> None:
    """Read every array a parser returned, so lazily mapped bytes are really accessed."""
    if isinstance(value, np.ndarray):
        if value.size:
            value.reshape(-1)[[0, -1]].tolist()
    elif isinstance(value, dict):
        for v in value.values():
            _touch(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _touch(v)


def _guard(fn: Callable[[], object]) -> None:
    try:
        _touch(fn())
    except WhisperGenioError:
        pass


# -- safetensors -------------------------------------------------------------------------------------

def safetensors(data: bytes) -> None:
    from whisper_genio.checkpoints.safetensors import read_safetensors

    path = _scratch("x.safetensors", data)
    _guard(lambda: read_safetensors(path))


def _seed_safetensors() -> List[bytes]:
    a = np.arange(6, dtype="<f4").reshape(2, 3).tobytes()
    b = np.arange(4, dtype="<u2").tobytes()
    header = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, len(a)]},
              "b": {"dtype": "BF16", "shape": [4], "data_offsets": [len(a), len(a) + len(b)]},
              "__metadata__": {"format": "pt"}}
    raw = json.dumps(header).encode()
    return [struct.pack("<Q", len(raw)) + raw + a + b]


# -- torch.save zip ------------------------------------------------------------------------------------

def torch_zip(data: bytes) -> None:
    from whisper_genio.checkpoints.torch_zip import load_torch_zip

    path = _scratch("x.pt", data)
    _guard(lambda: load_torch_zip(path))


def torch_pickle(tensors: List[tuple]) -> bytes:
    """A data.pkl as torch.save writes it for an OrderedDict of float tensors, each given as
    (name, storage key, storage numel, size, stride, offset). Protocol 2 opcodes written by hand
    (the ones torch emits), so neither torch nor pickle's own object model is needed."""

    def text(s: str) -> bytes:
        return b"X" + struct.pack("<I", len(s.encode())) + s.encode()

    def integer(n: int) -> bytes:
        if -2**31 <= n < 2**31:
            return b"J" + struct.pack("<i", n)
        raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw  # LONG1

    def tup(values: tuple) -> bytes:
        return b"(" + b"".join(integer(v) for v in values) + b"t"

    out = io.BytesIO()
    out.write(b"\x80\x02ccollections\nOrderedDict\n)R(")  # PROTO 2, OrderedDict(), MARK
    for name, key, numel, size, stride, offset in tensors:
        out.write(text(name))
        out.write(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        out.write(b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text(str(key)) + text("cpu") +
                  integer(numel) + b"tQ")  # persistent id
        out.write(integer(offset) + tup(size) + tup(stride) + b"\x89ccollections\nOrderedDict\n)RtR")
    out.write(b"u.")  # SETITEMS, STOP
    return out.getvalue()


def torch_zip_bytes(storages: Dict[str, np.ndarray], compress: bool = False,
                    geometry: Optional[Dict[str, tuple]] = None) -> bytes:
    """A torch.save-style archive of float32 tensors, one storage each (seeds and tests).
    geometry: name -> (size, stride, offset) to override the contiguous 1-D default."""
    buf = io.BytesIO()
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    entries = []
    for key, (name, array) in enumerate(storages.items()):
        size, stride, offset = (geometry or {}).get(name, ((array.size,), (1,), 0))
        entries.append((name, key, array.size, size, stride, offset))
    with zipfile.ZipFile(buf, "w", mode) as zf:
        zf.writestr("archive/data.pkl", torch_pickle(entries))
        zf.writestr("archive/byteorder", "little")
        for key, array in enumerate(storages.values()):
            zf.writestr(f"archive/data/{key}", np.asarray(array, "<f4").tobytes())
    return buf.getvalue()


def _seed_torch_zip() -> List[bytes]:
    tensors = {"a": np.arange(8, dtype=np.float32), "b": np.ones(3, np.float32)}
    return [torch_zip_bytes(tensors), torch_zip_bytes(tensors, compress=True)]


# -- tokenizer.json / tiktoken ranks ------------------------------------------------------------------

# A byte-level BPE vocabulary of 256 single characters and 4 merges: the loaders take the size of
# the ordinary vocabulary (eot) as an argument, so a seed need not be 50 257 tokens long.
_TOKENIZER_EOT = 260


def tokenizer_json(data: bytes) -> None:
    from whisper_genio.tokenizer import _load_tokenizers_json

    path = _scratch("tokenizer.json", data)
    _guard(lambda: _load_tokenizers_json(str(path), _TOKENIZER_EOT).encode("the cat"))


def tiktoken_ranks(data: bytes) -> None:
    from whisper_genio.tokenizer import _load_tiktoken_ranks

    path = _scratch("x.tiktoken", data)
    _guard(lambda: _load_tiktoken_ranks(str(path), _TOKENIZER_EOT).encode("the cat"))


def _seed_tokenizer_json() -> List[bytes]:
    from whisper_genio.tokenizer import _byte_level_alphabet

    chars = sorted(_byte_level_alphabet().items(), key=lambda kv: kv[1])
    vocab = {c: b for c, b in chars}
    merges = [["t", "h"], ["th", "e"], ["c", "a"], ["ca", "t"]]
    for i, (a, b) in enumerate(merges):
        vocab[a + b] = 256 + i
    vocab["<|endoftext|>"] = _TOKENIZER_EOT
    spec = {"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": merges}}
    legacy = {"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": [" ".join(m) for m in merges]}}
    return [json.dumps(spec).encode(), json.dumps(legacy).encode()]


def _seed_tiktoken() -> List[bytes]:
    import base64

    tokens = [bytes([i]) for i in range(256)] + [b"th", b"the", b"ca", b"cat"]
    return [b"".join(base64.b64encode(t) + b" %d\n" % i for i, t in enumerate(tokens))]


# -- bundle manifest.json ----------------------------------------------------------------------------

def _bundle_folder() -> pathlib.Path:
    folder = _SCRATCH / "bundle"
    folder.mkdir(exist_ok=True)
    for name in ("encoder.dla", "encoder.onnx", "sub.dla"):
        if not (folder / name).exists():
            (folder / name).write_bytes(b"\0" * 16)
    return folder


def manifest(data: bytes) -> None:
    from whisper_genio.backends.bundle import load_bundle

    folder = _bundle_folder()
    (folder / "manifest.json").write_bytes(data)
    _guard(lambda: load_bundle(folder))


def _seed_manifest() -> List[bytes]:
    from whisper_genio.backends.bundle import make_manifest, record_checksums
    from whisper_genio.dims import ModelDims

    dims = ModelDims.for_size("tiny")
    folder = _bundle_folder()
    m = make_manifest(dims, model="tiny", dla={"file": "encoder.dla"}, onnx={"file": "encoder.onnx"})
    m["decoder"] = {"subgraphs": [{"op": "fc1", "layer": 0, "batch": 1, "files": {"dla": "sub.dla"},
                                   "inputs": [{"name": "x", "shape": [1, 384], "dtype": "int16", "scale": 0.01}],
                                   "outputs": [{"name": "y", "shape": [1, 1536], "dtype": "float32"}]}]}
    return [json.dumps(m).encode(), json.dumps(record_checksums(folder, m)).encode()]


# -- CTranslate2 model.bin -----------------------------------------------------------------------------

def ctranslate2(data: bytes) -> None:
    from whisper_genio.checkpoints.ctranslate2 import _parse, _VirtualFile

    path = _scratch("model.bin", data)
    _guard(lambda: _parse(_VirtualFile([path]), str(path)))


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _seed_ctranslate2() -> List[bytes]:
    out = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<I", 1)
    variables = [("encoder/w", np.arange(6, dtype="<f4").reshape(2, 3), 0),
                 ("decoder/b", np.arange(4, dtype="<i2"), 2)]
    out += struct.pack("<I", len(variables))
    for name, array, dtype_id in variables:
        out += _ct2_string(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
        out += struct.pack("<BI", dtype_id, array.nbytes) + array.tobytes()
    out += struct.pack("<I", 1) + _ct2_string("alias") + _ct2_string("encoder/w")
    return [out]


# -- device output files (validate / replay) ----------------------------------------------------------

def device_output(data: bytes) -> None:
    """The first byte picks the declared dtype and layout, the rest is the file's bytes."""
    from whisper_genio.backends.replay import ReplayFormat
    from whisper_genio.dims import ModelDims
    from whisper_genio.tools.validate import read_output

    if not data:
        return
    dtype = ("float32", "float16", "int8", "uint8", "int16")[data[0] % 5]
    fmt = {"dtype": dtype, "layout": "ntc" if data[0] & 8 else "nct"}
    if dtype in ("int8", "uint8", "int16"):
        fmt.update(scale=0.01, zero_point=0)
    dims = _TINY_OUTPUT_DIMS
    path = _scratch("out.bin", data[1:])
    _guard(lambda: read_output(path, dims, ReplayFormat.parse(fmt)))


class _Dims:
    """The two dimensions read_output uses (a full model's 1500 x 384 would make every input a
    size mismatch; small ones let mutations reach the conversion)."""

    n_mels = 80
    n_audio_ctx = 4
    n_audio_state = 8


_TINY_OUTPUT_DIMS = _Dims()


def _seed_device_output() -> List[bytes]:
    return [bytes([0]) + np.linspace(-1, 1, 32, dtype="<f4").tobytes(),
            bytes([2]) + np.arange(32, dtype="i1").tobytes(),
            bytes([9]) + np.arange(32, dtype="<i2").tobytes()]


HARNESSES: Dict[str, Callable[[bytes], None]] = {
    "safetensors": safetensors,
    "torch_zip": torch_zip,
    "tokenizer_json": tokenizer_json,
    "tiktoken": tiktoken_ranks,
    "manifest": manifest,
    "ctranslate2": ctranslate2,
    "device_output": device_output,
}

SEEDS: Dict[str, Callable[[], List[bytes]]] = {
    "safetensors": _seed_safetensors,
    "torch_zip": _seed_torch_zip,
    "tokenizer_json": _seed_tokenizer_json,
    "tiktoken": _seed_tiktoken,
    "manifest": _seed_manifest,
    "ctranslate2": _seed_ctranslate2,
    "device_output": _seed_device_output,
}


# -- a plain mutation driver (CI smoke runs; no atheris needed) ----------------------------------------

_INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                2**63 - 1, 2**63, 2**64 - 1]
_TOKENS = [b"[", b"{", b"]", b"}", b"-1", b"1e400", b"18446744073709551615", b"null", b'"..', b"/", b"0",
           b'"shape"', b'"batch"', b"[[[[[[[[[[", b"NaN"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random structural mutation (bit flip, interesting integer, splice, truncation ...)."""
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        op = rng.randrange(7)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            value, width = rng.choice(_INTERESTING), rng.choice((1, 2, 4, 8))
            b[pos:pos + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
        elif op == 2:
            b[pos:pos] = rng.choice(_TOKENS) * rng.choice((1, 1, 1, 200))
        elif op == 3:
            del b[pos:pos + rng.randrange(1, 64)]
        elif op == 4:
            b = b[:pos]
        elif op == 5 and b:
            start = rng.randrange(len(b))
            b[pos:pos] = b[start:start + rng.randrange(1, 32)]
        elif op == 6 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
    return bytes(b)


def run_mutations(name: str, iterations: int, seconds: float, seed: int = 0) -> int:
    """Seeded mutations of the harness's seeds; returns the number of inputs run. An exception
    other than WhisperGenioError propagates with the input that caused it attached."""
    import time

    harness, rng = HARNESSES[name], random.Random(seed)
    corpus = SEEDS[name]()
    deadline = time.monotonic() + seconds
    done = 0
    for data in corpus:
        harness(data)
        done += 1
    while done < iterations and time.monotonic() < deadline:
        data = mutate(rng.choice(corpus), rng)
        try:
            harness(data)
        except Exception as exc:
            getattr(exc, "add_note", lambda _: None)(f"fuzz input ({name}, {len(data)} bytes): {data[:200]!r}")
            raise
        done += 1
    return done
