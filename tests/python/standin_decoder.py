"""STAND-IN decoder subgraph files (NOT DLAs, NOT MediaTek's format) for the stand-in Neuron
runtime (tests/cpp/standin/neuron_standin.cc, model format version 2): "dense" files hold one
linear op's weights, "decoder_layer_step" files one whole decoder layer, both with declared I/O
dtypes and quantization. Written from a checkpoint's weights so the stand-in computes what the
real model computes, and listed in a bundle manifest's ``decoder.subgraphs`` like real DLAs."""

from __future__ import annotations

import pathlib
import struct
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from standin import DTYPES

MAGIC = b"WGSTNDIN"
KIND_DENSE, KIND_LAYER_STEP = 2, 3
LINEAR_OPS = ("self_qkv", "self_out", "cross_q", "cross_out", "fc1", "fc2")
# Columns per vocabulary chunk, as whisper_genio.tools.export_decoder uses.
VOCAB_CHUNK = 8192


def _tensor_record(t: dict[str, Any], device: Optional["Device"] = None) -> bytes:
    """A tensor's record; `device` gives its padded row (and float16-native mode) in the stand-in."""
    elems = int(np.prod(t["shape"]))
    layout = 0
    if device is not None:
        layout = device.padded_cols(t["shape"][-1]) | (1 << 31 if device.fp16_native else 0)
    return struct.pack("<IifIQ", DTYPES[t.get("dtype", "float32")], int(t.get("zero_point") or 0),
                       float(t.get("scale") or 1.0), layout, elems)


class Device:
    """The stand-in's device layout for subgraph tensors: rows padded to a multiple of `align`
    elements (0: none), float16 native I/O (`fp16_native`: every tensor float16, the runtime
    reporting float32 logical sizes); `record` writes the padded shape into the manifest too
    (otherwise it is read from the runtime only). The KV cache inputs of a layer step are left
    unpadded unless `pad_cache`."""

    def __init__(self, align: int = 0, fp16_native: bool = False, record: bool = False, pad_cache: bool = False):
        self.align, self.fp16_native, self.record, self.pad_cache = align, fp16_native, record, pad_cache

    def padded_cols(self, cols: int) -> int:
        if not self.align or cols % self.align == 0:
            return 0
        return -(-cols // self.align) * self.align

    def tensor(self, t: dict[str, Any], pad: bool = True) -> tuple[dict[str, Any], Optional["Device"]]:
        """The manifest tensor and the device layout to write for it."""
        t = dict(t)
        dev = self if pad else Device(0, self.fp16_native)
        if self.fp16_native:
            t["dtype"] = "float16"
        p = dev.padded_cols(t["shape"][-1])
        if self.record and p:
            t["padded_shape"] = list(t["shape"][:-1]) + [p]
        return t, dev


def _matrix(w: np.ndarray, b: Optional[np.ndarray], weights: str) -> bytes:
    w = np.asarray(w, np.float32)
    bias = np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b, np.float32)
    if weights == "float32":
        return w.tobytes() + bias.tobytes()
    scale = np.maximum(np.abs(w).max(axis=1), 1e-12) / 127.0  # symmetric per output row
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return q.tobytes() + scale.astype(np.float32).tobytes() + bias.tobytes()


def _wdtype(weights: str) -> int:
    return {"float32": 0, "int8": 2}[weights]


