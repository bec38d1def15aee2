"""Decoder subgraphs for the NPU: TFLite per op at fixed shapes, float and quantized, listed in
the bundle manifest (``decoder.subgraphs``) with their shapes, dtypes, scales and the
``ncc-tflite`` command per SoC.

    whisper-genio export --model base -o bundle/ --decoder-subgraphs linear --beams 1,5 \\
        --decoder-quantize a16w8 --calibration ../shared/data/speech

One subgraph per (op, layer, batch): the six projections of each layer (self-attention QKV
[3d, d] fused as the CPU runs it, self-attention output, cross-attention query and output, fc1,
fc2) and the vocabulary projection (the token embedding, tied) split into chunks of
VOCAB_CHUNK rows. The batch is the beam count (1 = greedy); one token per step. Token-embedding
lookup stays on the CPU (GATHER is not supported on the MDLA).

Vocabulary chunks of 8192 rows: the MDLA guidelines cap H/W/C at 65535 and ask to keep channel
counts small for its internal buffers; 51865 x d in one FULLY_CONNECTED would be 26.6 MB of int8
(53 MB FP16) weights for base. 8192-row chunks (4 MB int8 / 8 MB FP16 for d = 512) keep every
op well inside those limits, are a power of two for the compiler's tiling, and cost only 7 device
calls per token. (Unverified on a board: ``whisper-genio doctor --decoder-subgraphs`` is the check.)

Quantization (ai-edge-quantizer): "a16w8" = int16 activations, int8 per-channel weights (the
scheme MDLA 3.0 supports natively and MediaTek uses for its own Whisper), calibrated with the
min/max of each op's real inputs, recorded from the native decode loop on real speech (the
decoder's own single-token steps, via Python callback runners); "w8" = int8 weights only.
The I/O of a quantized subgraph stays float32 (QUANTIZE/DEQUANTIZE inside); the manifest records
the scale/zero point inside, as for the encoder.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import time
import warnings
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import InvalidOptionError, WhisperGenioError
from .export_onnx import _need

PathLike = Union[str, os.PathLike]
LINEAR_OPS = ("self_qkv", "self_out", "cross_q", "cross_out", "fc1", "fc2")
VOCAB_CHUNK = 8192
QUANT = (None, "a16w8", "w8")


def linear_weights(tensors: Mapping[str, np.ndarray], layer: int, op: str) -> tuple[np.ndarray, np.ndarray]:
    """W [out, in] and bias (float32) of one decoder op, from openai-whisper's tensor names."""
    p = f"decoder.blocks.{layer}."

    def t(n: str) -> np.ndarray:
        return np.asarray(tensors[p + n], np.float32)

    if op == "self_qkv":
        d = t("attn.query.weight").shape[0]
        w = np.concatenate([t("attn.query.weight"), t("attn.key.weight"), t("attn.value.weight")])
        return w, np.concatenate([t("attn.query.bias"), np.zeros(d, np.float32), t("attn.value.bias")])
    name = {"self_out": "attn.out", "cross_q": "cross_attn.query", "cross_out": "cross_attn.out",
            "fc1": "mlp.0", "fc2": "mlp.2"}[op]
    return t(name + ".weight"), t(name + ".bias")


def vocab_chunks(n_vocab: int, chunk: int = VOCAB_CHUNK) -> list[tuple[int, int]]:
    """(col0, cols) of each vocabulary chunk."""
    return [(c0, min(chunk, n_vocab - c0)) for c0 in range(0, n_vocab, chunk)]


def export_linear_tflite(w: np.ndarray, b: Optional[np.ndarray], rows: int, path: PathLike) -> pathlib.Path:
    """x [rows, in] -> x W^T + b as a float32 TFLite (one FULLY_CONNECTED) via litert-torch."""
    torch = _need("torch")
    litert_torch = _need("litert_torch")
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w, np.float32)))
        if b is not None:
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b, np.float32)))
    lin.eval()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(rows, w.shape[1], dtype=torch.float32)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        with torch.no_grad():
            edge = litert_torch.convert(lin, (x,))
        edge.export(str(path))
    return path


