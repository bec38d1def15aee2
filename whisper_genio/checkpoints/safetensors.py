"""Read ``.safetensors`` files without the safetensors package.

Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the end of the header,
plus an optional ``__metadata__`` entry), then the raw little-endian tensor bytes.
"""

from __future__ import annotations

import json
import math
import pathlib
import struct
from typing import Dict

import numpy as np

from ..errors import ModelLoadError
from .canonical import bfloat16_to_float32

_DTYPES: Dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",  # widened to float32 below
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}

# A real header is a few hundred KB at most; refuse absurd lengths before allocating them.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def read_header(path: pathlib.Path) -> Dict[str, dict]:
    """The JSON header (without ``__metadata__``), after checking it against the file size."""
    path = pathlib.Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if size == 0:
                raise ModelLoadError(f"{path}: file is empty (0 bytes)")
            if len(prefix) < 8:
                raise ModelLoadError(f"{path}: truncated: {size} bytes is shorter than the 8-byte safetensors header length")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > _MAX_HEADER_BYTES:
                raise ModelLoadError(f"{path}: bad safetensors header: length {header_len} is implausible (not a safetensors file?)")
            if 8 + header_len > size:
                raise ModelLoadError(
                    f"{path}: truncated: header says it is {header_len} bytes, the file has {size} bytes in all"
                )
            raw = f.read(header_len)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read: {exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: bad safetensors header: not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelLoadError(f"{path}: bad safetensors header: JSON nested too deeply") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path}: bad safetensors header: expected a JSON object")
    header.pop("__metadata__", None)
    data_size = size - 8 - header_len
    for name, entry in header.items():
        _check_entry(path, name, entry, data_size)
    return header


def _check_entry(path: pathlib.Path, name: str, entry: object, data_size: int) -> None:
    if not (isinstance(entry, dict) and {"dtype", "shape", "data_offsets"} <= entry.keys()):
        raise ModelLoadError(f"{path}: bad safetensors header: entry {name!r} lacks dtype/shape/data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:  # a JSON object or list is unhashable
        raise ModelLoadError(f"{path}: tensor {name} has unknown or unsupported dtype {dtype!r}")
    ints = lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)  # noqa: E731
    if not ints(shape) or not ints(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise ModelLoadError(f"{path}: bad safetensors header: entry {name!r} has invalid shape or offsets")
    # Python ints: a product past int64 must not wrap around into a plausible size.
    expected = math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize
    if offsets[1] - offsets[0] != expected:
        raise ModelLoadError(
            f"{path}: bad safetensors header: tensor {name} of shape {shape} and dtype {dtype} needs "
            f"{expected} bytes but its offsets span {offsets[1] - offsets[0]}"
        )
    if offsets[1] > data_size:
        raise ModelLoadError(
            f"{path}: truncated: tensor {name} ends at data byte {offsets[1]}, the file holds only {data_size} data bytes"
        )


def read_safetensors(path: pathlib.Path) -> Dict[str, np.ndarray]:
    """All tensors of a file as numpy arrays: read-only memory-mapped views where possible.

    bfloat16 is widened to float32 (a copy), every other dtype keeps its type.
    """
    path = pathlib.Path(path)
    header = read_header(path)
    if not header:
        return {}
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    # asarray: plain ndarray views (the memmap subclass leaks into results); they keep the map alive.
    mapped = np.asarray(np.memmap(path, dtype=np.uint8, mode="r"))
    base = 8 + header_len
    tensors: Dict[str, np.ndarray] = {}
    for name, entry in header.items():
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        begin, end = entry["data_offsets"]
        raw = mapped[base + begin : base + end]
        if raw.ctypes.data % dtype.itemsize:
            raw = raw.copy()  # the format does not promise alignment; numpy consumers want it
        array = raw.view(dtype).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            array = bfloat16_to_float32(array)
        tensors[name] = array
    return tensors
