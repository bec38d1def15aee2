"""Read CTranslate2 Whisper models (``model.bin`` + ``config.json``) without ctranslate2.

``model.bin`` layout (little-endian, no padding; strings are uint16 length incl. NUL + bytes):
uint32 binary_version; [v>=2] string spec name, uint32 spec revision; uint32 num_variables; per
variable: string name, uint8 rank, uint32 dims[rank], then [v>=4] uint8 dtype id + uint32 byte
count or [v<4] uint8 item size + uint32 element count, then the raw row-major bytes;
[v>=3] uint32 num_aliases and (alias, target) string pairs.

The file may come as several parts read as one concatenation (the ``base`` model is served that
way from two PyPI packages without ever writing the whole file).
"""

from __future__ import annotations

import bisect
import json
import math
import pathlib
import re
import struct
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelLoadError
from .canonical import (
    Checkpoint,
    canonical_tensors,
    alignment_heads_from_pairs,
    bfloat16_to_float32,
    infer_dims,
    sinusoids,
)

_MAX_BINARY_VERSION = 6
# CTranslate2's DataType enum order; bfloat16 is read as uint16 and widened.
_DTYPE_IDS: Dict[int, str] = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "<u2"}
_BFLOAT16_ID = 5
# Pre-v4 files stored an item size instead of a dtype; CTranslate2 itself maps it like this.
_LEGACY_ITEM_SIZES: Dict[int, int] = {4: 0, 2: 2, 1: 1}


class _Truncated(Exception):
    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


