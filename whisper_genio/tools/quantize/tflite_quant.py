"""Quantized TFLite encoders (ai-edge-quantizer), run by the LiteRT interpreter on the host.

    roles = tensor_roles("encoder.tflite")                        # tensor name -> Role
    qsvs = collect_qsvs("encoder.tflite", windows, cache="work/tflite_qsvs.json")
    quantize("encoder.tflite", "encoder.a16w8.tflite", parse_scheme("a16w8"), qsvs)
    states = run("encoder.a16w8.tflite", mel)                     # [1500, d]

The TFLite encoder is what ``ncc-tflite`` compiles for the MDLA, so this is the path that
reaches the NPU; LiteRT's integer kernels (int8, and int16x8 for 16-bit activations) stand in for
the NPU's arithmetic. Roles come from the graph's structure (litert-torch's tensor names are not
stable): the conv stem, then per block the LayerNorm split into statistics ops and normalising
ops, the projections, q·kᵀ, softmax, ·v, out-projection, residual adds, fc1, GELU, fc2.

The split LayerNorm's statistics (MEAN, SQUARED_DIFFERENCE, the variance's MEAN, +eps, RSQRT,
and the per-frame MUL/SUB) stay float in every scheme (``ln_stats``): squaring the residual
stream's outlier gives ~3e5, which breaks even 16-bit activations (host-quant-study.md), and
ai-edge-quantizer has no int16 SQUARED_DIFFERENCE. On the MDLA those few ops run in FP16
(``--relax-fp32``). Calibration statistics (min/max of every tensor over the calibration windows)
are computed here in one pass per window and cached as JSON, so calibrating is minutes, not the
40 minutes ai-edge-quantizer's own calibrator took in the study.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Union

import numpy as np

from ...errors import WhisperGenioError
from .litert import interpreter, run_float
from .schemes import LN_STATS, Role, Scheme

PathLike = Union[str, os.PathLike]
# Bumped when recipe() writes different files for the same scheme (tools/quant_study.py measures
# its cached TFLite rows again). 2: the split LayerNorm's normalising ops take the residual's bits.
RECIPE_REVISION = 2
_PASS = ("RESHAPE", "TRANSPOSE", "PAD", "SQUEEZE", "EXPAND_DIMS")


def _aeq() -> Any:
    try:
        import ai_edge_quantizer  # type: ignore
    except ImportError as e:
        raise WhisperGenioError(f"TFLite quantization needs ai-edge-quantizer ({e}): "
                                "pip install 'whisper_genio[quantize]'") from None
    return ai_edge_quantizer


class Graph:
    """Ops (in execution order) and tensors of a TFLite model, read through the interpreter."""

    def __init__(self, path: PathLike) -> None:
        self.path = pathlib.Path(path)
        it = interpreter(path)
        self.tensors = {int(t["index"]): t for t in it.get_tensor_details()}
        self.ops = [o for o in it._get_ops_details() if o["op_name"] != "DELEGATE"]
        self.input = int(it.get_input_details()[0]["index"])
        self.output = int(it.get_output_details()[0]["index"])
        self.producer = {int(o["outputs"][0]): o for o in self.ops if len(o["outputs"])}
        del it

    def name(self, index: int) -> str:
        return self.tensors[int(index)]["name"]

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(x) for x in self.tensors[int(index)]["shape"])

    def is_constant(self, index: int) -> bool:
        return int(index) not in self.producer and int(index) != self.input


def tensor_roles(path_or_graph: Any, n_layer: Optional[int] = None) -> dict[str, Role]:
    """Role of every activation tensor (by name) of a float or quantized encoder TFLite."""
    g = path_or_graph if isinstance(path_or_graph, Graph) else Graph(path_or_graph)
    if n_layer is None:
        lns = sum(1 for o in g.ops if o["op_name"] == "SQUARED_DIFFERENCE")
        n_layer = max(0, (lns - 1) // 2)
    walk = _RoleWalk(g, n_layer)
    for op in g.ops:
        walk.visit(op)
    return {g.name(t): r for t, r in walk.roles.items()}


class _Op(NamedTuple):
    """One op as the role walk sees it."""
    kind: str
    index: int
    acts: list[int]      # its non-constant inputs
    out: int             # its first output
    src: list[Role]      # the roles of its inputs that have one
    stats_like: bool     # its output is a scalar or [..., 1] (LayerNorm statistics)


class _RoleWalk:
    """The walk of tensor_roles over the ops in execution order, and what it carries from op to op:
    where it is (stem, block, which LayerNorm) and which FC op each projection tensor comes from."""

    def __init__(self, g: Graph, n_layer: int) -> None:
        self.g = g
        self.n_layer = n_layer
        self.roles: dict[int, Role] = {g.input: Role(-1, "mel")}
        self.fc_of: dict[int, int] = {}  # tensor -> index of the FC op it comes from (through pass-through ops)
        self.convs = self.gelus_stem = 0
        self.ln_count = -1
        self.block = -1
        self.in_stem = True
        self.ln_role = "ln1"

    def set_role(self, t: int, r: Role) -> None:
        self.roles[int(t)] = r

    def retag_fc(self, fc_index: int, r: Role) -> None:
        for t, f in self.fc_of.items():
            if f == fc_index:
                self.roles[t] = r

    def visit(self, op: Mapping[str, Any]) -> None:
        if not len(op["outputs"]):
            return
        ins = [int(i) for i in op["inputs"] if int(i) >= 0]
        acts = [i for i in ins if not self.g.is_constant(i)]
        out = int(op["outputs"][0])
        shape = self.g.shape(out)
        o = _Op(op["op_name"], op["index"], acts, out, [self.roles[i] for i in acts if i in self.roles],
                len(shape) <= 1 or shape[-1] == 1)
        for step in (self._pass_through, self._stem_or_gelu, self._layer_norm, self._projection, self._attention):
            if step(o):
                return
        self._rest(o)

    def _pass_through(self, o: _Op) -> bool:
        """Reshapes and the like keep their input's role (and FC origin)."""
        if o.kind not in _PASS:
            return False
        if o.src:
            self.set_role(o.out, o.src[0])
        if o.acts and o.acts[0] in self.fc_of:
            self.fc_of[o.out] = self.fc_of[o.acts[0]]
        return True

    def _stem_or_gelu(self, o: _Op) -> bool:
        """The conv stem (two convolutions, two GELUs, the positional ADD that ends it) and the
        blocks' GELUs."""
        if o.kind == "CONV_2D":
            self.convs += 1
            self.set_role(o.out, Role(-1, "conv1" if self.convs == 1 else "conv2"))
        elif o.kind == "GELU":
            if self.in_stem:
                self.gelus_stem += 1
                self.set_role(o.out, Role(-1, "gelu1" if self.gelus_stem == 1 else "gelu2"))
            else:
                self.set_role(o.out, Role(self.block, "gelu"))
        elif self.in_stem and o.kind == "ADD":
            self.set_role(o.out, Role(-1, "pos"))
            self.in_stem = False
        else:
            return False
        return True

    def _layer_norm(self, o: _Op) -> bool:
        """The split LayerNorm: a MEAN of a non-statistics tensor starts the next one (ln1, ln2 per
        block, then ln_post); its statistics ops, its normalising op, its affine ops."""
        kind, src = o.kind, o.src
        if kind == "MEAN" and src and src[0].role != LN_STATS:
            self.ln_count += 1
            self.block = self.ln_count // 2
            self.ln_role = ("ln_post" if self.ln_count >= 2 * self.n_layer else
                            ("ln1" if self.ln_count % 2 == 0 else "ln2"))
            if self.ln_role == "ln_post":
                self.block = self.n_layer
            self.set_role(o.out, Role(self.block, LN_STATS))
        elif kind in ("SQUARED_DIFFERENCE", "RSQRT", "MEAN") or (o.stats_like and kind in ("ADD", "SUB", "MUL", "DIV")):
            self.set_role(o.out, Role(self.block, LN_STATS))
        elif kind in ("MUL", "ADD", "SUB") and any(r.role == LN_STATS for r in src):
            self.set_role(o.out, Role(self.block, self.ln_role))  # the normalising op
        elif kind in ("MUL", "ADD") and src and all(r.role in ("ln1", "ln2", "ln_post") for r in src):
            self.set_role(o.out, Role(src[0].block, src[0].role))  # the affine ops
        else:
            return False
        return True

    def _projection(self, o: _Op) -> bool:
        """FULLY_CONNECTED: its role from its input's (q/k/v after ln1, attn_out, fc1, fc2)."""
        if o.kind != "FULLY_CONNECTED":
            return False
        r0 = o.src[0].role if o.src else ""
        if r0 == "ln1":
            self.set_role(o.out, Role(self.block, "v"))  # provisional: q/k/v decided at the attention products
            self.fc_of[o.out] = o.index
        elif r0 == "pv":
            self.set_role(o.out, Role(self.block, "attn_out"))
        elif r0 == "ln2":
            self.set_role(o.out, Role(self.block, "fc1"))
        elif r0 == "gelu":
            self.set_role(o.out, Role(self.block, "fc2"))
        return True

    def _attention(self, o: _Op) -> bool:
        """q·kᵀ, softmax, ·v; the products name the projections that feed them q, k and v."""
        if o.kind == "BATCH_MATMUL":
            if o.src and o.src[0].role == "softmax":
                self.set_role(o.out, Role(self.block, "pv"))
                if len(o.acts) > 1 and o.acts[1] in self.fc_of:
                    self.retag_fc(self.fc_of[o.acts[1]], Role(self.block, "v"))
            else:
                self.set_role(o.out, Role(self.block, "qk"))
                for t, name in zip(o.acts[:2], ("q", "k")):
                    if t in self.fc_of:
                        self.retag_fc(self.fc_of[t], Role(self.block, name))
        elif o.kind == "SOFTMAX":
            self.set_role(o.out, Role(self.block, "softmax"))
        else:
            return False
        return True

    def _rest(self, o: _Op) -> None:
        """Scaling by a constant keeps the role; an ADD of two roles is a residual; anything else
        takes its first input's role."""
        if o.kind == "MUL" and o.src and len(o.acts) == 1:
            self.set_role(o.out, o.src[0])  # scaling by a constant
            if o.acts[0] in self.fc_of:
                self.fc_of[o.out] = self.fc_of[o.acts[0]]
        elif o.kind == "ADD" and len(o.src) == 2:
            other = {r.role for r in o.src}
            self.set_role(o.out, Role(self.block, "resid1" if "attn_out" in other else "resid2"))
        elif o.src:
            self.set_role(o.out, o.src[0])


