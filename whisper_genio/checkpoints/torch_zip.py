"""Read PyTorch's ``torch.save`` zip container without importing torch.

A ``torch.save`` file is a zip archive: ``<prefix>/data.pkl`` is a pickle of the saved object in
which every tensor is a call to ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)`` and every storage a *persistent id* ``('storage', torch.FloatStorage, key, device, numel)``
whose bytes are the archive member ``<prefix>/data/<key>``.

The pickle is read by an Unpickler that resolves only an allowlist of globals to our own harmless
stand-ins, so a hostile file cannot run code: anything else is refused with ModelLoadError.
Storages are memory-mapped straight out of the (normally uncompressed) archive.
"""

from __future__ import annotations

import collections
import io
import math
import pathlib
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ..errors import ModelLoadError
from .canonical import bfloat16_to_float32

# torch's storage class name -> numpy dtype of its elements ("bfloat16" is read as raw uint16).
_STORAGE_DTYPES: Dict[str, str] = {
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16",
    "DoubleStorage": "f8",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # zip local file header, 30 bytes

# torch.save stores members uncompressed; a re-zipped checkpoint of trained float weights
# compresses by a few percent. A member that claims to inflate by more than this is refused
# before it is inflated (a zip bomb), unless it is small enough to be harmless anyway.
_MAX_INFLATE_RATIO = 100
_SMALL_MEMBER_BYTES = 1 << 20
# data.pkl holds only the structure (names, shapes, storage keys): tens of KB for large-v3.
_MAX_PICKLE_BYTES = 64 << 20
# Sparse tensors (alignment_heads: n_text_layer x n_text_head) are densified; bound that copy.
_MAX_SPARSE_DENSE_ELEMENTS = 1 << 20
# CRC-32 of memory-mapped members is computed over reads of this size (one reused buffer).
_CRC_CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co. inside a persistent id."""

    name: str

    @property
    def is_bfloat16(self) -> bool:
        return self.name == "BFloat16Storage"

    def numpy_dtype(self, byteorder: str) -> np.dtype:
        code = _STORAGE_DTYPES[self.name]
        if code == "bfloat16":
            code = "u2"
        return np.dtype(("<" if byteorder == "little" else ">") + code)


@dataclass
class _Storage:
    """A loaded storage: its flat element array (raw uint16 for bfloat16)."""

    type: _StorageType
    array: np.ndarray


def _rebuild_tensor(storage: _Storage, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...], *_: Any) -> np.ndarray:
    """``_rebuild_tensor``/``_rebuild_tensor_v2``: a C-contiguous array for the strided view."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor record does not reference a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size + stride) or offset < 0:
        raise pickle.UnpicklingError(f"invalid tensor geometry size={size} stride={stride} offset={offset}")
    flat = storage.array
    numel = math.prod(size)  # Python ints: a product past int64 must not wrap around
    if numel > flat.size:
        # Weights never broadcast (stride 0) or overlap: refusing this bounds every copy below
        # by the storage's size instead of allocating what a hostile size/stride asks for.
        raise pickle.UnpicklingError(
            f"tensor of size {size} has {numel} elements but its storage only {flat.size} "
            f"(stride {stride}: broadcast or overlapping tensors are not weights)"
        )
    if numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise pickle.UnpicklingError(
                f"tensor of size {size} at offset {offset} runs past its storage of {flat.size} elements"
            )
    contiguous_strides = tuple(int(np.prod(size[i + 1 :], dtype=np.int64)) for i in range(len(size)))
    if numel == 0:
        array = np.zeros(size, dtype=flat.dtype)
    elif all(n == 1 or s == c for n, s, c in zip(size, stride, contiguous_strides)):
        # The common case: a zero-copy view of the (memory-mapped) storage.
        array = flat[offset : offset + numel].reshape(size)
    else:
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * flat.itemsize for s in stride), writeable=False
        )
        array = np.ascontiguousarray(view)
    if storage.type.is_bfloat16:
        return bfloat16_to_float32(array)
    if not array.dtype.isnative:
        return array.astype(array.dtype.newbyteorder("="))
    return array


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    """``_rebuild_parameter[_with_state]``: a Parameter is just its data here."""
    return data


def _get_layout(name: str) -> str:
    return str(name)


