"""The STAND-IN Neuron runtime for tests: build it, control it, write its model files.

The stand-in (tests/cpp/standin/neuron_standin.cc) is NOT MediaTek's runtime: it exports the
same C symbols, executes a stand-in model file of the tests' own format, records what it is
given and fails on request. See that file's header for the model format and control API.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import shutil
import struct
import subprocess
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCE = REPO / "tests" / "cpp" / "standin" / "neuron_standin.cc"

VARIANTS = {
    "full": [],
    "nov2": ["-DWG_STANDIN_NO_V2"],
    "noinfer": ["-DWG_STANDIN_NO_INFERENCE"],
    "noqos": ["-DWG_STANDIN_NO_QOS"],
}

DTYPES = {"float32": 0, "float16": 1, "int8": 2, "uint8": 3, "int16": 4}
NUMPY = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8, "int16": np.int16}


def compiler() -> str:
    for cand in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if cand and shutil.which(cand):
            return cand
    pytest.skip("the Neuron stand-in needs a C++ compiler (c++, g++ or clang++) on PATH")


def build(out_dir: pathlib.Path, variant: str = "full", name: Optional[str] = None) -> pathlib.Path:
    """Compiles the stand-in (one variant) into out_dir; returns the .so path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / (name or f"libwg_neuron_standin_{variant}.so")
    cmd = [compiler(), "-shared", "-fPIC", "-O1", "-std=c++17", "-o", str(target), str(SOURCE), *VARIANTS[variant]]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        pytest.fail(f"building the Neuron stand-in failed:\n{' '.join(cmd)}\n{proc.stdout}")
    return target


