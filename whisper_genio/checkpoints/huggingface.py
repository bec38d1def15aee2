"""Read Hugging Face Whisper folders (transformers' ``WhisperForConditionalGeneration`` layout).

A folder holds ``config.json`` and the weights as ``model.safetensors``, sharded safetensors with
``model.safetensors.index.json``, or ``pytorch_model.bin`` (a torch.save zip, possibly sharded
with ``pytorch_model.bin.index.json``). ``generation_config.json`` may carry ``alignment_heads``.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from ..dims import ModelDims
from ..errors import ModelLoadError
from .canonical import (
    Checkpoint,
    canonical_tensors,
    alignment_heads_from_pairs,
    as_float_tensor,
    infer_dims,
    sinusoids,
)
from .safetensors import read_safetensors
from .torch_zip import load_torch_zip

# Weight files in the order transformers itself prefers them.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# config.json key -> ModelDims field. transformers' Whisper has one d_model for both stacks.
_CONFIG_DIMS = {
    "num_mel_bins": "n_mels",
    "max_source_positions": "n_audio_ctx",
    "encoder_attention_heads": "n_audio_head",
    "encoder_layers": "n_audio_layer",
    "vocab_size": "n_vocab",
    "max_target_positions": "n_text_ctx",
    "decoder_attention_heads": "n_text_head",
    "decoder_layers": "n_text_layer",
}

_TOP_LEVEL = {
    "encoder.conv1.weight": "encoder.conv1.weight",
    "encoder.conv1.bias": "encoder.conv1.bias",
    "encoder.conv2.weight": "encoder.conv2.weight",
    "encoder.conv2.bias": "encoder.conv2.bias",
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "encoder.layer_norm.weight": "encoder.ln_post.weight",
    "encoder.layer_norm.bias": "encoder.ln_post.bias",
    "decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.layer_norm.weight": "decoder.ln.weight",
    "decoder.layer_norm.bias": "decoder.ln.bias",
}

_LAYER_MODULES = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}

_LAYER_RE = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$")

# Names that carry nothing the canonical form needs (checked or dropped on purpose).
_PROJ_OUT = "proj_out.weight"


def canonical_name(hf_name: str) -> Optional[str]:
    """The canonical name of a transformers Whisper tensor, or None if it has none."""
    name = hf_name[len("model.") :] if hf_name.startswith("model.") else hf_name
    if name in _TOP_LEVEL:
        return _TOP_LEVEL[name]
    match = _LAYER_RE.match(name)
    if not match:
        return None
    side, index, module, kind = match.groups()
    target = _LAYER_MODULES.get(module)
    if target is None or (side == "encoder" and target.startswith("cross_attn")):
        return None
    return f"{side}.blocks.{index}.{target}.{kind}"


def hf_to_canonical(hf_tensors: Mapping[str, np.ndarray], label: str) -> Dict[str, np.ndarray]:
    """Rename transformers tensors to canonical names; refuse anything not understood."""
    out: Dict[str, np.ndarray] = {}
    unknown: List[str] = []
    for hf_name, array in hf_tensors.items():
        if hf_name == _PROJ_OUT:
            continue
        name = canonical_name(hf_name)
        if name is None:
            unknown.append(hf_name)
            continue
        if name.endswith(".key.bias"):
            # openai-whisper's key projection has no bias (a key bias is cancelled by softmax),
            # transformers' neither; drop one if a converter wrote it.
            continue
        if not isinstance(array, np.ndarray):
            raise ModelLoadError(f"{label}: {hf_name} is a {type(array).__name__}, not a tensor")
        out[name] = as_float_tensor(array, hf_name, label)
    if unknown:
        shown = ", ".join(sorted(unknown)[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ModelLoadError(f"{label}: tensor name(s) not in the Whisper layout: {shown}")
    projection = hf_tensors.get(_PROJ_OUT)
    embedding = out.get("decoder.token_embedding.weight")
    if projection is not None and embedding is not None:
        # Whisper ties the output projection to the token embedding; an untied one cannot be
        # represented canonically, so refuse it rather than silently drop it.
        if projection.shape != embedding.shape or not np.array_equal(projection, embedding):
            raise ModelLoadError(f"{label}: proj_out.weight differs from the token embedding (untied output layer)")
    return out


def looks_like_hf(names: Iterable[str]) -> bool:
    """True when the names are transformers' (some name renames), not already canonical."""
    return any(canonical_name(n) not in (None, n) for n in names)