def _rebuild_sparse_tensor(layout: str, data: Tuple[Any, ...]) -> np.ndarray:
    """Sparse COO tensors (how openai-whisper keeps ``alignment_heads``) -> dense arrays."""
    if layout != "torch.sparse_coo" or not isinstance(data, tuple) or len(data) < 3:
        raise pickle.UnpicklingError(f"unsupported sparse tensor layout {layout!r}")
    indices, values, size = data[0], data[1], tuple(int(s) for s in data[2])
    if not isinstance(indices, np.ndarray) or not isinstance(values, np.ndarray):
        raise pickle.UnpicklingError("sparse tensor without index/value arrays")
    if indices.ndim != 2 or indices.shape[0] != len(size) or values.shape[:1] != indices.shape[1:]:
        raise pickle.UnpicklingError("sparse tensor indices do not match its size")
    if any(n < 0 for n in size) or math.prod(size + values.shape[1:]) > _MAX_SPARSE_DENSE_ELEMENTS:
        # Only small masks (alignment_heads) are stored sparse; the dense copy must stay small.
        raise pickle.UnpicklingError(f"sparse tensor of size {size} is too large to densify")
    if indices.size and (indices.min() < 0 or np.any(indices.max(axis=1) >= np.array(size))):
        raise pickle.UnpicklingError("sparse tensor index out of range")
    dense = np.zeros(size + values.shape[1:], dtype=values.dtype)
    dense[tuple(indices)] = values
    return dense


# (module, name) -> the object that global resolves to. Nothing here can run arbitrary code.
_SAFE_GLOBALS: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._utils", "_rebuild_sparse_tensor"): _rebuild_sparse_tensor,
    ("torch.serialization", "_get_layout"): _get_layout,
    ("torch", "Size"): tuple,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: "_Archive") -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a plain tensor checkpoint")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent record {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        return self._archive.storage(str(key), storage_type, int(numel))