class _VirtualFile:
    """Part files memory-mapped and addressed as one byte string."""

    def __init__(self, parts: Sequence[pathlib.Path]) -> None:
        self.parts = list(parts)
        self.maps: List[np.ndarray] = []
        self.starts: List[int] = []
        self.size = 0
        self.files: List[pathlib.Path] = []
        for part in self.parts:
            part_size = part.stat().st_size
            if part_size == 0:
                continue
            self.files.append(part)
            self.starts.append(self.size)
            self.maps.append(np.asarray(np.memmap(part, dtype=np.uint8, mode="r")))
            self.size += part_size

    def read_header(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) read from the files, not through the maps: a fault on a
        mapped header would make up to a megabyte of file pages resident per record."""
        if offset + length > self.size:
            raise _Truncated(offset + length)
        out = b""
        index = bisect.bisect_right(self.starts, offset) - 1
        local = offset - self.starts[index]
        while len(out) < length:
            with open(self.files[index], "rb", buffering=0) as f:
                f.seek(local)
                out += f.read(length - len(out))
            index, local = index + 1, 0
        return out

    def read(self, offset: int, length: int) -> np.ndarray:
        """Bytes [offset, offset+length): a view inside one part, a copy across parts."""
        if offset + length > self.size:
            raise _Truncated(offset + length)
        if length == 0:
            return np.zeros(0, dtype=np.uint8)
        index = bisect.bisect_right(self.starts, offset) - 1
        local = offset - self.starts[index]
        chunk = self.maps[index]
        if local + length <= chunk.size:
            return chunk[local : local + length]
        pieces = []
        while length > 0:  # a variable straddling part boundaries is stitched together
            chunk = self.maps[index]
            take = min(length, chunk.size - local)
            pieces.append(chunk[local : local + take])
            length -= take
            index, local = index + 1, 0
        return np.concatenate(pieces)


class _Cursor:
    def __init__(self, data: _VirtualFile) -> None:
        self.data = data
        self.pos = 0

    def take(self, length: int) -> np.ndarray:
        out = self.data.read(self.pos, length)
        self.pos += length
        return out

    def header(self, length: int) -> bytes:
        out = self.data.read_header(self.pos, length)
        self.pos += length
        return out

    def unpack(self, fmt: str) -> Tuple[int, ...]:
        return struct.unpack(fmt, self.header(struct.calcsize(fmt)))

    def string(self) -> str:
        (length,) = self.unpack("<H")
        raw = self.header(length)
        if not raw or raw[-1] != 0:
            raise ValueError(f"malformed string at byte {self.pos - length}")
        return raw[:-1].decode("utf-8")


def _parse(data: _VirtualFile, label: str) -> Tuple[str, int, Dict[str, np.ndarray]]:
    """(spec name, revision, name -> array) with aliases resolved to their targets."""
    cursor = _Cursor(data)
    try:
        (version,) = cursor.unpack("<I")
        if not 1 <= version <= _MAX_BINARY_VERSION:
            raise ModelLoadError(
                f"{label}: unsupported CTranslate2 binary version {version} (this reader knows 1-{_MAX_BINARY_VERSION})"
            )
        spec, revision = "", 1
        if version >= 2:
            spec = cursor.string()
            (revision,) = cursor.unpack("<I")
        (count,) = cursor.unpack("<I")
        variables: Dict[str, np.ndarray] = {}
        for _ in range(count):
            name = cursor.string()
            (rank,) = cursor.unpack("<B")
            shape = cursor.unpack(f"<{rank}I")
            if version >= 4:
                dtype_id, nbytes = cursor.unpack("<BI")
                if dtype_id not in _DTYPE_IDS:
                    raise ModelLoadError(f"{label}: variable {name} has unknown dtype id {dtype_id}")
            else:
                item_size, numel = cursor.unpack("<BI")
                if item_size not in _LEGACY_ITEM_SIZES:
                    raise ModelLoadError(f"{label}: variable {name} has unknown item size {item_size}")
                dtype_id, nbytes = _LEGACY_ITEM_SIZES[item_size], numel * item_size
            dtype = np.dtype(_DTYPE_IDS[dtype_id])
            expected = math.prod(shape) * dtype.itemsize  # Python ints: no int64 wrap-around
            if nbytes != expected:
                raise ModelLoadError(
                    f"{label}: variable {name} of shape {shape} declares {nbytes} bytes, expected {expected}"
                )
            # Records are unpadded, so many arrays are unaligned views of the mapped file: numpy and
            # the native loader read them as they are, and copying would cost resident memory.
            array = cursor.take(nbytes).view(dtype).reshape(shape)
            if dtype_id == _BFLOAT16_ID:
                array = bfloat16_to_float32(array)
            variables[name] = array
        if version >= 3:
            (num_aliases,) = cursor.unpack("<I")
            for _ in range(num_aliases):
                alias, target = cursor.string(), cursor.string()
                if target not in variables:
                    raise ModelLoadError(f"{label}: alias {alias} points to unknown variable {target}")
                variables[alias] = variables[target]
        if cursor.pos != data.size:
            raise ModelLoadError(f"{label}: {data.size - cursor.pos} unexpected bytes after the last record (corrupt file?)")
        return spec, revision, variables
    except ModelLoadError:
        raise
    except _Truncated as exc:
        raise ModelLoadError(
            f"{label}: truncated: a record needs bytes up to {exc.needed}, the file has {data.size}"
        ) from None
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise ModelLoadError(f"{label}: corrupt CTranslate2 model: {exc}") from None


class _Converter:
    """CTranslate2 Whisper variable names -> canonical openai-whisper names."""

    def __init__(self, variables: Dict[str, np.ndarray], label: str) -> None:
        self.variables = variables
        self.label = label
        self.used: set = set()
        self.out: Dict[str, np.ndarray] = {}

    def get(self, name: str) -> np.ndarray:
        if name not in self.variables:
            raise ModelLoadError(f"{self.label}: missing variable {name}")
        self.used.add(name)
        return self.variables[name]

    def weight(self, scope: str) -> np.ndarray:
        """A linear/conv weight, dequantized to float32 if stored as int8/int16."""
        weight = self.get(f"{scope}/weight")
        if f"{scope}/weight_zero" in self.variables:
            raise ModelLoadError(f"{self.label}: {scope} uses zero-point (AWQ) quantization, which is not supported")
        scale_name = f"{scope}/weight_scale"
        if weight.dtype.kind in "iu":
            if scale_name not in self.variables:
                raise ModelLoadError(f"{self.label}: quantized {scope}/weight has no weight_scale")
            scale = self.get(scale_name).astype(np.float32)
            # CTranslate2 quantizes as round(w * scale), with one scale per output row (int8) or
            # one for the whole matrix (int16); dividing undoes it up to the rounding.
            if scale.ndim == 1 and scale.shape[0] != weight.shape[0]:
                raise ModelLoadError(f"{self.label}: {scale_name} has {scale.shape[0]} rows, weight has {weight.shape[0]}")
            scale = scale.reshape((-1,) + (1,) * (weight.ndim - 1)) if scale.ndim == 1 else scale
            return np.ascontiguousarray(weight.astype(np.float32) / scale)
        if scale_name in self.variables:
            self.used.add(scale_name)  # a float weight keeps no meaningful scale
        return weight

    def bias(self, scope: str) -> Optional[np.ndarray]:
        return self.get(f"{scope}/bias") if f"{scope}/bias" in self.variables else None

    def put(self, name: str, array: np.ndarray) -> None:
        if array.dtype.kind != "f":
            raise ModelLoadError(f"{self.label}: {name} has non-float dtype {array.dtype}")
        self.out[name] = np.ascontiguousarray(array)

    def linear(self, src: str, dst: str, has_bias: bool = True) -> None:
        self.put(f"{dst}.weight", self.weight(src))
        bias = self.bias(src)
        if has_bias:
            if bias is None:
                raise ModelLoadError(f"{self.label}: missing variable {src}/bias")
            self.put(f"{dst}.bias", bias)

    def layer_norm(self, src: str, dst: str) -> None:
        self.put(f"{dst}.weight", self.get(f"{src}/gamma"))
        self.put(f"{dst}.bias", self.get(f"{src}/beta"))

    def split_linear(self, src: str, dsts: Sequence[str]) -> None:
        """A fused projection (rows stacked q|k|v or k|v) -> one canonical linear per part."""
        weight = self.weight(src)
        bias = self.bias(src)
        parts = len(dsts)
        if weight.ndim != 2 or weight.shape[0] % parts or (bias is not None and bias.shape != (weight.shape[0],)):
            raise ModelLoadError(
                f"{self.label}: fused {src} has weight {weight.shape} / bias "
                f"{None if bias is None else bias.shape}, not {parts} stacked square projections"
            )
        rows = weight.shape[0] // parts
        for i, dst in enumerate(dsts):
            self.put(f"{dst}.weight", weight[i * rows : (i + 1) * rows])
            # The key projection has no bias in openai-whisper: CTranslate2 fills zeros there and a
            # key bias cannot change attention anyway (softmax cancels it), so it is dropped.
            if not dst.endswith(".key"):
                if bias is None:
                    raise ModelLoadError(f"{self.label}: missing variable {src}/bias")
                self.put(f"{dst}.bias", bias[i * rows : (i + 1) * rows])

    def block(self, src: str, dst: str, cross: bool) -> None:
        self.layer_norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        self.split_linear(f"{src}/self_attention/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
        self.linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        if cross:
            self.layer_norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
            self.linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
            self.split_linear(f"{src}/attention/linear_1", [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"])
            self.linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        self.layer_norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        self.linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        self.linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")


def _count_layers(variables: Dict[str, np.ndarray], side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    indices = {int(m.group(1)) for m in map(pattern.match, variables) if m}
    return max(indices) + 1 if indices else 0


def _scalar_int(variables: Dict[str, np.ndarray], name: str) -> Optional[int]:
    value = variables.get(name)
    if value is None or value.size != 1 or value.dtype.kind not in "iu":
        return None
    return int(value.reshape(()))


def _convert(variables: Dict[str, np.ndarray], label: str) -> Tuple[Dict[str, np.ndarray], int, int]:
    conv = _Converter(variables, label)
    conv.linear("encoder/conv1", "encoder.conv1")  # conv weights dequantize like linear ones
    conv.linear("encoder/conv2", "encoder.conv2")
    if "encoder/position_encodings/encodings" in variables:
        conv.put("encoder.positional_embedding", conv.get("encoder/position_encodings/encodings"))
    for i in range(_count_layers(variables, "encoder")):
        conv.block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    conv.layer_norm("encoder/layer_norm", "encoder.ln_post")
    embeddings = conv.weight("decoder/embeddings")
    conv.put("decoder.token_embedding.weight", embeddings)
    conv.put("decoder.positional_embedding", conv.get("decoder/position_encodings/encodings"))
    for i in range(_count_layers(variables, "decoder")):
        conv.block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    conv.layer_norm("decoder/layer_norm", "decoder.ln")

    # Whisper ties the output projection to the token embedding; CTranslate2 stores it as an alias
    # (the same array) or, from other converters, as an equal copy. Anything else is not Whisper.
    if "decoder/projection/weight" in variables:
        projection = conv.weight("decoder/projection")
        if projection is not variables.get("decoder/embeddings/weight") and not np.array_equal(projection, embeddings):
            raise ModelLoadError(f"{label}: decoder/projection differs from the token embedding (untied output layer)")
    if "decoder/projection/bias" in variables:
        if np.any(conv.get("decoder/projection/bias")):
            raise ModelLoadError(f"{label}: decoder/projection has a non-zero bias, which Whisper does not have")

    # Scalars (num_heads, activation, flags...) describe the architecture; any other array left
    # over would carry weights this reader does not understand, so refuse rather than ignore.
    leftovers = sorted(n for n, v in variables.items() if n not in conv.used and v.ndim > 0)
    if leftovers:
        shown = ", ".join(leftovers[:5]) + (" ..." if len(leftovers) > 5 else "")
        raise ModelLoadError(f"{label}: unknown variable(s) {shown}")
    audio_heads = _scalar_int(variables, "encoder/num_heads")
    text_heads = _scalar_int(variables, "decoder/num_heads")
    return conv.out, audio_heads or 0, text_heads or 0


def _read_config(config_path: Optional[pathlib.Path]) -> dict:
    if config_path is None or not config_path.is_file():
        return {}
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{config_path}: cannot parse: {exc}") from None
    except RecursionError:
        raise ModelLoadError(f"{config_path}: cannot parse: JSON nested too deeply") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_path}: expected a JSON object")
    return config


def load_ctranslate2(parts: Sequence[pathlib.Path], config_path: Optional[pathlib.Path] = None) -> Checkpoint:
    """Load a CTranslate2 Whisper model from ``model.bin`` (or its parts, in order).

    CTranslate2's config.json holds no dimensions: they are read off the tensor shapes and the
    stored ``num_heads`` scalars, and then checked against every tensor.
    """
    parts = [pathlib.Path(p) for p in parts]
    if not parts:
        raise ModelLoadError("no CTranslate2 model.bin given")
    label = str(parts[0]) if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} more part(s))"
    try:
        data = _VirtualFile(parts)
    except OSError as exc:
        raise ModelLoadError(f"{label}: cannot read: {exc}") from None
    if data.size == 0:
        raise ModelLoadError(f"{label}: file is empty (0 bytes)")
    spec, _revision, variables = _parse(data, label)
    if spec and spec != "WhisperSpec":
        raise ModelLoadError(f"{label}: this is a CTranslate2 {spec} model, not a Whisper model")
    tensors, audio_heads, text_heads = _convert(variables, label)
    dims = infer_dims(tensors, label, n_audio_head=audio_heads or None, n_text_head=text_heads or None)
    if "encoder.positional_embedding" not in tensors:
        tensors["encoder.positional_embedding"] = sinusoids(dims.n_audio_ctx, dims.n_audio_state)
    tensors = canonical_tensors(dims, tensors, label, dims_source="tensor shapes and num_heads")

    config = _read_config(config_path)
    heads = None
    if config.get("alignment_heads") is not None:
        heads = alignment_heads_from_pairs(config["alignment_heads"], dims, config_path)
    return Checkpoint(
        dims=dims,
        tensors=tensors,
        format="ctranslate2",
        path=parts[0],
        tokenizer_path=None,
        alignment_heads=heads,
        files=tuple(parts),
    )