# -- calibration ------------------------------------------------------------------------------

def activation_min_max(path: PathLike, inputs: Iterable[np.ndarray], *, threads: int = 2,
                       margin: float = 1.0) -> dict[str, dict[str, np.ndarray]]:
    """Min/max of every float activation tensor of a one-input TFLite over `inputs` (each exactly
    the model's input shape), widened by `margin`, in ai-edge-quantizer's calibration format."""
    g = Graph(path)
    it = interpreter(path, threads=threads, preserve_all_tensors=True)
    names = {t: g.name(t) for t in g.tensors if not g.is_constant(t) and
             np.dtype(g.tensors[t]["dtype"]) == np.float32}
    acc: dict[str, tuple[float, float, int]] = {}
    for x in inputs:
        it.set_tensor(g.input, np.ascontiguousarray(x, np.float32))
        it.invoke()
        for t, name in names.items():
            try:
                v = it.get_tensor(t)
            except ValueError:
                continue
            lo, hi = float(v.min()), float(v.max())
            if name in acc:
                lo, hi = min(lo, acc[name][0]), max(hi, acc[name][1])
            acc[name] = (lo, hi, len(g.shape(t)))
    return {k: {"min": np.full((1,) * nd, margin * lo, np.float32), "max": np.full((1,) * nd, margin * hi, np.float32)}
            for k, (lo, hi, nd) in acc.items()}


