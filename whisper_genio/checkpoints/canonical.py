"""The canonical checkpoint form every reader produces, and the checks that guard it.

Canonical tensor names are openai-whisper's ``Whisper.state_dict()`` names, so a checkpoint from
any format can be compared (or loaded) name for name against the reference implementation.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from ..dims import KNOWN_SIZES, ModelDims
from ..errors import ModelLoadError

Shape = Tuple[int, ...]
PathLike = Union[str, pathlib.Path]

# Every format names its output ``format`` with one of these.
FORMATS = ("openai-pt", "huggingface", "ctranslate2")


@dataclass
class Checkpoint:
    """Whisper weights in one canonical form, whatever file format they came from."""

    dims: ModelDims
    # Canonical openai-whisper names -> float32/float16 C-contiguous arrays (possibly read-only,
    # unaligned views of a memory-mapped file: copy before writing into them or handing them to
    # a library that needs aligned memory).
    tensors: Dict[str, np.ndarray]
    format: str
    # The main weights file (first part / index file when the weights span several files).
    path: pathlib.Path
    # A tokenizer.json or *.tiktoken usable with this model, or None when none was found.
    tokenizer_path: Optional[pathlib.Path] = None
    # bool [n_text_layer, n_text_head], when the checkpoint carries it.
    alignment_heads: Optional[np.ndarray] = None
    # Every file the weights were read from (parts, shards), for diagnostics.
    files: Tuple[pathlib.Path, ...] = ()


def expected_shapes(dims: ModelDims) -> Dict[str, Shape]:
    """Every canonical tensor name with its exact shape, in openai-whisper's state_dict order
    (the native checkpoint schema, which the native loaders check each tensor against too)."""
    return {name: tuple(shape) for name, shape in _core.checkpoint_schema(dims.to_dict())}


def _name_list(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def validate_tensors(
    dims: ModelDims,
    tensors: Mapping[str, np.ndarray],
    path: PathLike,
    *,
    dims_source: Optional[str] = None,
) -> None:
    """Raise ModelLoadError unless ``tensors`` is exactly the canonical set for ``dims``.

    Exactly: every name present, no extra name, every shape equal, dtype float32/float16 and
    C-contiguous. ``dims_source`` (e.g. "config.json") is named in shape errors, because a shape
    mismatch usually means the declared dimensions, not the weights, are wrong.
    """
    expected = expected_shapes(dims)
    where = f" (model dimensions from {dims_source})" if dims_source else ""
    check_head_counts(dims, path, where)
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise ModelLoadError(f"{path}: missing tensor(s) {_name_list(missing)}{where}")
    unexpected = sorted(name for name in tensors if name not in expected)
    if unexpected:
        raise ModelLoadError(
            f"{path}: unexpected tensor(s) {_name_list(unexpected)} for a model with "
            f"{dims.n_audio_layer} encoder and {dims.n_text_layer} decoder layers{where}"
        )
    for name, shape in expected.items():
        array = tensors[name]
        if not isinstance(array, np.ndarray):
            raise ModelLoadError(f"{path}: tensor {name} is a {type(array).__name__}, not an array")
        if tuple(array.shape) != shape:
            raise ModelLoadError(
                f"{path}: tensor {name} has shape {tuple(array.shape)}, expected {shape} "
                f"for dimensions {dims.to_dict()}{where}"
            )
        if array.dtype not in (np.float32, np.float16):
            raise ModelLoadError(f"{path}: tensor {name} has dtype {array.dtype}, expected float32 or float16")
        if not array.flags.c_contiguous:
            raise ModelLoadError(f"{path}: tensor {name} is not C-contiguous")


def check_head_counts(dims: ModelDims, path: PathLike, where: str = "") -> None:
    """Head counts show in no tensor shape, so a wrong one in a config loads and transcribes
    garbage. The widths must split evenly into heads (ModelDims checks that); beyond it, when every
    shape-derived dimension is that of a released Whisper size, its head counts are the only ones
    its weights were trained with, so any other count is refused."""
    shape_key = (dims.n_mels, dims.n_audio_state, dims.n_audio_layer, dims.n_vocab, dims.n_text_state,
                 dims.n_text_layer)
    for name, size in KNOWN_SIZES.items():
        if (size[0], size[1], size[3], size[4], size[5], size[7]) != shape_key:
            continue
        if (size[2], size[6]) == (dims.n_audio_head, dims.n_text_head):
            return
        raise ModelLoadError(
            f"{path}: head counts n_audio_head={dims.n_audio_head}, n_text_head={dims.n_text_head} do not "
            f"match the weights: their shapes are those of Whisper {name}, which has {size[2]} and "
            f"{size[6]} heads{where}"
        )


def canonical_tensors(
    dims: ModelDims,
    tensors: Mapping[str, np.ndarray],
    path: PathLike,
    *,
    dims_source: Optional[str] = None,
) -> Dict[str, np.ndarray]:
    """validate_tensors, then the same tensors in openai-whisper's state_dict order."""
    validate_tensors(dims, tensors, path, dims_source=dims_source)
    return {name: tensors[name] for name in expected_shapes(dims)}


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """openai-whisper's ``sinusoids(length, channels)`` as float32.

    Only needed for formats that omit the encoder's (fixed) positional embedding. openai-whisper
    does every step in float32 torch ops; the products here are the same float32 products, while
    exp/sin/cos are evaluated in float64 and rounded (torch's float32 libm and numpy's disagree in
    the last bit, so neither is "the" answer; this stays within an ulp of both).
    """
    if channels % 2:
        raise ModelLoadError(f"sinusoidal embedding needs an even width, got {channels}")
    half = channels // 2
    # torch casts the float64 scalar to float32 before multiplying the integer range by it.
    increment = np.float32(np.log(max_timescale) / (half - 1))
    exponent = -increment * np.arange(half, dtype=np.float32)
    inv_timescales = np.exp(exponent.astype(np.float64)).astype(np.float32)
    scaled_time = (np.arange(length, dtype=np.float32)[:, None] * inv_timescales[None, :]).astype(np.float64)
    table = np.concatenate([np.sin(scaled_time), np.cos(scaled_time)], axis=1)
    return np.ascontiguousarray(table, dtype=np.float32)


def bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32: bfloat16 is the top half of a float32."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def as_float_tensor(array: np.ndarray, name: str, path: PathLike) -> np.ndarray:
    """Float16 stays, float32 stays, float64 narrows to float32; anything else is an error."""
    if array.dtype == np.float16 or array.dtype == np.float32:
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    raise ModelLoadError(f"{path}: tensor {name} has dtype {array.dtype}; weights must be floating point")


_BLOCK_RE = re.compile(r"^(encoder|decoder)\.blocks\.(\d+)\.")


def _count_blocks(tensors: Mapping[str, np.ndarray], side: str) -> int:
    indices = {int(m.group(2)) for m in map(_BLOCK_RE.match, tensors) if m and m.group(1) == side}
    return max(indices) + 1 if indices else 0


def _require(tensors: Mapping[str, np.ndarray], name: str, rank: int, path: PathLike) -> Shape:
    if name not in tensors:
        raise ModelLoadError(f"{path}: missing tensor {name}")
    shape = tuple(tensors[name].shape)
    if len(shape) != rank:
        raise ModelLoadError(f"{path}: tensor {name} has shape {shape}, expected rank {rank}")
    return shape


def infer_dims(
    tensors: Mapping[str, np.ndarray],
    path: PathLike,
    *,
    n_audio_head: Optional[int] = None,
    n_text_head: Optional[int] = None,
    n_audio_ctx: Optional[int] = None,
) -> ModelDims:
    """Model dimensions read off canonical tensor shapes.

    Head counts do not show in any shape: pass them when the format stores them, otherwise they
    are taken from the released size whose other dimensions match. ``n_audio_ctx`` is needed only
    when the encoder positional embedding is absent (it is then computed, not read).
    """
    d_audio, n_mels, _ = _require(tensors, "encoder.conv1.weight", 3, path)
    if "encoder.positional_embedding" in tensors:
        n_audio_ctx = _require(tensors, "encoder.positional_embedding", 2, path)[0]
    elif n_audio_ctx is None:
        n_audio_ctx = 1500
    n_vocab, d_text = _require(tensors, "decoder.token_embedding.weight", 2, path)
    n_text_ctx = _require(tensors, "decoder.positional_embedding", 2, path)[0]
    n_audio_layer = _count_blocks(tensors, "encoder")
    n_text_layer = _count_blocks(tensors, "decoder")
    if n_audio_head is None or n_text_head is None:
        shape_key = (n_mels, d_audio, n_audio_layer, n_vocab, d_text, n_text_layer)
        heads = {
            (size[2], size[6])
            for size in KNOWN_SIZES.values()
            if (size[0], size[1], size[3], size[4], size[5], size[7]) == shape_key
        }
        if len(heads) != 1:
            raise ModelLoadError(
                f"{path}: the attention head counts are not stored and the shapes "
                f"(n_mels={n_mels}, width={d_audio}/{d_text}, layers={n_audio_layer}/{n_text_layer}, "
                f"vocab={n_vocab}) match no released Whisper size; pass a checkpoint with its config"
            )
        known_audio_head, known_text_head = heads.pop()
        n_audio_head = known_audio_head if n_audio_head is None else n_audio_head
        n_text_head = known_text_head if n_text_head is None else n_text_head
    try:
        return ModelDims(
            n_mels=n_mels,
            n_audio_ctx=n_audio_ctx,
            n_audio_state=d_audio,
            n_audio_head=n_audio_head,
            n_audio_layer=n_audio_layer,
            n_vocab=n_vocab,
            n_text_ctx=n_text_ctx,
            n_text_state=d_text,
            n_text_head=n_text_head,
            n_text_layer=n_text_layer,
        )
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path}: {exc}") from None