# Calibration ranges of 16-bit activations are widened by this factor: a few clips do not see
# every extreme a transcription meets, and a clipped output (a logit, a key) changes tokens,
# while one bit of int16 resolution does not (the measurement is in test_decoder_export.py).
A16_RANGE_MARGIN = 2.0


def quantize_tflite(path: PathLike, out: PathLike, scheme: str,
                    qsvs: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None) -> pathlib.Path:
    """a16w8 (static, int16 activations, int8 per-channel weights) or w8 (weight-only int8)."""
    from .quantize.tflite_quant import _aeq

    aeq = _aeq()
    q = aeq.qtyping
    rm = aeq.recipe_manager.RecipeManager()
    if scheme == "w8":
        rm.add_weight_only_config(regex=".*", operation_name=q.TFLOperationName.ALL_SUPPORTED, num_bits=8,
                                  granularity=q.QuantGranularity.CHANNELWISE)
    elif scheme == "a16w8":
        rm.add_static_config(regex=".*", operation_name=q.TFLOperationName.ALL_SUPPORTED, activation_num_bits=16,
                             weight_num_bits=8, weight_granularity=q.QuantGranularity.CHANNELWISE)
    else:
        raise InvalidOptionError(f"decoder subgraph quantization must be a16w8 or w8, got {scheme!r}")
    quantizer = aeq.quantizer.Quantizer(os.fspath(path), rm.get_quantization_recipe())
    calibration = None
    if quantizer.need_calibration:
        if qsvs is None:
            raise WhisperGenioError(f"{scheme} needs calibration statistics")
        calibration = {k: dict(v) for k, v in qsvs.items()}
    out = pathlib.Path(out)
    with contextlib.redirect_stdout(io.StringIO()):
        result = quantizer.quantize(calibration, enable_progress_report=False)
    if out.exists():
        out.unlink()
    result.export_model(os.fspath(out))
    return out


def record_activations(model: Any, tensors: Mapping[str, np.ndarray], audios: Sequence[Any], *, max_rows: int = 256,
                       language: Optional[str] = "en", vocab_chunk: int = VOCAB_CHUNK) -> dict[tuple[str, int], np.ndarray]:
    """Inputs of every decoder op at every single-token step of greedy decodes of `audios`, as
    the native loop computes them: {(op, layer or -1 for the vocabulary): [rows, in]} (at most
    `max_rows` rows each, evenly spread). Runs the loop with Python callback runners that compute
    the float op and keep its input. `tensors`: the model's checkpoint tensors."""
    ck_tensors = tensors
    dims = model.dims
    seen: dict[tuple[str, int], list[np.ndarray]] = {}
    entries = []
    for layer in range(dims.n_text_layer):
        for op in LINEAR_OPS:
            w, b = linear_weights(ck_tensors, layer, op)
            entries.append({"op": op, "layer": layer, "batch": 1, "callback": _recorder(seen, (op, layer), w, b)})
    emb = np.asarray(ck_tensors["decoder.token_embedding.weight"], np.float32)
    for i, (c0, cols) in enumerate(vocab_chunks(dims.n_vocab, vocab_chunk)):
        # every chunk sees the same input: record it once
        rec = _recorder(seen, ("vocab", -1), emb[c0:c0 + cols], None) if i == 0 else \
            _recorder(None, None, emb[c0:c0 + cols], None)
        entries.append({"op": "vocab", "chunk": i, "col0": c0, "cols": cols, "batch": 1, "callback": rec})
    model.set_decoder_offload("linear", entries)
    try:
        for a in audios:
            model.decode(a, language=language)
    finally:
        model.set_decoder_offload("none")
    out = {}
    for k, rows in seen.items():
        x = np.concatenate(rows)
        if len(x) > max_rows:
            x = x[np.linspace(0, len(x) - 1, max_rows).astype(int)]
        out[k] = x
    return out