def _read_json(path: pathlib.Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: cannot parse: {exc}") from None
    except RecursionError:
        raise ModelLoadError(f"{path}: cannot parse: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return value


def find_weights(folder: pathlib.Path) -> Optional[pathlib.Path]:
    """The weights file of a Hugging Face folder, or None when it has none we can read."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def read_torch_state_dict(path: pathlib.Path) -> Dict[str, np.ndarray]:
    """A ``pytorch_model.bin``: a torch.save'd flat {name: tensor} dict."""
    state = load_torch_zip(path)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ModelLoadError(f"{path}: expected a state dict of named tensors")
    return state


def _read_weight_file(path: pathlib.Path) -> Dict[str, np.ndarray]:
    if path.name.endswith(".safetensors"):
        return read_safetensors(path)
    return read_torch_state_dict(path)


def _read_sharded(index_path: pathlib.Path) -> Tuple[Dict[str, np.ndarray], Tuple[pathlib.Path, ...]]:
    index = _read_json(index_path)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelLoadError(f"{index_path}: no valid weight_map")
    for name in set(weight_map.values()):
        if pathlib.PurePath(name).name != name or name in ("", ".", "..") or "\\" in name:
            # Shards sit beside their index; a path could make us read any file on the machine.
            raise ModelLoadError(f"{index_path}: shard name {name!r:.80} is not a file name in {index_path.parent}")
    shards = [index_path.parent / name for name in sorted(set(weight_map.values()))]
    tensors: Dict[str, np.ndarray] = {}
    for shard in shards:
        if not shard.is_file():
            raise ModelLoadError(f"{index_path}: shard {shard.name} is missing")
        tensors.update(_read_weight_file(shard))
    absent = [name for name in weight_map if name not in tensors]
    if absent:
        raise ModelLoadError(f"{index_path}: tensor {absent[0]} is listed but not in shard {weight_map[absent[0]]}")
    return tensors, tuple(shards)


def _dims_from_config(config: Mapping[str, object], tensors: Mapping[str, np.ndarray], label: str, config_path: pathlib.Path) -> ModelDims:
    values = {field: config.get(key) for key, field in _CONFIG_DIMS.items()}
    d_model = config.get("d_model")
    if d_model is not None and all(v is not None for v in values.values()):
        try:
            return ModelDims(n_audio_state=d_model, n_text_state=d_model, **values)  # type: ignore[arg-type]
        except ModelLoadError as exc:
            raise ModelLoadError(f"{config_path}: {exc}") from None
    # An incomplete config: read the rest off the tensor shapes (heads from config if there).
    return infer_dims(
        tensors,
        label,
        n_audio_head=values["n_audio_head"],  # type: ignore[arg-type]
        n_text_head=values["n_text_head"],  # type: ignore[arg-type]
        n_audio_ctx=values["n_audio_ctx"],  # type: ignore[arg-type]
    )


def load_huggingface(folder: pathlib.Path, weights: Optional[pathlib.Path] = None) -> Checkpoint:
    """Load a Hugging Face Whisper folder (or one weights file whose folder holds the config)."""
    folder = pathlib.Path(folder)
    weights = pathlib.Path(weights) if weights is not None else find_weights(folder)
    if weights is None:
        raise ModelLoadError(f"{folder}: no {', '.join(WEIGHT_FILES)} in this folder")
    config_path = folder / "config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    model_type = config.get("model_type")
    if model_type is not None and model_type != "whisper":
        raise ModelLoadError(f"{config_path}: model_type is {model_type!r}, not 'whisper'")

    if weights.name.endswith(".index.json"):
        hf_tensors, files = _read_sharded(weights)
    else:
        hf_tensors, files = _read_weight_file(weights), (weights,)
    label = str(weights)
    tensors = hf_to_canonical(hf_tensors, label)
    dims = _dims_from_config(config, tensors, label, config_path)
    if "encoder.positional_embedding" not in tensors and "encoder.conv1.weight" in tensors:
        tensors["encoder.positional_embedding"] = sinusoids(dims.n_audio_ctx, dims.n_audio_state)
    tensors = canonical_tensors(dims, tensors, label, dims_source=config_path.name if config else "tensor shapes")

    heads = None
    generation_path = folder / "generation_config.json"
    if generation_path.is_file():
        pairs = _read_json(generation_path).get("alignment_heads")
        if pairs is not None:
            heads = alignment_heads_from_pairs(pairs, dims, generation_path)
    return Checkpoint(
        dims=dims,
        tensors=tensors,
        format="huggingface",
        path=weights,
        tokenizer_path=None,
        alignment_heads=heads,
        files=files,
    )