def dims_from_mapping(values: Mapping[str, object], path: PathLike) -> ModelDims:
    """ModelDims from an openai-style ``dims`` dict, with errors that name the file."""
    if not isinstance(values, Mapping):
        raise ModelLoadError(f"{path}: 'dims' is a {type(values).__name__}, expected a dict")
    fields = list(ModelDims.__dataclass_fields__)
    missing = [f for f in fields if f not in values]
    if missing:
        raise ModelLoadError(f"{path}: 'dims' lacks {', '.join(missing)}")
    extra = sorted(str(k) for k in values if k not in fields)
    if extra:
        raise ModelLoadError(f"{path}: 'dims' has unknown field(s) {', '.join(extra)}")
    try:
        return ModelDims(**{f: values[f] for f in fields})  # type: ignore[arg-type]
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path}: {exc}") from None


def alignment_heads_from_pairs(pairs: object, dims: ModelDims, path: PathLike) -> np.ndarray:
    """[[layer, head], ...] (Hugging Face / CTranslate2 config) -> bool [n_text_layer, n_text_head]."""
    mask = np.zeros((dims.n_text_layer, dims.n_text_head), dtype=bool)
    if not isinstance(pairs, (list, tuple)):
        raise ModelLoadError(f"{path}: alignment_heads must be a list of [layer, head] pairs")
    for pair in pairs:
        ok = (
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        )
        if not ok or not (0 <= pair[0] < dims.n_text_layer and 0 <= pair[1] < dims.n_text_head):
            raise ModelLoadError(
                f"{path}: alignment head {pair!r} is not a [layer, head] pair within "
                f"{dims.n_text_layer} decoder layers x {dims.n_text_head} heads"
            )
        mask[pair[0], pair[1]] = True
    return mask


def alignment_heads_from_array(array: np.ndarray, dims: ModelDims, path: PathLike) -> np.ndarray:
    """A stored alignment-head mask (any numeric/bool dtype) -> bool [n_text_layer, n_text_head]."""
    expected = (dims.n_text_layer, dims.n_text_head)
    if not isinstance(array, np.ndarray) or tuple(array.shape) != expected:
        found = tuple(array.shape) if isinstance(array, np.ndarray) else type(array).__name__
        raise ModelLoadError(f"{path}: alignment_heads has shape {found}, expected {expected}")
    return np.ascontiguousarray(array != 0)
