"""Export a Whisper encoder to ONNX with a fixed [1, n_mels, 3000] input.

    from whisper_genio.tools.export_onnx import export_encoder_onnx
    export_encoder_onnx("base", "encoder.onnx")            # a size name, a path, or a Checkpoint

The graph is openai-whisper's own ``AudioEncoder`` holding the checkpoint's weights (read by
whisper_genio's torch-free loaders), exported by ``torch.onnx`` with input ``mel``
[1, n_mels, 3000] float32 and output ``states`` [1, n_audio_ctx, n_audio_state] float32: static
shapes, as MediaTek's NeuronExecutionProvider and ncc-tflite need. From opset 17 on, LayerNorm
is one ``LayerNormalization`` node (its mean, variance and rsqrt stay inside the op, so a QDQ
quantizer cannot put them on an integer grid). torch, onnx and openai-whisper are export-time
dependencies only (``pip install 'whisper_genio[export]'``); running the exported file needs
only onnxruntime. ``whisper_genio.tools.export`` adds TFLite and the model bundle.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any, Mapping, Sequence, Union

import numpy as np

from ..errors import InvalidOptionError, WhisperGenioError

INPUT_NAME = "mel"
OUTPUT_NAME = "states"


def _need(module: str, extra: str = "export") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise WhisperGenioError(f"this needs {module.split('.')[0]} ({e}): pip install 'whisper_genio[{extra}]'") from None


def checkpoint_of(model_name_or_checkpoint: Any) -> Any:
    from ..checkpoints import Checkpoint, resolve

    if isinstance(model_name_or_checkpoint, Checkpoint):
        return model_name_or_checkpoint
    return resolve(model_name_or_checkpoint)


class explicit_attention:
    """Within the block, openai-whisper's attention is written out (q·k, softmax, ·v with constant
    scales) instead of torch's fused scaled_dot_product_attention, whose export computes its scale
    from the tensor's shape at run time: exporters then emit one plain op per step, each of which a
    quantizer can see and a report can name."""

    def __enter__(self) -> None:
        whisper_model = _need("whisper.model")
        self._mha = whisper_model.MultiHeadAttention
        self._saved = getattr(self._mha, "use_sdpa", None)
        if self._saved is not None:
            self._mha.use_sdpa = False

    def __exit__(self, *exc: Any) -> None:
        if self._saved is not None:
            self._mha.use_sdpa = self._saved


def strip_float_casts(model: Any) -> Any:
    """Removes Cast(to=float) nodes (openai-whisper's ``x.float()`` on float32 tensors) in place;
    a cast that produced a graph output hands that name to the tensor it copied."""
    onnx = _need("onnx")
    float_id = onnx.TensorProto.FLOAT
    graph_inputs = {i.name for i in model.graph.input}
    graph_outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    drop = []
    for node in model.graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type != "Cast" or to != float_id:
            continue
        src, dst = node.input[0], node.output[0]
        if dst in graph_outputs:
            if src in graph_inputs or src in graph_outputs:
                continue
            rename[src] = dst  # the producer now writes the output itself
        else:
            rename[dst] = src
        drop.append(node)
    def resolve(name: str) -> str:
        seen = set()
        while name in rename and name not in seen:
            seen.add(name)
            name = rename[name]
        return name
    keep = [n for n in model.graph.node if not any(n is d for d in drop)]
    for n in keep:
        for field in (n.input, n.output):
            names = [resolve(x) if x else x for x in field]
            del field[:]
            field.extend(names)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def freeze_shapes(model: Any) -> int:
    """Gives every Reshape whose target shape is computed at run time (Shape -> Slice -> Concat, from
    openai-whisper's ``view(*x.shape[:2], ...)``) a constant target: the shape ONNX's shape inference
    propagates from the fixed input. The same tensor results (Reshape to the shape it already got);
    the graph then has static shapes throughout, as MediaTek's NeuronExecutionProvider needs, and
    the shape arithmetic, now unused, is dropped. Returns the number of Reshapes frozen."""
    onnx = _need("onnx")
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    g = inferred.graph
    shapes = {vi.name: [d.dim_value if d.HasField("dim_value") else 0 for d in vi.type.tensor_type.shape.dim]
              for vi in list(g.value_info) + list(g.output) + list(g.input)}
    consts = {t.name for t in model.graph.initializer} | {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    frozen = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] in consts:
            continue
        out = shapes.get(node.output[0])
        if not out or any(d <= 0 for d in out):
            continue  # not inferable: leave it (neuron_ep_problems will name it)
        name = f"{node.output[0]}__shape"
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(out, np.int64), name))
        node.input[1] = name
        frozen += 1
    outputs = {o.name for o in model.graph.output}
    while True:  # drop what nothing reads any more
        used = {i for n in model.graph.node for i in n.input} | outputs
        keep = [n for n in model.graph.node if any(o in used for o in n.output)]
        if len(keep) == len(model.graph.node):
            break
        del model.graph.node[:]
        model.graph.node.extend(keep)
    used = {i for n in model.graph.node for i in n.input}
    inits = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    del model.graph.value_info[:]  # stale symbolic shapes; inference recomputes them
    return frozen


def torch_encoder(ckpt: Any) -> Any:
    """openai-whisper's AudioEncoder (float32, eval mode) holding the checkpoint's encoder weights."""
    torch = _need("torch")
    whisper_model = _need("whisper.model")
    dims = ckpt.dims
    encoder = whisper_model.AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                                         dims.n_audio_layer)
    state = {name[len("encoder."):]: torch.from_numpy(np.array(value, dtype=np.float32))
             for name, value in ckpt.tensors.items() if name.startswith("encoder.")}
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    return encoder


def export_encoder_onnx(model_name_or_checkpoint: Any, path: Union[str, os.PathLike], opset: int = 17, *,
                        manifest: bool = False) -> pathlib.Path:
    """Writes the encoder of `model_name_or_checkpoint` to `path` (ONNX); returns the path.

    manifest: also write a model-bundle ``manifest.json`` beside it describing the file (its
    folder then loads as ``encoder_model=<folder>``).
    """
    if not isinstance(opset, int) or opset < 17:
        raise InvalidOptionError(f"opset must be an integer >= 17 (LayerNormalization), got {opset!r}")
    torch = _need("torch")
    _need("onnx")
    ckpt = checkpoint_of(model_name_or_checkpoint)
    dims = ckpt.dims
    encoder = torch_encoder(ckpt)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mel = torch.zeros(1, dims.n_mels, 2 * dims.n_audio_ctx, dtype=torch.float32)
    onnx = _need("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        with torch.no_grad(), explicit_attention():
            torch.onnx.export(encoder, (mel,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, do_constant_folding=True, dynamo=False)
    proto = onnx.load(str(path))
    proto = strip_float_casts(proto)
    freeze_shapes(proto)
    onnx.save(proto, str(path))
    if manifest:
        from ..backends.bundle import make_manifest, write_manifest

        name = str(model_name_or_checkpoint) if isinstance(model_name_or_checkpoint, (str, os.PathLike)) else ""
        write_manifest(path.parent, make_manifest(dims, model=name, onnx={"file": path.name, "opset": opset,
                                                                          "exporter": "torch.onnx (TorchScript)"}))
    return path


# Integer forms other than QDQ (MediaTek's NeuronEP guide: INT8 models must be static QDQ).
_NOT_QDQ = ("QLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul")
# What the ONNX Runtime of IoT Yocto v26 (1.20.2) reads: opsets up to 21, IR versions up to 10
# (ONNX 1.16; ONNX Runtime's compatibility table).
ORT_BOARD_VERSION, ORT_BOARD_MAX_OPSET, ORT_BOARD_MAX_IR = "1.20.2", 21, 10
_PRODUCTS = ("MatMul", "Conv", "Gemm")
REFUSED, NOTE = "refused", "note"


def neuron_ep_findings(model_or_path: Any) -> list[tuple[str, str]]:
    """What MediaTek's NeuronExecutionProvider (ONNX Runtime 1.20.2 on IoT Yocto v26) is reported
    to refuse in an ONNX graph, and what it will run differently, as (level, message) pairs
    (board-reports.md, neuron-runtime.md 5.1). Level REFUSED: default-domain opset < 13 (Softmax)
    or newer than that ONNX Runtime reads (opset > 21, IR > 10), a tensor whose shape is not static
    (after shape inference), integer arithmetic that is not QDQ (QLinear*/…Integer/dynamic
    quantization), ops outside the ONNX domain (ONNX Runtime's com.microsoft contrib ops, which
    the EP is not known to take). Level NOTE: float32 arithmetic (the EP runs it in FP16:
    NEURON_FLAG_USE_FP16 is mandatory), and matrix products that are not a whole QDQ unit
    (dequantized inputs beside float ones, or an output that is not quantized again), which the
    EP cannot map to one integer op as they stand."""
    onnx = _need("onnx")
    model = onnx.load(os.fspath(model_or_path)) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    found: list[tuple[str, str]] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < 13:
        found.append((REFUSED, f"opset {opset}: Softmax below opset 13 is refused (export with opset >= 13)"))
    elif opset > ORT_BOARD_MAX_OPSET:
        found.append((REFUSED, f"opset {opset}: ONNX Runtime {ORT_BOARD_VERSION} (IoT Yocto v26) reads opsets up to "
                               f"{ORT_BOARD_MAX_OPSET}"))
    if model.ir_version > ORT_BOARD_MAX_IR:
        found.append((REFUSED, f"IR version {model.ir_version}: ONNX Runtime {ORT_BOARD_VERSION} reads IR versions up "
                               f"to {ORT_BOARD_MAX_IR}"))
    found += [(REFUSED, p) for p in _dynamic_shapes(onnx, model)]
    not_qdq = sorted({n.op_type for n in model.graph.node if n.op_type.startswith(_NOT_QDQ)})
    if not_qdq:
        found.append((REFUSED, f"integer ops that are not QDQ: {', '.join(not_qdq)} (quantize statically to "
                               "QuantizeLinear/DequantizeLinear pairs)"))
    contrib = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if contrib:
        found.append((REFUSED, f"ops outside the ONNX domain ({', '.join(contrib)}; ONNX Runtime contrib ops such as "
                               "com.microsoft QuantizeLinear for int16 below opset 21, or a fused Gelu): the "
                               "NeuronExecutionProvider is not known to take them"))
    found += [(NOTE, p) for p in _qdq_units(model)]
    return found


def neuron_ep_problems(model_or_path: Any) -> list[str]:
    """The REFUSED findings of neuron_ep_findings. Empty: nothing known to be refused."""
    return [m for level, m in neuron_ep_findings(model_or_path) if level == REFUSED]


def _dynamic_shapes(onnx: Any, model: Any) -> list[str]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a graph shape inference cannot follow: judge the declared shapes
        inferred = model
    g = inferred.graph
    inits = {t.name for t in g.initializer}
    dynamic = []
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim] \
            if t.HasField("shape") else None
        if dims is None or any(not isinstance(d, int) or d <= 0 for d in dims):
            dynamic.append(f"{vi.name} {dims if dims is not None else '(no shape)'}")
    if not dynamic:
        return []
    return [f"{len(dynamic)} tensor(s) without a static shape (fix the shapes at export): "
            + ", ".join(dynamic[:5]) + (" ..." if len(dynamic) > 5 else "")]


def _qdq_units(model: Any) -> list[str]:
    """Notes on the matrix products (MatMul/Conv/Gemm): float ones, and QDQ units left open."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {t.name for t in model.graph.initializer}
    dq = lambda name: getattr(producer.get(name), "op_type", "") == "DequantizeLinear"  # noqa: E731
    quantized_next = lambda name: any(c.op_type == "QuantizeLinear" for c in consumers.get(name, []))  # noqa: E731
    floats, float_weights, partial, open_out, bias_then_q = 0, 0, [], [], []
    for n in model.graph.node:
        if n.op_type not in _PRODUCTS:
            continue
        ins = [i for i in n.input[:2] if i]
        deq = [dq(i) for i in ins]
        if not any(deq):
            floats += 1
            float_weights += any(i in inits for i in ins)
        elif not all(deq):
            partial.append(n.name or n.op_type)
        elif not quantized_next(n.output[0]):
            (bias_then_q if _quantized_after_steps(n.output[0], consumers, inits) else open_out).append(n.name or n.op_type)
    notes = []
    if floats:
        notes.append(f"{floats} matrix product(s) in float32 ({float_weights} with float32 weights): the provider runs "
                     "them in FP16 (NEURON_FLAG_USE_FP16 is mandatory; the NPU has no FP32)")
    if partial:
        notes.append(f"{len(partial)} matrix product(s) read a dequantized input beside a float one (no QDQ unit; "
                     f"weight-only): dequantized and run in FP16, not as integer ops ({', '.join(partial[:3])} ...)")
    if bias_then_q:
        notes.append(f"{len(bias_then_q)} quantized matrix product(s) quantize their output only after the bias Add "
                     "or a Reshape/Transpose (DQ -> MatMul -> Add -> Q, one step like a fused FULLY_CONNECTED): "
                     "whether the provider takes them as one integer op is unconfirmed "
                     f"({', '.join(bias_then_q[:3])} ...)")
    if open_out:
        notes.append(f"{len(open_out)} quantized matrix product(s) whose output is never quantized again: the "
                     f"product runs in FP16 on dequantized inputs ({', '.join(open_out[:3])} ...)")
    return notes


_STEPS = ("Add", "Mul", "Reshape", "Transpose")


def _quantized_after_steps(name: str, consumers: Mapping[str, list], inits: set) -> bool:
    """Whether `name` reaches a QuantizeLinear through single-consumer bias/scale (with a constant)
    and layout steps only."""
    for _ in range(8):
        after = consumers.get(name, [])
        if any(c.op_type == "QuantizeLinear" for c in after):
            return True
        if len(after) != 1 or after[0].op_type not in _STEPS:
            return False
        step = after[0]
        if step.op_type in ("Add", "Mul") and not any(i in inits for i in step.input):
            return False
        name = step.output[0]
    return False


def format_neuron_ep_report(path: Any, findings: Sequence[tuple[str, str]]) -> str:
    """The readable form of neuron_ep_findings for one file."""
    refused = sum(level == REFUSED for level, _ in findings)
    head = (f"NeuronExecutionProvider pre-flight, {path}: "
            + (f"{refused} thing(s) it is reported to refuse" if refused else "nothing it is reported to refuse"))
    return "\n".join([head] + [f"  [{level}] {m}" for level, m in findings])


def neuron_ep_record(path: Any, log: Any = None) -> dict[str, list[str]]:
    """Runs neuron_ep_findings on a graph just written, says the report through `log`, and returns
    the manifest's record of it ({"refused": [...], "notes": [...]})."""
    findings = neuron_ep_findings(path)
    if log is not None:
        log(format_neuron_ep_report(pathlib.Path(path).name, findings))
    return {"refused": [m for level, m in findings if level == REFUSED],
            "notes": [m for level, m in findings if level == NOTE]}