def _recorder(seen: Optional[dict], key: Any, w: np.ndarray, b: Optional[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    wt = np.ascontiguousarray(w.T)

    def fn(x: np.ndarray) -> np.ndarray:
        if seen is not None:
            seen.setdefault(key, []).append(np.array(x, np.float32))
        y = x @ wt
        return y + b if b is not None else y

    return fn


def _io_entry(path: pathlib.Path, rows: int, n_in: int, n_out: int) -> tuple[list[dict], list[dict], dict]:
    from .quantize.tflite_quant import io_quantization

    q = io_quantization(path)
    ins = [{"name": q["input"]["name"], "shape": [rows, n_in], "dtype": q["input"]["dtype"]}]
    outs = [{"name": q["output"]["name"], "shape": [rows, n_out], "dtype": q["output"]["dtype"]}]
    for t, role in ((ins[0], "input"), (outs[0], "output")):
        if "scale" in q[role]:
            t.update(scale=q[role]["scale"], zero_point=q[role]["zero_point"])
    inside = {role: q[role]["inside"] for role in ("input", "output") if "inside" in q[role]}
    return ins, outs, inside


# Boards with an MDLA: the manifest records the ncc-tflite command for each, so one bundle can be
# compiled on whichever board's SDK (a DLA is specific to its SoC and runtime major version).
MDLA_BOARDS = ("genio-510", "genio-700", "genio-1200", "genio-520", "genio-720")


def compiler_entry(tflite: str, dla: str, soc: str, *, float_ops: bool) -> dict[str, Any]:
    from .ncc import ncc_command

    return {"tool": "ncc-tflite", "soc": soc, "dla": dla, "command": ncc_command(tflite, dla, soc=soc, float_ops=float_ops),
            "per_soc": {b: ncc_command(tflite, dla, soc=b, float_ops=float_ops) for b in MDLA_BOARDS}}


def export_decoder_subgraphs(model: Any, out_dir: PathLike, *, batches: Sequence[int] = (1, 5),
                             kinds: Sequence[str] = ("linear",), quantize: Optional[str] = None,
                             calibration: Optional[Mapping[tuple[str, int], np.ndarray]] = None,
                             vocab_chunk: int = VOCAB_CHUNK, soc: Optional[str] = None,
                             layers: Optional[Iterable[int]] = None, vocab: bool = True,
                             log: Any = None) -> list[dict[str, Any]]:
    """Writes one TFLite per (op, layer, batch) into out_dir (float, or `quantize`d: the float
    file is kept beside it) and returns their manifest entries (decoder.subgraphs). The
    vocabulary chunks serve both kinds (`vocab=False` leaves them out)."""
    from ..checkpoints import Checkpoint
    from .quantize.tflite_quant import activation_min_max

    if quantize not in QUANT:
        raise InvalidOptionError(f"decoder subgraph quantization must be one of a16w8, w8 (or none), got {quantize!r}")
    unknown = [k for k in kinds if k not in ("linear", "layer")]
    if unknown or not kinds:
        raise InvalidOptionError(f"decoder subgraph kinds must be among linear, layer; got {list(kinds)}")
    if not batches or any(int(b) < 1 for b in batches):
        raise InvalidOptionError(f"beams must be positive integers, got {list(batches)}")
    if quantize == "a16w8" and calibration is None:
        raise InvalidOptionError("a16w8 needs calibration activations (record_activations on speech)")
    say = log or (lambda *_: None)
    tensors = model.tensors if isinstance(model, Checkpoint) else model
    dims = model.dims
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[dict[str, Any], np.ndarray, Optional[np.ndarray], tuple[str, int]]] = []
    layers = list(range(dims.n_text_layer) if layers is None else layers)
    for layer in (layers if "linear" in kinds else ()):
        for op in LINEAR_OPS:
            w, b = linear_weights(tensors, layer, op)
            jobs.append(({"op": op, "layer": layer}, w, b, (op, layer)))
    emb = np.asarray(tensors["decoder.token_embedding.weight"], np.float32)
    for i, (c0, cols) in enumerate(vocab_chunks(dims.n_vocab, vocab_chunk) if vocab else ()):
        jobs.append(({"op": "vocab", "chunk": i, "col0": c0, "cols": cols}, emb[c0:c0 + cols], None, ("vocab", -1)))
    entries = []
    t0 = time.perf_counter()
    for B in batches:
        for base, w, b, key in jobs:
            tag = f"l{base['layer']}_{base['op']}" if base["op"] != "vocab" else f"vocab{base['chunk']}"
            stem = f"decoder_{tag}_b{B}"
            fpath = export_linear_tflite(w, b, B, out / f"{stem}.tflite")
            path = fpath
            qinfo: dict[str, Any] = {}
            if quantize:
                qsvs = None
                if quantize == "a16w8":
                    xs = calibration[key]
                    batches_x = [np.resize(xs[i:i + B], (B, xs.shape[1])) for i in range(0, len(xs), B)]
                    qsvs = activation_min_max(fpath, batches_x, margin=A16_RANGE_MARGIN)
                path = quantize_tflite(fpath, out / f"{stem}.{quantize}.tflite", quantize, qsvs)
                qinfo = {"scheme": quantize, "weights": "int8 per-channel",
                         "activations": "int16" if quantize == "a16w8" else "float32"}
            ins, outs, inside = _io_entry(path, B, w.shape[1], w.shape[0])
            if inside:
                qinfo["io"] = inside
            entry = dict(base, batch=int(B), files={"tflite": path.name}, inputs=ins, outputs=outs)
            if quantize:
                entry["files"]["tflite_float"] = fpath.name
                entry["quantization"] = qinfo
            if soc:
                entry["compiler"] = compiler_entry(path.name, f"{stem}.dla", soc, float_ops=quantize != "a16w8")
            entries.append(entry)
        # Whole layer steps: float only (their softmax, LayerNorm and the 448-position cache are
        # not what the A16W8 FC recipe covers); compiled with --relax-fp32.
        for layer in (layers if "layer" in kinds else ()):
            stem = f"decoder_l{layer}_layer_step_b{B}"
            path = export_layer_step_tflite(tensors, dims, layer, int(B), out / f"{stem}.tflite")
            entry = layer_step_entry(path, dims, layer, int(B))
            if soc:
                entry["compiler"] = compiler_entry(path.name, f"{stem}.dla", soc, float_ops=True)
            entries.append(entry)
        say(f"decoder subgraphs batch {B}: {time.perf_counter() - t0:.0f} s so far")
    return entries


def litert_entries(entries: Sequence[Mapping[str, Any]], folder: PathLike, *, threads: int = 1,
                   kind: str = "tflite") -> list[dict[str, Any]]:
    """Native offload entries whose runners are LiteRT interpreters over the exported TFLite
    files (host numerics of the quantized subgraphs inside the native decode loop). Integer I/O is
    quantized / dequantized with the tensor's own scale and zero point by the native quantization
    the device backends use (litert.run_float)."""
    from .quantize.litert import interpreter

    out = []
    for e in entries:
        if e["op"] == "layer_step":
            out.append({"op": "layer_step", "layer": e["layer"], "batch": e["batch"],
                        "callback": litert_layer_step(pathlib.Path(folder) / e["files"][kind], threads=threads)})
            continue
        it = interpreter(pathlib.Path(folder) / e["files"][kind], threads=threads)
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        out.append({k: e[k] for k in ("op", "layer", "chunk", "col0", "cols", "batch") if k in e} |
                   {"callback": _litert_fn(it, i, o)})
    return out


def _litert_fn(it: Any, i: Mapping[str, Any], o: Mapping[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    from .quantize.litert import run_float

    shape = tuple(int(x) for x in i["shape"])

    def fn(x: np.ndarray) -> np.ndarray:
        return run_float(it, np.asarray(x, np.float32).reshape(shape), i, o)

    return fn


def calibration_audio(paths: Sequence[PathLike], limit: int = 8) -> list[str]:
    """Audio files from files and folders (*.wav, *.flac, *.mp3), sorted, at most `limit`."""
    found: list[str] = []
    for p in paths:
        p = pathlib.Path(p)
        if p.is_dir():
            found += sorted(str(f) for f in p.iterdir() if f.suffix.lower() in (".wav", ".flac", ".mp3"))
        elif p.is_file():
            found.append(str(p))
        else:
            raise InvalidOptionError(f"calibration audio not found: {p}")
    if not found:
        raise InvalidOptionError("no calibration audio found")
    return found[:limit]


def add_decoder_subgraphs(bundle_dir: PathLike, model: Any, *, kinds: Sequence[str] = ("linear",),
                          batches: Sequence[int] = (1, 5), quantize: Optional[str] = None,
                          calibration: Sequence[PathLike] = (), language: Optional[str] = "en",
                          soc: Optional[str] = None, threads: int = 2, log: Any = None) -> list[dict[str, Any]]:
    """Exports the decoder subgraphs of `model` into an existing bundle and lists them in its
    manifest (``decoder.subgraphs``)."""
    import json

    from ..backends.bundle import MANIFEST, write_manifest
    from ..model import load_model
    from .export_onnx import checkpoint_of

    say = log or (lambda *_: None)
    ckpt = checkpoint_of(model)
    acts = None
    if quantize == "a16w8":
        clips = calibration_audio(calibration)
        say(f"recording decoder activations on {len(clips)} clip(s)")
        m = load_model(model if isinstance(model, (str, os.PathLike)) else ckpt.path, backend="cpu", threads=threads)
        acts = record_activations(m, ckpt.tensors, clips, language=language)
        del m
    entries = export_decoder_subgraphs(ckpt, bundle_dir, batches=batches, kinds=kinds, quantize=quantize,
                                       calibration=acts, soc=soc, log=say)
    path = pathlib.Path(bundle_dir) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["decoder"] = {"subgraphs": entries, "exporter": "litert-torch" + (" + ai-edge-quantizer" if quantize else ""),
                           "vocab_chunk": VOCAB_CHUNK}
    write_manifest(bundle_dir, manifest)
    return entries


# -- whole decoder-layer step ----------------------------------------------------------------------

def _layer_step_module(tensors: Mapping[str, np.ndarray], layer: int, n_head: int) -> Any:
    """One Whisper residual block for one token per row over a fixed-capacity KV cache: inputs
    x [B, d], self K/V cache [B, C, d], cross K/V [T, d], additive position mask [B, C]; outputs
    x' [B, d] and the new k, v [B, d] (the caller writes them into the cache at the position).
    The new token attends to the masked cache and to itself."""
    torch = _need("torch")
    nn = torch.nn
    p = f"decoder.blocks.{layer}."

    def param(name: str) -> Any:
        return nn.Parameter(torch.from_numpy(np.array(tensors[p + name], np.float32)), requires_grad=False)

    class Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for ln in ("attn_ln", "cross_attn_ln", "mlp_ln"):
                setattr(self, ln + "_g", param(ln + ".weight"))
                setattr(self, ln + "_b", param(ln + ".bias"))
            for name in ("attn.query", "attn.key", "attn.value", "attn.out", "cross_attn.query", "cross_attn.out",
                         "mlp.0", "mlp.2"):
                key = name.replace(".", "_")
                setattr(self, key + "_w", param(name + ".weight"))
                if name != "attn.key":
                    setattr(self, key + "_b", param(name + ".bias"))

        @staticmethod
        def ln(x: Any, g: Any, b: Any) -> Any:
            return torch.nn.functional.layer_norm(x, (x.shape[-1],), g, b, 1e-5)

        def forward(self, x: Any, self_k: Any, self_v: Any, cross_k: Any, cross_v: Any, mask: Any) -> Any:
            B, d = x.shape
            dh = d // n_head
            scale = dh ** -0.5
            h = self.ln(x, self.attn_ln_g, self.attn_ln_b)
            q = h @ self.attn_query_w.T + self.attn_query_b
            k = h @ self.attn_key_w.T
            v = h @ self.attn_value_w.T + self.attn_value_b
            keys = torch.cat([self_k, k[:, None, :]], dim=1).reshape(B, -1, n_head, dh).permute(0, 2, 3, 1)
            vals = torch.cat([self_v, v[:, None, :]], dim=1).reshape(B, -1, n_head, dh).permute(0, 2, 1, 3)
            m = torch.cat([mask, torch.zeros(B, 1, dtype=mask.dtype)], dim=1)[:, None, None, :]
            s = (q.reshape(B, n_head, 1, dh) @ keys) * scale + m
            o = (torch.softmax(s, dim=-1) @ vals).reshape(B, d)
            x = x + o @ self.attn_out_w.T + self.attn_out_b
            h = self.ln(x, self.cross_attn_ln_g, self.cross_attn_ln_b)
            q = h @ self.cross_attn_query_w.T + self.cross_attn_query_b
            T = cross_k.shape[0]
            ck = cross_k.reshape(T, n_head, dh).permute(1, 2, 0)
            cv = cross_v.reshape(T, n_head, dh).permute(1, 0, 2)
            s = (q.reshape(B, n_head, 1, dh) @ ck[None]) * scale
            o = (torch.softmax(s, dim=-1) @ cv[None]).reshape(B, d)
            x = x + o @ self.cross_attn_out_w.T + self.cross_attn_out_b
            h = self.ln(x, self.mlp_ln_g, self.mlp_ln_b)
            f = torch.nn.functional.gelu(h @ self.mlp_0_w.T + self.mlp_0_b)
            x = x + f @ self.mlp_2_w.T + self.mlp_2_b
            return x, k, v

    return Step().eval()


LAYER_STEP_INPUTS = ("x", "self_k", "self_v", "cross_k", "cross_v", "mask")
LAYER_STEP_OUTPUTS = ("x", "k", "v")


def export_layer_step_tflite(tensors: Mapping[str, np.ndarray], dims: Any, layer: int, rows: int,
                             path: PathLike) -> pathlib.Path:
    """The float32 layer-step TFLite (litert-torch) at batch `rows`, n_text_ctx cache positions."""
    torch = _need("torch")
    litert_torch = _need("litert_torch")
    mod = _layer_step_module(tensors, layer, dims.n_text_head)
    d, C, T = dims.n_text_state, dims.n_text_ctx, dims.n_audio_ctx
    args = (torch.zeros(rows, d), torch.zeros(rows, C, d), torch.zeros(rows, C, d), torch.zeros(T, d),
            torch.zeros(T, d), torch.zeros(rows, C))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        with torch.no_grad():
            edge = litert_torch.convert(mod, args)
        edge.export(str(path))
    return path


def layer_step_entry(path: pathlib.Path, dims: Any, layer: int, rows: int) -> dict[str, Any]:
    d, C, T = dims.n_text_state, dims.n_text_ctx, dims.n_audio_ctx
    shapes_in = ([rows, d], [rows, C, d], [rows, C, d], [T, d], [T, d], [rows, C])
    return {"op": "layer_step", "layer": layer, "batch": int(rows), "files": {"tflite": path.name},
            "inputs": [{"name": n, "shape": list(s), "dtype": "float32"} for n, s in zip(LAYER_STEP_INPUTS, shapes_in)],
            "outputs": [{"name": n, "shape": [rows, d], "dtype": "float32"} for n in LAYER_STEP_OUTPUTS]}


def _arg_index(name: str) -> int:
    """litert-torch names inputs ...args_<i>... and outputs ...output_<i>...: the position."""
    import re

    m = re.findall(r"(?:args|output)_(\d+)", name)
    return int(m[-1]) if m else 0


def litert_layer_step(path: PathLike, *, threads: int = 1) -> Callable[..., tuple[np.ndarray, ...]]:
    """A layer-step callback running the TFLite in LiteRT (inputs and outputs in contract order)."""
    from .quantize.litert import interpreter

    it = interpreter(path, threads=threads)
    ins = sorted(it.get_input_details(), key=lambda t: _arg_index(t["name"]))
    outs = sorted(it.get_output_details(), key=lambda t: _arg_index(t["name"]))

    def fn(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        for t, a in zip(ins, arrays):
            it.set_tensor(t["index"], np.asarray(a, np.float32).reshape(t["shape"]))
        it.invoke()
        return tuple(np.array(it.get_tensor(t["index"])) for t in outs)

    return fn