def linear_weights(tensors: dict[str, np.ndarray], layer: int, op: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """W [out, in] and bias of one decoder op, from openai-whisper's tensor names."""
    p = f"decoder.blocks.{layer}."
    t = lambda n: np.asarray(tensors[p + n], np.float32)  # noqa: E731
    if op == "self_qkv":
        d = t("attn.query.weight").shape[0]
        w = np.concatenate([t("attn.query.weight"), t("attn.key.weight"), t("attn.value.weight")])
        b = np.concatenate([t("attn.query.bias"), np.zeros(d, np.float32), t("attn.value.bias")])
        return w, b
    name = {"self_out": "attn.out", "cross_q": "cross_attn.query", "cross_out": "cross_attn.out",
            "fc1": "mlp.0", "fc2": "mlp.2"}[op]
    return t(name + ".weight"), t(name + ".bias")


def _io(shape: Sequence[int], name: str, io: Optional[dict[str, Any]]) -> dict[str, Any]:
    t = {"name": name, "shape": list(shape), "dtype": "float32"}
    if io:
        t.update(io)
    return t


def write_dense(path: pathlib.Path, w: np.ndarray, b: Optional[np.ndarray], rows: int, *, weights: str = "float32",
                inp: Optional[dict] = None, out: Optional[dict] = None,
                device: Optional[Device] = None) -> tuple[dict, dict]:
    n_out, n_in = w.shape
    ti = _io([rows, n_in], "x", inp)
    to = _io([rows, n_out], "y", out)
    di = do = None
    if device is not None:
        (ti, di), (to, do) = device.tensor(ti), device.tensor(to)
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<IIII", 2, KIND_DENSE, 1, 1))
        f.write(_tensor_record(ti, di) + _tensor_record(to, do))
        f.write(struct.pack("<IIII", rows, n_in, n_out, _wdtype(weights)))
        f.write(_matrix(w, b, weights))
    return ti, to


def write_layer_step(path: pathlib.Path, tensors: dict[str, np.ndarray], layer: int, dims: Any, rows: int, *,
                     weights: str = "float32", device: Optional[Device] = None) -> tuple[list[dict], list[dict]]:
    d, C, T = dims.n_text_state, dims.n_text_ctx, dims.n_audio_ctx
    ins = [_io([rows, d], "x", None), _io([rows, C, d], "self_k", None), _io([rows, C, d], "self_v", None),
           _io([T, d], "cross_k", None), _io([T, d], "cross_v", None), _io([rows, C], "mask", None)]
    outs = [_io([rows, d], "x_out", None), _io([rows, d], "k", None), _io([rows, d], "v", None)]
    devs: list[Optional[Device]] = [None] * 9
    if device is not None:
        laid = []
        for i, t in enumerate(ins + outs):
            cache = i in (1, 2)  # the KV cache: float32 and unpadded unless asked (it is the decoder's cache)
            if cache and not device.pad_cache:
                laid.append((t, None))
            elif cache:
                laid.append((Device(device.align, False, device.record).tensor(t)))
            else:
                laid.append(device.tensor(t))
        ins, outs = [t for t, _ in laid[:6]], [t for t, _ in laid[6:]]
        devs = [dv for _, dv in laid]
    p = f"decoder.blocks.{layer}."
    norm = lambda n: (np.asarray(tensors[p + n + ".weight"], np.float32).tobytes() +  # noqa: E731
                      np.asarray(tensors[p + n + ".bias"], np.float32).tobytes())
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<IIII", 2, KIND_LAYER_STEP, len(ins), len(outs)))
        for t, dv in zip(ins + outs, devs):
            f.write(_tensor_record(t, dv))
        f.write(struct.pack("<6I", rows, d, dims.n_text_head, C, T, _wdtype(weights)))
        f.write(norm("attn_ln"))
        f.write(_matrix(*linear_weights(tensors, layer, "self_qkv"), weights))
        f.write(_matrix(*linear_weights(tensors, layer, "self_out"), weights))
        f.write(norm("cross_attn_ln"))
        f.write(_matrix(*linear_weights(tensors, layer, "cross_q"), weights))
        f.write(_matrix(*linear_weights(tensors, layer, "cross_out"), weights))
        f.write(norm("mlp_ln"))
        f.write(_matrix(*linear_weights(tensors, layer, "fc1"), weights))
        f.write(_matrix(*linear_weights(tensors, layer, "fc2"), weights))
    return ins, outs


def write_subgraphs(folder: pathlib.Path, tensors: dict[str, np.ndarray], dims: Any, *,
                    kinds: Iterable[str] = ("linear",), batches: Iterable[int] = (1, 5), vocab: bool = True,
                    weights: str = "float32", layers: Optional[Iterable[int]] = None,
                    skip: Iterable[tuple[str, int]] = (),
                    io: Optional[dict[tuple[str, int], tuple[dict, dict]]] = None,
                    device: Optional[Device] = None) -> list[dict[str, Any]]:
    """Stand-in files in `folder` and their manifest entries (decoder.subgraphs). `io`: per
    (op, layer) - (vocab, -1) for the vocabulary - the declared input and output tensor
    ({"dtype", "scale", "zero_point"}); float32 where not given. `device`: padded / float16
    native I/O for every file."""
    io = io or {}
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layers = list(range(dims.n_text_layer) if layers is None else layers)
    skip = set(skip)
    entries = []
    for B in batches:
        for l in layers:
            if "linear" in kinds:
                for op in LINEAR_OPS:
                    if (op, l) in skip:
                        continue
                    name = f"standin_l{l}_{op}_b{B}.standin.dla"
                    ti, to = write_dense(folder / name, *linear_weights(tensors, l, op), B, weights=weights,
                                         inp=io.get((op, l), (None, None))[0], out=io.get((op, l), (None, None))[1],
                                         device=device)
                    entries.append({"op": op, "layer": l, "batch": B, "files": {"dla": name},
                                    "inputs": [ti], "outputs": [to]})
            if "layer" in kinds and ("layer_step", l) not in skip:
                name = f"standin_l{l}_layer_step_b{B}.standin.dla"
                ins, outs = write_layer_step(folder / name, tensors, l, dims, B, weights=weights, device=device)
                entries.append({"op": "layer_step", "layer": l, "batch": B, "files": {"dla": name},
                                "inputs": ins, "outputs": outs})
        if vocab:
            emb = np.asarray(tensors["decoder.token_embedding.weight"], np.float32)
            for i, c0 in enumerate(range(0, dims.n_vocab, VOCAB_CHUNK)):
                if ("vocab", i) in skip:
                    continue
                cols = min(VOCAB_CHUNK, dims.n_vocab - c0)
                name = f"standin_vocab{i}_b{B}.standin.dla"
                ti, to = write_dense(folder / name, emb[c0:c0 + cols], None, B, weights=weights,
                                     inp=io.get(("vocab", -1), (None, None))[0],
                                     out=io.get(("vocab", -1), (None, None))[1], device=device)
                entries.append({"op": "vocab", "chunk": i, "col0": c0, "cols": cols, "batch": B,
                                "files": {"dla": name}, "inputs": [ti], "outputs": [to]})
    return entries


def write_bundle(folder: pathlib.Path, dims: Any, entries: list[dict[str, Any]]) -> pathlib.Path:
    from whisper_genio.backends.bundle import make_manifest, write_manifest

    manifest = make_manifest(dims, model="standin", extra={"decoder": {"subgraphs": entries}})
    write_manifest(folder, manifest)
    return folder