def collect_qsvs(path: PathLike, mels: Iterable[np.ndarray], *, cache: Optional[PathLike] = None,
                 threads: int = 2) -> dict[str, dict[str, np.ndarray]]:
    """ai-edge-quantizer's calibration result ({tensor name: {"min", "max"}}: min-max over all
    windows) computed with one interpreter pass per window; cached as JSON."""
    size = pathlib.Path(path).stat().st_size
    if cache is not None and pathlib.Path(cache).is_file():
        data = json.loads(pathlib.Path(cache).read_text())
        if data.get("model_size") == size:
            return {k: {"min": np.array(v["min"], np.float32).reshape(v["shape"]),
                        "max": np.array(v["max"], np.float32).reshape(v["shape"])} for k, v in data["qsvs"].items()}
    qsvs = activation_min_max(path, (np.ascontiguousarray(m, np.float32).reshape(1, *m.shape[-2:]) for m in mels),
                              threads=threads)
    if cache is not None:
        pathlib.Path(cache).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(cache).write_text(json.dumps({"model_size": size, "qsvs": {
            k: {"min": float(v["min"].ravel()[0]), "max": float(v["max"].ravel()[0]), "shape": list(v["min"].shape)}
            for k, v in qsvs.items()}}))
    return qsvs


# -- quantization -------------------------------------------------------------------------------