class Control:
    """ctypes handle on a loaded stand-in: the same library object the loader dlopens by path."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        lib = ctypes.CDLL(str(path))
        assert lib.wg_standin_is_standin() == 1
        lib.wg_standin_log.restype = ctypes.c_size_t
        lib.wg_standin_log.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.wg_standin_fail.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        lib.wg_standin_calls.argtypes = [ctypes.c_char_p]
        lib.wg_standin_hash.restype = ctypes.c_uint64
        lib.wg_standin_hash.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.wg_standin_lookup_hits.restype = ctypes.c_long
        lib.wg_standin_lookup_misses.restype = ctypes.c_long
        self.lib = lib

    def reset(self) -> None:
        self.lib.wg_standin_reset()

    def set_version(self, major: int, minor: int, patch: int) -> None:
        self.lib.wg_standin_set_version(major, minor, patch)

    def fail(self, function: str, nth: int, code: int) -> None:
        self.lib.wg_standin_fail(function.encode(), nth, code)

    def set_latch(self, on: bool) -> None:
        self.lib.wg_standin_set_latch(int(on))

    def set_io_count(self, n_in: int, n_out: int) -> None:
        self.lib.wg_standin_set_io_count(n_in, n_out)

    def log(self) -> list[str]:
        n = self.lib.wg_standin_log(None, 0)
        buf = ctypes.create_string_buffer(n + 1)
        self.lib.wg_standin_log(buf, n + 1)
        return [line for line in buf.value.decode().split("\n") if line]

    def clear_log(self) -> None:
        self.lib.wg_standin_clear_log()

    def calls(self, function: str) -> int:
        return self.lib.wg_standin_calls(function.encode())

    def live(self) -> int:
        return self.lib.wg_standin_live()

    def hits(self) -> int:
        return self.lib.wg_standin_lookup_hits()

    def misses(self) -> int:
        return self.lib.wg_standin_lookup_misses()

    def hash(self, data: np.ndarray) -> int:
        arr = np.ascontiguousarray(data)
        return int(self.lib.wg_standin_hash(arr.ctypes.data, arr.nbytes))


def fields(line: str) -> dict[str, str]:
    """'NeuronRuntime_setInput rt=0x.. ptr=0x.. len=4' -> {'rt': '0x..', 'ptr': ..., 'len': '4'}."""
    out = {}
    for part in line.split()[1:]:
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def address(text: str) -> int:
    return int(text, 16) if text not in ("(nil)", "0", "null") else 0


@dataclass
class Io:
    dtype: str = "float32"
    scale: float = 1.0
    zero_point: int = 0
    # Device layout (neuron_standin.cc "Device layout"): rows of `cols` logical elements held in
    # rows of `padded_cols` (0: not padded); fp16_native: a float16 tensor whose logical size the
    # runtime reports in float32.
    cols: int = 0
    padded_cols: int = 0
    fp16_native: bool = False

    @property
    def laid_out(self) -> bool:
        return bool(self.padded_cols or self.fp16_native)


def round_up(n: int, multiple: int) -> int:
    """n rounded up to a multiple (the MDLA's row alignment in elements)."""
    return -(-n // multiple) * multiple


def write_model(path: pathlib.Path, in_elems: int, out_elems: int, *, inp: Io = Io(), out: Io = Io(),
                alpha: float = 1.0, beta: float = 0.0,
                entries: Iterable[tuple[int, bytes]] = ()) -> pathlib.Path:
    """A stand-in model file: a linear map, plus lookup entries (input hash -> output bytes)."""
    entries = list(entries)
    layout = inp.laid_out or out.laid_out
    header = b"WGSTNDIN" + struct.pack(
        "<IIIIQQfififfII", 1, 1 if entries else 0, DTYPES[inp.dtype], DTYPES[out.dtype], in_elems, out_elems,
        inp.scale, inp.zero_point, out.scale, out.zero_point, alpha, beta, len(entries), 1 if layout else 0)
    assert len(header) == 72
    if layout:
        header += struct.pack("<6I", inp.cols or in_elems, inp.padded_cols, int(inp.fp16_native),
                              out.cols or out_elems, out.padded_cols, int(out.fp16_native))
    out_bytes = out_elems * np.dtype(NUMPY[out.dtype]).itemsize
    with open(path, "wb") as f:
        f.write(header)
        for key, value in entries:
            assert len(value) == out_bytes, (len(value), out_bytes)
            f.write(struct.pack("<Q", key))
            f.write(value)
    return path


def linear_reference(mel: np.ndarray, out_elems: int, *, inp: Io = Io(), out: Io = Io(), alpha: float = 1.0,
                     beta: float = 0.0) -> np.ndarray:
    """What the stand-in's linear map returns for a float mel, as the host sees it after
    dequantization (float32 [out_elems]): quantize the input, map, quantize the output."""
    x = _quantize(np.ascontiguousarray(mel, np.float32).ravel(), inp)
    real_in = _dequantize(x, inp)
    idx = np.arange(out_elems) % real_in.size
    y = (alpha * real_in[idx] + beta).astype(np.float32)
    return _dequantize(_quantize(y, out), out)


def _quantize(x: np.ndarray, io: Io) -> np.ndarray:
    """The stand-in device's quantization (neuron_standin.cc: std::round(v / scale) + zero point,
    clamped), written here independently of whisper_genio._core.quantize on purpose: the tests
    check the host's native dequantization and its quantized input against these bytes, and an
    emulator sharing that code would agree with it even where it is wrong."""
    if io.dtype == "float32":
        return x.astype(np.float32)
    if io.dtype == "float16":
        return x.astype(np.float16)
    info = np.iinfo(NUMPY[io.dtype])
    q = np.round(x.astype(np.float32) / np.float32(io.scale)) + io.zero_point  # np.round is half-to-even
    # the stand-in and whisper_genio round half away from zero: fix the exact .5 cases
    r = x.astype(np.float32) / np.float32(io.scale)
    half = np.abs(r - np.trunc(r)) == 0.5
    q = np.where(half, np.trunc(r) + np.sign(r) + io.zero_point, q)
    return np.clip(q, info.min, info.max).astype(NUMPY[io.dtype])


def _dequantize(q: np.ndarray, io: Io) -> np.ndarray:
    if io.dtype in ("float32", "float16"):
        return q.astype(np.float32)
    return ((q.astype(np.int32) - io.zero_point).astype(np.float32) * np.float32(io.scale)).astype(np.float32)


def quantize(x: np.ndarray, io: Io) -> np.ndarray:
    return _quantize(np.asarray(x, np.float32), io)


def lookup_entries(control: Control, pairs: Sequence[tuple[np.ndarray, np.ndarray]], out: Io = Io()) -> list[tuple[int, bytes]]:
    """(float mel as the DLA receives it, float states) -> stand-in lookup entries."""
    entries = []
    for mel, states in pairs:
        key = control.hash(np.ascontiguousarray(mel, np.float32))
        entries.append((key, quantize(states, out).tobytes()))
    return entries
