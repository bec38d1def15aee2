"""ONNX QDQ encoders (onnxruntime.quantization), run by ONNX Runtime on the host.

    prepared = prepare("encoder.onnx", "work/encoder.prep.onnx")   # opset 21, folded constants, one Gelu op
    ranges = collect_ranges(prepared, windows, cache="work/onnx_ranges.json")
    quantize(prepared, "encoder.a16w8.onnx", parse_scheme("a16w8"), ranges)
    states = run("encoder.a16w8.onnx", mel)                         # [1500, d]

The graph keeps openai-whisper's module names (``/blocks.3/attn/query/MatMul``), from which
``tensor_roles`` names every activation (block + role, see ``schemes.py``). Quantization is
static QDQ with min-max ranges from real 30 s windows: 8-bit activations are asymmetric uint8,
16-bit ones symmetric int16 (MDLA's types); weights symmetric int8, per channel (MatMul axis 1,
Conv axis 0) or per tensor. Mixed precision is ONNX Runtime's TensorQuantOverrides per tensor.
A matrix product and the bias that follows are one quantization step (the product's own output
is not re-quantized), like a fused FULLY_CONNECTED. LayerNormalization is one op whose
statistics stay inside it. ONNX Runtime runs 8-bit QDQ MatMul/Conv with integer kernels
(QLinearMatMul, MatMulIntegerToFloat, QLinearConv); 16-bit tensors are quantized and
dequantized around float kernels, which gives the same values as 16-bit integer arithmetic up to
the accumulator's rounding.

Every graph written here uses only the standard ONNX domain (MediaTek's NeuronExecutionProvider
knows no ONNX Runtime contrib ops): the prepared graph is converted to opset ``QDQ_OPSET`` (21),
where the standard QuantizeLinear/DequantizeLinear take int16 and Gelu is a standard op, so the
quantizer never falls back to com.microsoft Q/DQ. ONNX Runtime reads opset 21 from 1.18 on
(ONNX 1.16), so the ORT 1.20.2 of IoT Yocto v26 does.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from ...errors import ModelLoadError, WhisperGenioError
from .schemes import Role, Scheme

PathLike = Union[str, os.PathLike]
OP_TYPES = ("Conv", "MatMul", "Add", "Mul", "Gelu", "Softmax", "LayerNormalization", "Transpose", "Reshape")
_PASS_THROUGH = ("Reshape", "Transpose")
# Standard int16 QuantizeLinear/DequantizeLinear need opset 21 (below it onnxruntime.quantization
# writes com.microsoft ones); Gelu is a standard op from opset 20 on.
QDQ_OPSET = 21


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise WhisperGenioError(f"ONNX quantization needs {module.split('.')[0]} ({e}): "
                                "pip install 'whisper_genio[quantize]'") from None


def _ort() -> Any:
    return _need("onnxruntime")


# -- preparation ----------------------------------------------------------------------------

def prepare(src: PathLike, dst: PathLike) -> pathlib.Path:
    """Folds constants (ONNX Runtime's basic level, without the MatMul->Gemm rewrites that lose
    module names), converts the graph to opset QDQ_OPSET and fuses the erf GELU (Div, Erf, Add,
    Mul, Mul) into one standard Gelu, the single op (a look-up table on an NPU) that the TFLite
    encoder has too."""
    ort = _ort()
    onnx = _need("onnx")
    from onnx import version_converter

    dst = pathlib.Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    ort.InferenceSession(os.fspath(src), so, providers=["CPUExecutionProvider"],
                         disabled_optimizers=["MatMulAddFusion", "MatMulScaleFusion", "GemmTransposeFusion"])
    model = onnx.load(str(dst))
    if _default_opset(model) < QDQ_OPSET:
        model = version_converter.convert_version(model, QDQ_OPSET)
    # Types first, then the fusion, which keeps the GELU's output name and so its type.
    model = onnx.shape_inference.infer_shapes(model)
    _fuse_gelu(model, onnx)
    # ONNX Runtime's saved graph imports every domain it knows; keep the ones its nodes use.
    used = {n.domain for n in model.graph.node} | {"", "ai.onnx"}
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    onnx.save(model, str(dst))
    return dst


def _default_opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def is_prepared(path_or_model: Any) -> bool:
    """Whether a graph is in prepare()'s form: opset QDQ_OPSET or newer and only the ONNX domain
    (a cache written by an older version, with com.microsoft ops, is not)."""
    model = load(path_or_model)
    return _default_opset(model) >= QDQ_OPSET and all(n.domain in ("", "ai.onnx") for n in model.graph.node)


def _fuse_gelu(model: Any, onnx: Any) -> int:
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    remove: set[int] = set()
    replace: dict[int, Any] = {}
    for n in nodes:
        if n.op_type != "Erf":
            continue
        div = producer.get(n.input[0])
        if div is None or div.op_type != "Div":
            continue
        x = div.input[0]
        add = (consumers.get(n.output[0]) or [None])[0]
        mul = (consumers.get(add.output[0]) or [None])[0] if add is not None else None
        mul2 = (consumers.get(mul.output[0]) or [None])[0] if mul is not None else None
        if add is None or mul is None or mul2 is None or add.op_type != "Add" or mul.op_type != "Mul" \
                or mul2.op_type != "Mul" or x not in mul.input:
            continue
        name = re.sub(r"/Erf(_\d+)?$", r"/Gelu\1", n.name)
        if name == n.name:
            name = n.name + "/Gelu"
        gelu = onnx.helper.make_node("Gelu", [x], [mul2.output[0]], name=name)
        for m in (div, n, add, mul):
            remove.add(id(m))
        replace[id(mul2)] = gelu
    if not replace:
        return 0
    kept = [replace.get(id(n), n) for n in nodes if id(n) not in remove]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(replace)


# -- roles ------------------------------------------------------------------------------------

_BLOCK = re.compile(r"^/blocks\.(\d+)/")
_BLOCK_RULES = [
    (re.compile(r"/attn_ln/"), "ln1"), (re.compile(r"/mlp_ln/"), "ln2"),
    (re.compile(r"/attn/query/"), "q"), (re.compile(r"/attn/key/"), "k"), (re.compile(r"/attn/value/"), "v"),
    (re.compile(r"/attn/MatMul$"), "qk"), (re.compile(r"/attn/Softmax$"), "softmax"),
    (re.compile(r"/attn/MatMul_1$"), "pv"), (re.compile(r"/attn/out/"), "attn_out"),
    (re.compile(r"/blocks\.\d+/Add$"), "resid1"), (re.compile(r"/blocks\.\d+/Add_1$"), "resid2"),
    (re.compile(r"/mlp/mlp\.0/"), "fc1"), (re.compile(r"/mlp/mlp\.1/"), "gelu"), (re.compile(r"/mlp/mlp\.2/"), "fc2"),
]


def load(path_or_model: Any) -> Any:
    onnx = _need("onnx")
    return onnx.load(os.fspath(path_or_model)) if isinstance(path_or_model, (str, os.PathLike)) else path_or_model


def tensor_roles(model: Any, n_layer: Optional[int] = None) -> dict[str, Role]:
    """Role of every float activation tensor (node outputs and the input) of a prepared encoder."""
    model = load(model)
    inits = {i.name for i in model.graph.initializer}
    roles: dict[str, Role] = {model.graph.input[0].name: Role(-1, "mel")}
    stem_gelus = 0
    if n_layer is None:
        n_layer = 1 + max((int(m.group(1)) for n in model.graph.node for m in [_BLOCK.match(n.name)] if m), default=-1)
    for node in model.graph.node:
        if not node.output:
            continue
        out = node.output[0]
        m = _BLOCK.match(node.name)
        role: Optional[Role] = None
        if m:
            b = int(m.group(1))
            for rx, name in _BLOCK_RULES:
                if rx.search(node.name):
                    role = Role(b, name)
                    break
        elif node.name.startswith("/ln_post/"):
            role = Role(n_layer, "ln_post")
        elif node.name.startswith("/conv1/"):
            role = Role(-1, "conv1")
        elif node.name.startswith("/conv2/"):
            role = Role(-1, "conv2")
        elif node.op_type == "Gelu":
            stem_gelus += 1
            role = Role(-1, "gelu1" if stem_gelus == 1 else "gelu2")
        elif node.op_type == "Add" and "positional_embedding" in node.input:
            role = Role(-1, "pos")
        scale_by_constant = node.op_type == "Mul" and role is None and any(i in inits for i in node.input)
        if node.op_type in _PASS_THROUGH or scale_by_constant:
            src = next((roles[i] for i in node.input if i in roles), None)
            if src is not None:
                role = src
        if role is not None:
            roles[out] = role
    return roles


def bias_adds(model: Any) -> list[str]:
    """Names of the Add nodes that add a bias to a MatMul (kept in the product's quantization step)."""
    model = load(model)
    inits = {i.name for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for n in model.graph.node:
        if n.op_type == "Add" and len(n.input) == 2 and any(i in inits for i in n.input):
            other = next(i for i in n.input if i not in inits)
            p = producer.get(other)
            if p is not None and p.op_type == "MatMul":
                out.append(n.name)
    return out


# -- running ----------------------------------------------------------------------------------

def session(path: PathLike, *, threads: int = 2, outputs: Sequence[str] = ()) -> Any:
    """An ONNX Runtime CPU session; `outputs`: intermediate tensors to expose as outputs too."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if outputs:
        onnx = _need("onnx")
        model = onnx.load(os.fspath(path))
        have = {o.name for o in model.graph.output}
        for name in outputs:
            if name not in have:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        try:
            return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types
            raise ModelLoadError(f"onnxruntime could not load {path} with its intermediate tensors: {e}") from None
    try:
        return ort.InferenceSession(os.fspath(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelLoadError(f"onnxruntime could not load {path}: {e}") from None


def run(path_or_session: Any, mel: np.ndarray, *, threads: int = 2) -> np.ndarray:
    """Encoder states [n_audio_ctx, d] for one mel [n_mels, 3000]."""
    s = path_or_session if hasattr(path_or_session, "run") else session(path_or_session, threads=threads)
    x = np.ascontiguousarray(mel, np.float32).reshape(1, *mel.shape[-2:])
    return s.run([s.get_outputs()[0].name], {s.get_inputs()[0].name: x})[0][0]


def activations(path: PathLike, mel: np.ndarray, names: Sequence[str], *, threads: int = 2) -> dict[str, np.ndarray]:
    """The values of the named tensors for one window."""
    s = session(path, threads=threads, outputs=names)
    x = np.ascontiguousarray(mel, np.float32).reshape(1, *mel.shape[-2:])
    vals = s.run(list(names), {s.get_inputs()[0].name: x})
    return dict(zip(names, vals))


# -- calibration ranges -------------------------------------------------------------------------

def collect_ranges(prepared: PathLike, mels: Iterable[np.ndarray], *, cache: Optional[PathLike] = None,
                   threads: int = 2) -> dict[str, tuple[float, float]]:
    """Min and max of every role-tagged tensor over the calibration windows (JSON-cached)."""
    if cache is not None and pathlib.Path(cache).is_file():
        data = json.loads(pathlib.Path(cache).read_text())
        if data.get("model_size") == pathlib.Path(prepared).stat().st_size:
            return {k: (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}
    names = list(tensor_roles(prepared))
    s = session(prepared, threads=threads, outputs=names)
    inp = s.get_inputs()[0].name
    ranges: dict[str, tuple[float, float]] = {}
    for mel in mels:
        x = np.ascontiguousarray(mel, np.float32).reshape(1, *mel.shape[-2:])
        for name, v in zip(names, s.run(names, {inp: x})):
            lo, hi = float(v.min()), float(v.max())
            if name in ranges:
                lo, hi = min(lo, ranges[name][0]), max(hi, ranges[name][1])
            ranges[name] = (lo, hi)
    if cache is not None:
        pathlib.Path(cache).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(cache).write_text(json.dumps({"model_size": pathlib.Path(prepared).stat().st_size,
                                                   "ranges": ranges}))
    return ranges


# -- quantization -----------------------------------------------------------------------------

def quantize(prepared: PathLike, out: PathLike, scheme: Scheme, ranges: Mapping[str, tuple[float, float]]) -> pathlib.Path:
    """Writes the QDQ encoder of `scheme` (static) or its weight-only form, in the ONNX domain only."""
    model = load(prepared)
    if not is_prepared(model):
        raise WhisperGenioError(f"{prepared}: not a prepared graph (opset >= {QDQ_OPSET}, ONNX domain only): run "
                                "onnx_qdq.prepare() on the float encoder first")
    if scheme.kind == "weight_only":
        return weight_only(model, out, bits=scheme.weight_bits, per_channel=scheme.per_channel)
    if scheme.kind != "static":
        raise WhisperGenioError(f"scheme {scheme.name} is not a quantization")
    q = _need("onnxruntime.quantization")
    calib = _need("onnxruntime.quantization.calibrate")
    import tempfile

    roles = tensor_roles(model)
    default16 = scheme.activation_bits == 16
    t8 = {"quant_type": q.QuantType.QUInt8, "symmetric": False}
    t16 = {"quant_type": q.QuantType.QInt16, "symmetric": True}
    overrides: dict[str, list] = {}
    excluded = list(bias_adds(model))
    for name, role in roles.items():
        bits = scheme.bits(role)
        if bits >= 32:
            continue
        if (bits == 16) != default16:
            overrides[name] = [dict(t16 if bits == 16 else t8)]
    float_roles = {n for n, r in roles.items() if scheme.bits(r) >= 32}
    producer = {o: n for n in model.graph.node for o in n.output}
    excluded += sorted({producer[n].name for n in float_roles if n in producer})
    data = calib.TensorsData(q.CalibrationMethod.MinMax, {
        k: calib.TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in ranges.items()})
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"ActivationSymmetric": default16, "WeightSymmetric": True, "UseQDQContribOps": False,
             "OpTypesToExcludeOutputQuantization": ["MatMul"],
             "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
             "TensorQuantOverrides": overrides}
    import logging

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cache = pathlib.Path(tmp) / "ranges.json"
            calib.save_tensors_data(data, cache)
            q.quantize_static(os.fspath(prepared), os.fspath(out), None, quant_format=q.QuantFormat.QDQ,
                              op_types_to_quantize=list(OP_TYPES), per_channel=scheme.per_channel,
                              activation_type=q.QuantType.QInt16 if default16 else q.QuantType.QUInt8,
                              weight_type=q.QuantType.QInt8, nodes_to_exclude=excluded,
                              calibrate_method=q.CalibrationMethod.MinMax, extra_options=extra,
                              calibration_cache_path=cache)
    finally:
        logging.getLogger().setLevel(level)
    return out


def weight_only(prepared: PathLike, out: PathLike, *, bits: int = 8, per_channel: bool = True) -> pathlib.Path:
    """Weight-only int8: every MatMul/Conv weight stored as int8 with a DequantizeLinear in front
    (symmetric, per output channel); activations and arithmetic stay float."""
    onnx = _need("onnx")
    from onnx import numpy_helper

    if bits != 8:
        raise WhisperGenioError("weight-only ONNX export supports 8-bit weights")
    model = load(prepared)
    inits = {i.name: i for i in model.graph.initializer}
    new_nodes = []
    done: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Conv") and len(node.input) > 1 and node.input[1] in inits:
            w_name = node.input[1]
            if w_name not in done:
                w = numpy_helper.to_array(inits[w_name]).astype(np.float32)
                axis = (1 if node.op_type == "MatMul" else 0) if per_channel else None
                if axis is None:
                    amax = np.array(np.abs(w).max(), np.float32)
                else:
                    red = tuple(i for i in range(w.ndim) if i != axis)
                    amax = np.abs(w).max(axis=red).astype(np.float32)
                scale = np.maximum(amax, 1e-12) / 127.0
                shape = [1] * w.ndim
                if axis is not None:
                    shape[axis] = -1
                wq = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
                qn, sn, zn, dn = w_name + "_q", w_name + "_scale", w_name + "_zp", w_name + "_dq"
                model.graph.initializer.extend([numpy_helper.from_array(wq, qn), numpy_helper.from_array(scale, sn),
                                                numpy_helper.from_array(np.zeros(scale.shape, np.int8), zn)])
                attrs = {"axis": axis} if axis is not None else {}
                new_nodes.append(onnx.helper.make_node("DequantizeLinear", [qn, sn, zn], [dn], name=dn, **attrs))
                done[w_name] = dn
            node.input[1] = done[w_name]
        new_nodes.append(node)
    keep = [i for i in model.graph.initializer if i.name not in done]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, os.fspath(out))
    return out


def io_quantization(path: PathLike) -> dict[str, Any]:
    """dtype/scale/zero point of the encoder input and output inside a QDQ graph (the first
    QuantizeLinear after the input, the last DequantizeLinear before the output); float32 when
    there is none."""
    from onnx import numpy_helper

    model = load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
              if n.op_type == "Constant" and n.attribute}
    inits.update(consts)
    inp, outp = model.graph.input[0].name, model.graph.output[0].name
    result = {"input": {"dtype": "float32"}, "output": {"dtype": "float32"}}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] == inp:
            result["input"] = _qparams(inits, n)
        if n.op_type == "DequantizeLinear" and n.output[0] == outp:
            result["output"] = _qparams(inits, n)
    return result


def _qparams(inits: Mapping[str, np.ndarray], node: Any) -> dict[str, Any]:
    scale = inits.get(node.input[1])
    zp = inits.get(node.input[2]) if len(node.input) > 2 else None
    dtype = np.dtype(zp.dtype).name if zp is not None else "int8"
    return {"dtype": dtype, "scale": float(np.asarray(scale).ravel()[0]),
            "zero_point": int(np.asarray(zp).ravel()[0]) if zp is not None else 0}
