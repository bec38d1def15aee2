"""Read openai-whisper ``.pt`` checkpoints: ``{"dims": {...}, "model_state_dict": {...}}``.

A bare state dict saved with torch.save is accepted too (dimensions then come from the shapes),
and a torch file holding transformers names is handed to the Hugging Face reader.
"""

from __future__ import annotations

import pathlib
from typing import Dict, Optional

import numpy as np

from ..errors import ModelLoadError
from .canonical import (
    Checkpoint,
    canonical_tensors,
    alignment_heads_from_array,
    as_float_tensor,
    dims_from_mapping,
    infer_dims,
    sinusoids,
)
from .huggingface import load_huggingface, looks_like_hf
from .torch_zip import load_torch_zip


def _state_dict(value: object, path: pathlib.Path) -> Dict[str, object]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ModelLoadError(f"{path}: model_state_dict is not a dict of named tensors")
    return dict(value)


def load_torch_file(path: pathlib.Path) -> Checkpoint:
    """Load any torch.save'd Whisper checkpoint: openai layout, bare state dict or transformers."""
    path = pathlib.Path(path)
    obj = load_torch_zip(path)
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{path}: holds a {type(obj).__name__}, not a Whisper checkpoint dict")

    if "model_state_dict" in obj:
        state = _state_dict(obj["model_state_dict"], path)
        dims_source = "its 'dims'"
    elif all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        if looks_like_hf(obj):
            return load_huggingface(path.parent, weights=path)
        state, dims_source = dict(obj), "tensor shapes"
    else:
        raise ModelLoadError(f"{path}: neither an openai-whisper checkpoint (no 'model_state_dict') nor a state dict")

    # alignment_heads is a non-persistent buffer in openai-whisper, but checkpoints that were
    # saved with it (top level or inside the state dict) are accepted.
    state_heads = state.pop("alignment_heads", None)
    raw_heads: Optional[object] = obj.get("alignment_heads", state_heads)
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, np.ndarray):
            raise ModelLoadError(f"{path}: state dict entry {name} is a {type(value).__name__}, not a tensor")
        tensors[name] = as_float_tensor(value, name, path)

    if "dims" in obj:
        dims = dims_from_mapping(obj["dims"], path)
    else:
        dims = infer_dims(tensors, path)
    if "encoder.positional_embedding" not in tensors:
        tensors["encoder.positional_embedding"] = sinusoids(dims.n_audio_ctx, dims.n_audio_state)
    tensors = canonical_tensors(dims, tensors, path, dims_source=dims_source)

    heads = None
    if raw_heads is not None:
        if not isinstance(raw_heads, np.ndarray):
            raise ModelLoadError(f"{path}: alignment_heads is a {type(raw_heads).__name__}, not a tensor")
        heads = alignment_heads_from_array(raw_heads, dims, path)
    return Checkpoint(
        dims=dims,
        tensors=tensors,
        format="openai-pt",
        path=path,
        tokenizer_path=None,
        alignment_heads=heads,
        files=(path,),
    )