class _Archive:
    """The zip archive: member lookup and memory-mapped access to uncompressed members."""

    def __init__(self, path: pathlib.Path, zf: zipfile.ZipFile) -> None:
        self.path = path
        self.zf = zf
        self.file_size = path.stat().st_size
        pickles = [n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        # torch writes exactly one "<archive name>/data.pkl"; pick the shallowest if nested.
        if not pickles:
            raise ModelLoadError(f"{path}: zip archive has no data.pkl: not a torch.save checkpoint")
        self.pickle_name = min(pickles, key=lambda n: n.count("/"))
        self.prefix = self.pickle_name[: -len("data.pkl")]
        self.byteorder = "little"
        if self.prefix + "byteorder" in zf.namelist():
            self.byteorder = self.read_small(self.prefix + "byteorder", 16).decode("ascii", "replace").strip()
            if self.byteorder not in ("little", "big"):
                raise ModelLoadError(f"{path}: unknown byte order {self.byteorder!r}")
        self._map: Optional[np.ndarray] = None
        self._storages: Dict[str, _Storage] = {}

    def _mapped(self) -> np.ndarray:
        if self._map is None:
            # asarray: plain ndarray views that still keep the map alive.
            self._map = np.asarray(np.memmap(self.path, dtype=np.uint8, mode="r"))
        return self._map

    def check_inflated_size(self, info: zipfile.ZipInfo, cap: Optional[int] = None) -> None:
        """Refuses a member whose declared size is absurd, before anything is inflated."""
        if cap is not None and info.file_size > cap:
            raise ModelLoadError(
                f"{self.path}: member {info.filename} declares {info.file_size} bytes, more than the "
                f"{cap} such a member can plausibly hold"
            )
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > _SMALL_MEMBER_BYTES and \
                info.file_size > _MAX_INFLATE_RATIO * max(info.compress_size, 1):
            raise ModelLoadError(
                f"{self.path}: member {info.filename} would inflate {info.compress_size} bytes to "
                f"{info.file_size} (more than {_MAX_INFLATE_RATIO}x): refusing a likely zip bomb"
            )

    def read_small(self, name: str, cap: int) -> bytes:
        """A whole (CRC-checked) member, after its declared size passed check_inflated_size."""
        info = self.zf.getinfo(name)
        self.check_inflated_size(info, cap)
        return self.zf.read(info)  # zipfile stops at the declared size and checks the CRC

    def _member_bytes(self, info: zipfile.ZipInfo, nbytes: int) -> np.ndarray:
        if info.compress_type != zipfile.ZIP_STORED:
            # torch never compresses storages; a re-zipped file still loads, just not mapped.
            self.check_inflated_size(info)
            return np.frombuffer(self.zf.read(info), dtype=np.uint8)[:nbytes]
        mapped = self._mapped()
        start = info.header_offset
        header = bytes(mapped[start : start + _LOCAL_HEADER.size])
        if len(header) < _LOCAL_HEADER.size:
            raise ModelLoadError(f"{self.path}: truncated: member {info.filename} starts past the end of the file")
        fields = _LOCAL_HEADER.unpack(header)
        if fields[0] != b"PK\x03\x04":
            raise ModelLoadError(f"{self.path}: corrupt zip archive: bad local header for {info.filename}")
        data_start = start + _LOCAL_HEADER.size + fields[9] + fields[10]
        member_end = data_start + max(nbytes, info.file_size)
        if member_end > self.file_size:
            raise ModelLoadError(
                f"{self.path}: truncated: {info.filename} needs bytes up to {member_end}, "
                f"the file has {self.file_size}"
            )
        self._check_crc(info, data_start)
        return mapped[data_start : data_start + nbytes]

    def _check_crc(self, info: zipfile.ZipInfo, data_start: int) -> None:
        """zipfile checks the CRC of what it inflates; a memory-mapped member is checked here, so
        a flipped byte in a weight is refused instead of transcribing garbage. Read with plain
        reads into one reused buffer, not through the map: the pages then stay in the page cache
        and out of this process's resident set until the loader copies each tensor."""
        crc, left = 0, info.file_size
        buf = memoryview(bytearray(min(left, _CRC_CHUNK_BYTES)))
        with open(self.path, "rb") as f:
            f.seek(data_start)
            while left:
                got = f.readinto(buf[: min(left, len(buf))])
                if not got:
                    raise ModelLoadError(f"{self.path}: truncated: member {info.filename} ends early")
                crc = zlib.crc32(buf[:got], crc)
                left -= got
        if crc != info.CRC:
            raise ModelLoadError(
                f"{self.path}: member {info.filename} is corrupt: its CRC-32 is {crc:08x}, the archive "
                f"records {info.CRC:08x} (a flipped or overwritten byte)"
            )

    def storage(self, key: str, storage_type: _StorageType, numel: int) -> _Storage:
        cached = self._storages.get(key)
        if cached is not None:
            return cached
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise ModelLoadError(f"{self.path}: missing storage member {name}") from None
        dtype = storage_type.numpy_dtype(self.byteorder)
        nbytes = numel * dtype.itemsize
        if numel < 0 or info.file_size < nbytes:
            raise ModelLoadError(
                f"{self.path}: storage {name} should hold {nbytes} bytes but has {info.file_size}"
            )
        raw = self._member_bytes(info, nbytes)
        if raw.ctypes.data % dtype.itemsize:
            raw = raw.copy()  # old writers did not align members; keep every array aligned
        storage = _Storage(storage_type, raw.view(dtype))
        self._storages[key] = storage
        return storage


def _describe_not_zip(path: pathlib.Path, head: bytes, size: int) -> str:
    if head.startswith(b"PK\x03\x04"):
        return (
            f"{path}: truncated or corrupt zip archive: it starts like one but its central directory "
            f"is missing from the end of the {size}-byte file (an interrupted download or copy?)"
        )
    if head[:1] == b"\x80":
        return (
            f"{path}: legacy (pre-1.6, non-zip) PyTorch serialization is not supported; "
            "re-save it with a recent torch.save"
        )
    return f"{path}: not a PyTorch checkpoint (not a zip archive)"


def load_torch_zip(path: pathlib.Path) -> Any:
    """Unpickle a ``torch.save`` file: tensors become numpy arrays (bfloat16 becomes float32).

    Arrays of contiguous tensors are read-only views of a memory map of the file.
    """
    path = pathlib.Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise ModelLoadError(f"{path}: file is empty (0 bytes)")
        with open(path, "rb") as f:
            head = f.read(4)
        if not zipfile.is_zipfile(path):
            raise ModelLoadError(_describe_not_zip(path, head, size))
        with zipfile.ZipFile(path) as zf:
            archive = _Archive(path, zf)
            data = archive.read_small(archive.pickle_name, _MAX_PICKLE_BYTES)  # CRC-checked
            return _RestrictedUnpickler(data, archive).load()
    except ModelLoadError:
        raise
    except RecursionError:
        raise ModelLoadError(f"{path}: corrupt PyTorch checkpoint: its pickle is nested too deeply") from None
    except MemoryError:
        raise ModelLoadError(f"{path}: corrupt PyTorch checkpoint: its pickle asks for more memory than there is") from None
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read: {exc}") from exc
    except Exception as exc:  # corrupt zip, corrupt or hostile pickle: never crash, never half-load
        raise ModelLoadError(f"{path}: corrupt PyTorch checkpoint: {type(exc).__name__}: {exc}") from exc