def op_bits(g: Graph, scheme: Scheme, roles: Optional[Mapping[str, Role]] = None) -> list[tuple[dict, int]]:
    """(op, activation bits of its quantization config) for every op whose output has a role.

    An op's config sets the bits of its inputs *and* its output, and ai-edge-quantizer inserts a
    QUANTIZE (requantize) where a consumer wants other bits than the producer wrote. The split
    LayerNorm's normalising ops (x·rsqrt(var), + (−mean·rsqrt(var))) read the residual stream and
    the per-frame statistics, so they take the bits of the residual they read when that is wider
    than the LayerNorm output's: an 8-bit LayerNorm output then means what it means on the ONNX
    path (one fused op reading a 16-bit residual and writing 8 bits), not an 8-bit residual
    stream and 8-bit statistics, which is the A8W8 failure again (the residual's outlier channel)."""
    roles = tensor_roles(g) if roles is None else roles
    written: dict[int, int] = {}  # tensor -> bits of the op that wrote it (pass-through ops keep them)
    out = []
    for op in g.ops:
        if not len(op["outputs"]):
            continue
        t_out = int(op["outputs"][0])
        role = roles.get(g.name(t_out))
        ins = [int(i) for i in op["inputs"] if int(i) >= 0 and not g.is_constant(int(i))]
        if role is None:
            continue
        bits = scheme.bits(role)
        in_roles = [roles.get(g.name(i)) for i in ins]
        if bits < 32 and role.group in ("ln", "output") and op["op_name"] not in _PASS \
                and any(r is not None and r.role == LN_STATS for r in in_roles):
            for i, r in zip(ins, in_roles):
                if r is None or r.role == LN_STATS:
                    continue
                src = scheme.bits(r) if r.group == "resid" else written.get(i, bits)
                bits = max(bits, src if src < 32 else bits)
        if op["op_name"] in _PASS and ins and ins[0] in written:
            bits = written[ins[0]]
        written[t_out] = bits
        out.append((op, bits))
    return out


def recipe(path_or_graph: Any, scheme: Scheme) -> list[dict[str, Any]]:
    """The ai-edge-quantizer recipe for `scheme`: a default entry for every op, then one entry per
    op whose role needs other bits (or float: the LayerNorm statistics)."""
    aeq = _aeq()
    rm = aeq.recipe_manager.RecipeManager()
    q = aeq.qtyping
    g = path_or_graph if isinstance(path_or_graph, Graph) else Graph(path_or_graph)
    gran = q.QuantGranularity.CHANNELWISE if scheme.per_channel else q.QuantGranularity.TENSORWISE
    if scheme.kind == "weight_only":
        rm.add_weight_only_config(regex=".*", operation_name=q.TFLOperationName.ALL_SUPPORTED,
                                  num_bits=scheme.weight_bits, granularity=gran)
        return rm.get_quantization_recipe()
    if scheme.kind != "static":
        raise WhisperGenioError(f"scheme {scheme.name} is not a quantization")
    rm.add_static_config(regex=".*", operation_name=q.TFLOperationName.ALL_SUPPORTED,
                         activation_num_bits=scheme.activation_bits, weight_num_bits=scheme.weight_bits,
                         weight_granularity=gran)
    roles = tensor_roles(g)
    for op, bits in op_bits(g, scheme, roles):
        name = g.name(op["outputs"][0])
        if bits == scheme.activation_bits:
            continue
        regex = "^" + re.escape(name) + ";$"
        opname = q.TFLOperationName(op["op_name"]) if op["op_name"] in q.TFLOperationName._value2member_map_ \
            else q.TFLOperationName.ALL_SUPPORTED
        if bits >= 32:
            rm.add_quantization_config(regex, opname, None, aeq.algorithm_manager.AlgorithmName.NO_QUANTIZE)
        else:
            rm.add_static_config(regex=regex, operation_name=opname, activation_num_bits=bits,
                                 weight_num_bits=scheme.weight_bits, weight_granularity=gran)
    return rm.get_quantization_recipe()


def quantize(path: PathLike, out: PathLike, scheme: Scheme,
             qsvs: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None) -> pathlib.Path:
    """Writes the quantized TFLite encoder for `scheme` (static schemes need `qsvs`)."""
    aeq = _aeq()
    import contextlib
    import io

    g = Graph(path)
    quantizer = aeq.quantizer.Quantizer(os.fspath(path), recipe(g, scheme))
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    calibration = None
    if quantizer.need_calibration:
        if qsvs is None:
            raise WhisperGenioError(f"scheme {scheme.name} needs calibration statistics")
        calibration = {k: dict(v) for k, v in qsvs.items()}
    with contextlib.redirect_stdout(io.StringIO()):
        result = quantizer.quantize(calibration, enable_progress_report=False)
    if out.exists():
        out.unlink()
    result.export_model(os.fspath(out))
    return out


# -- running and inspecting ---------------------------------------------------------------------

def run(path_or_interpreter: Any, mel: np.ndarray, *, threads: int = 2) -> np.ndarray:
    """Encoder states [n_audio_ctx, d] (an integer input quantized, an integer output dequantized,
    natively: litert.run_float)."""
    it = path_or_interpreter if hasattr(path_or_interpreter, "invoke") else interpreter(path_or_interpreter,
                                                                                      threads=threads)
    x = np.ascontiguousarray(mel, np.float32).reshape(1, *mel.shape[-2:])
    return np.asarray(run_float(it, x)[0], np.float32)


def tensor_sqnr(float_path: PathLike, quant_path: PathLike, mel: np.ndarray, *,
                threads: int = 2) -> list[dict[str, Any]]:
    """Per-tensor error of a quantized encoder against its float original on one window, in the
    quantized model's execution order: for every op output that keeps its float name (ops the
    quantizer inserted have new names), its role, op, dtype and SQNR in dB of the dequantized
    value. The first row that collapses is where the arithmetic breaks."""
    from .evaluate import sqnr_db
    from .litert import from_tensor

    gf, gq = Graph(float_path), Graph(quant_path)
    roles = tensor_roles(gf)
    its = []
    for path in (float_path, quant_path):
        it = interpreter(path, threads=threads, preserve_all_tensors=True)
        run(it, mel)
        its.append(it)
    by_name = {gf.name(t): t for t in gf.tensors if not gf.is_constant(t)}
    rows = []
    for op in gq.ops:
        for t in (int(x) for x in op["outputs"]):
            name = gq.name(t)
            if name not in by_name:
                continue
            ref = its[0].get_tensor(by_name[name])
            x = from_tensor(its[1].get_tensor(t), gq.tensors[t])
            r = roles.get(name)
            rows.append({"op": op["op_name"], "index": int(op["index"]), "tensor": name, "role": r.key if r else None,
                         "dtype": np.dtype(gq.tensors[t]["dtype"]).name,
                         "sqnr_db": sqnr_db(np.asarray(ref, np.float32), np.asarray(x, np.float32))})
    return rows


def io_quantization(path: PathLike) -> dict[str, Any]:
    """dtype/scale/zero point of the input and output: the model's own when they are integer,
    else those of the first QUANTIZE after the input / the last DEQUANTIZE before the output."""
    g = Graph(path)
    result: dict[str, Any] = {}
    for role, t in (("input", g.input), ("output", g.output)):
        d = g.tensors[t]
        dtype = np.dtype(d["dtype"]).name
        entry: dict[str, Any] = {"name": d["name"], "dtype": dtype}
        if dtype != "float32":
            scale, zp = d["quantization"]
            entry.update(scale=float(scale), zero_point=int(zp))
        else:
            inner = None
            if role == "input":
                inner = next((int(o["outputs"][0]) for o in g.ops if o["op_name"] == "QUANTIZE"
                              and int(o["inputs"][0]) == t), None)
            else:
                p = g.producer.get(t)
                if p is not None and p["op_name"] == "DEQUANTIZE":
                    inner = int(p["inputs"][0])
            if inner is not None:
                qd = g.tensors[inner]
                scale, zp = qd["quantization"]
                entry["inside"] = {"dtype": np.dtype(qd["dtype"]).name, "scale": float(scale), "zero_point": int(zp)}
        result[role] = entry
    return result


def float_ops(path: PathLike) -> list[tuple[str, str]]:
    """(op, output tensor) of the compute ops that still run in float in a quantized model."""
    g = Graph(path)
    skip = {"QUANTIZE", "DEQUANTIZE"} | set(_PASS)
    return [(o["op_name"], g.name(o["outputs"][0])) for o in g.ops
            if o["op_name"] not in skip and len(o["outputs"])
            and np.dtype(g.tensors[int(o["outputs"][0])]["dtype"]) == np.float32 and int(o["outputs"][0]) != g.output]
