"""MDLA pre-flight: what in a TFLite graph the MDLA guidelines do not cover, per MDLA generation,
before the graph meets ``ncc-tflite`` on a board.

    from whisper_genio.tools.mdla_check import check_files, format_report
    result = check_files(["bundle/encoder.tflite"], "genio-700")     # or "mdla3.0", "all"
    print(format_report(result)); json.dumps(result)

``whisper-genio export ... --check-mdla BOARD`` and ``whisper-genio quantize ... --check-mdla BOARD``
run it on every TFLite file they wrote, print the report and write ``mdla_check.json`` beside them.

Every finding comes from one row of RULES, which carries the confidence of its source
(``../shared/docs/board-reports.md``, ``neuron-runtime.md`` section 4):

* documented: MediaTek's MDLA 2.0/3.0 guidelines or the Neuron SDK data-type table;
* reported: a public report of a board run (or several third-party sources that agree);
* unconfirmed: one source, a partly wrong one, or an op nobody's table covers.

A finding says what ``ncc-tflite`` will likely do (refuse, bridge to the CPU, convert, relax to
FP16) — it predicts, it does not compile; only ``ncc-tflite`` on the board's SDK can confirm.
The flatbuffer is read with LiteRT's own schema module (``ai_edge_litert``, installed with the
export/quantize extras); nothing is run.
"""

from __future__ import annotations

import os
import pathlib
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from ..errors import InvalidOptionError, ModelLoadError, WhisperGenioError

PathLike = Union[str, os.PathLike]
JSON_NAME = "mdla_check.json"

DOCUMENTED, REPORTED, UNCONFIRMED = "documented", "reported", "unconfirmed"
CONFIDENCES = (DOCUMENTED, REPORTED, UNCONFIRMED)
GENERATIONS = ("mdla2.0", "mdla3.0", "mdla5.3")
ALL = GENERATIONS

S_MDLA30 = "MediaTek mdla_guidelines_3_0 (mt8188)"
S_MDLA20 = "MediaTek mdla_guidelines_2_0 (mt8195)"
S_DTYPES = "Neuron SDK device data-type table (MDLA: FP16/INT16/INT8)"
S_G720_OPS = "superLin006/MTK_model_zoo op list + hhlqwq/mtk_models genio_720.md"
S_G720_BMM = "hhlqwq/mtk_models (Genio 720, runtime 8.2.16); third-party Genio 520 NeuronEP/delegate triage"

# MDLA 3.0 ops in the retrievable part of MediaTek's table (the rest of the table was not retrievable).
MDLA30_LISTED_OPS = frozenset((
    "ABS", "AVERAGE_POOL_2D", "BATCH_TO_SPACE_ND", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE", "DEQUANTIZE", "ADD", "DIV", "MUL", "SUB", "ELU", "FULLY_CONNECTED", "HARD_SWISH",
    "L2_POOL_2D", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MIRROR_PAD", "NEG", "PACK", "PAD", "POW"))
# MDLA 5.3 ops a board report lists as supported.
MDLA53_REPORTED_OPS = frozenset(("BATCH_MATMUL", "GELU", "SOFTMAX", "MEAN", "RSQRT", "TRANSPOSE", "FULLY_CONNECTED"))
PER_CHANNEL_OPS = frozenset(("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "PRELU"))
MDLA_DTYPES = frozenset(("FLOAT16", "FLOAT32", "INT8", "UINT8", "INT16"))  # FLOAT32 only relaxed to FP16
WEIGHTED_OPS = frozenset(("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "BATCH_MATMUL"))
COMPARISONS = ("EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL")


@dataclass(frozen=True)
class Rule:
    """One guideline fact: which generations, what it matches, what ncc-tflite will likely do, and
    how sure the source is."""
    id: str
    kind: str                      # op | unlisted_op | custom_op | rank | dim | dtype | int16_asym | a16w8
                                   # | per_channel | dequantize_per_channel | fc_batch | dynamic
    generations: tuple[str, ...]
    effect: str
    confidence: str
    source: str
    ops: frozenset = frozenset()   # kind "op": the op names it is about
    limit: int = 0                 # kind rank/dim: the largest allowed


# The rules, defined once. Order is the report's order.
RULES: tuple[Rule, ...] = (
    Rule("rank>4", "rank", ("mdla2.0", "mdla3.0"), "rank > 4 is outside the guidelines (ranks 0-4; 5-D only for "
         "3-D conv/pool): refused, or bridged to the CPU", DOCUMENTED, f"{S_MDLA30}; {S_MDLA20}", limit=4),
    Rule("rank>4", "rank", ("mdla5.3",), "rank > 4 is not supported: refused, or bridged to the CPU", REPORTED,
         S_G720_OPS, limit=4),
    Rule("dim>65535", "dim", ("mdla2.0", "mdla3.0"), "a dimension above 65535 is outside the guidelines",
         DOCUMENTED, f"{S_MDLA30}; {S_MDLA20}", limit=65535),
    Rule("dynamic-shape", "dynamic", ALL, "dynamic shapes are not compiled (static shapes only)", REPORTED,
         "hhlqwq/mtk_models genio_720.md; MediaTek NeuronEP guidance as reported"),
    Rule("fp32", "dtype", ALL, "no FP32 on the MDLA: computed in FP16 only with --relax-fp32 (refused without; "
         "mind FP16's range of 65504)", DOCUMENTED, S_DTYPES, ops=frozenset(("FLOAT32",))),
    Rule("dtype", "dtype", ALL, "not an MDLA data type (FP16/INT16/INT8): the op runs on the CPU (bridged) or is "
         "refused with --disallow-bridge", DOCUMENTED, S_DTYPES),
    Rule("int16-asymmetric", "int16_asym", ("mdla2.0", "mdla3.0"), "16-bit tensors must be symmetric (zero point "
         "0)", DOCUMENTED, f"{S_MDLA30}; {S_MDLA20}"),
    Rule("a16w8", "a16w8", ("mdla2.0",), "16-bit activations with 8-bit weights (A16W8) are not in MDLA 2.0's "
         "data-type list (MDLA 3.0 has it)", DOCUMENTED, S_MDLA20),
    Rule("per-channel", "per_channel", ("mdla2.0", "mdla3.0"), "per-channel quantization only on CONV_2D, "
         "DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED, PRELU", DOCUMENTED, f"{S_MDLA30}; {S_MDLA20}"),
    Rule("dequantize-per-channel", "dequantize_per_channel", ("mdla3.0",), "a DEQUANTIZE input cannot be "
         "per-channel", DOCUMENTED, S_MDLA30),
    Rule("fc-batch", "fc_batch", ("mdla3.0",), "FULLY_CONNECTED batch not in {1, 2, 4, 8}: ncc-tflite converts it "
         "to CONV_2D", DOCUMENTED, S_MDLA30),
    Rule("gather", "op", ("mdla5.3",), "GATHER is not supported on the MDLA: refused or bridged to the CPU "
         "(look the embedding up on the CPU, or one-hot x MatMul)", REPORTED,
         f"{S_G720_OPS}; third-party Whisper-base MT8371 port", ops=frozenset(("GATHER", "GATHER_ND"))),
    Rule("gather", "op", ("mdla2.0", "mdla3.0"), "GATHER has a row with restrictions that could not be read; "
         "reported unsupported on MDLA 5.3", UNCONFIRMED, S_MDLA30, ops=frozenset(("GATHER", "GATHER_ND"))),
    Rule("unsupported-5.3", "op", ("mdla5.3",), "listed as not supported: refused or bridged to the CPU",
         UNCONFIRMED, f"{S_G720_OPS} (chip label partly wrong)",
         ops=frozenset(COMPARISONS + ("TOPK_V2", "LOG_SOFTMAX"))),
    Rule("batch-matmul-5.3", "op", ("mdla5.3",), "supported, but a large FP16 BATCH_MATMUL was computed wrongly "
         "on runtime 8.2.16 (max abs error 29) and the Genio 520 pre-op check refused it: check the output "
         "numerically (NEURON_FLAG_MIN_GROUP_SIZE=100 kept it on the CPU)", REPORTED, S_G720_BMM,
         ops=frozenset(("BATCH_MATMUL",))),
    Rule("batch-matmul-3.0", "op", ("mdla2.0", "mdla3.0"), "BATCH_MATMUL is listed for MDLA 3.5/5.x but not this "
         "generation: may need an FC/Conv rewrite or run bridged (a full FP32 Whisper encoder did compile and "
         "run on a Genio 510)", UNCONFIRMED, "MediaTek G720 op page as quoted by hhlqwq/mtk_models",
         ops=frozenset(("BATCH_MATMUL",))),
    Rule("custom-op", "custom_op", ALL, "a custom op that is not MediaTek's (MTKEXT_*): ncc-tflite cannot compile "
         "it", UNCONFIRMED, "LiteRT MediaTek compiler plugin notes (only MTKEXT_* custom ops)"),
    Rule("unlisted-op", "unlisted_op", ALL, "in no op table on record for this generation (neither supported nor "
         "refused): check with ncc-tflite --arch=<gen> on the board's SDK", UNCONFIRMED,
         f"{S_MDLA30} (partial); {S_MDLA20} (no op table); {S_G720_OPS}"),
)


def _listed(gen: str) -> frozenset:
    """Ops a table on record lists as supported for `gen` (the unlisted-op rule's complement)."""
    if gen == "mdla3.0":
        return MDLA30_LISTED_OPS
    if gen == "mdla5.3":
        return MDLA53_REPORTED_OPS
    return frozenset()


def _rule_ops(gen: str) -> frozenset:
    return frozenset().union(*(r.ops for r in RULES if r.kind == "op" and gen in r.generations))


# -- targets -------------------------------------------------------------------------------------

def parse_target(name: str) -> list[str]:
    """'genio-700' / 'Genio 1200' / 'mt8391' / 'mdla3.0' / 'all' -> MDLA generations."""
    key = str(name).strip().lower().replace(" ", "-")
    if key == "all":
        return list(GENERATIONS)
    if key in GENERATIONS:
        return [key]
    from .ncc import find_soc

    try:
        soc = find_soc(key)
    except InvalidOptionError as e:
        raise InvalidOptionError(f"--check-mdla: {e}; or one of {', '.join(GENERATIONS)}, all") from None
    gen = soc.arch.split(",")[0]
    if gen not in GENERATIONS:
        raise InvalidOptionError(f"--check-mdla: {soc.board} has {gen}, which no rule covers ({', '.join(GENERATIONS)})")
    return [gen]


# -- reading the flatbuffer ----------------------------------------------------------------------

def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:
        raise WhisperGenioError(f"the MDLA check reads TFLite with ai_edge_litert ({e}): "
                                "pip install 'whisper_genio[export]'") from None
    return schema


def _names(cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def read_graph(path: PathLike) -> dict[str, Any]:
    """The parts of a TFLite model the rules look at: per op its name, inputs and outputs; per tensor
    its name, shape, signature, dtype, quantization and whether it is a constant."""
    schema = _schema()
    p = pathlib.Path(path)
    try:
        buf = p.read_bytes()
    except OSError as e:
        raise ModelLoadError(f"cannot read {p}: {e.strerror or e}") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelLoadError(f"{p} is not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = schema.Model.GetRootAs(buf, 0)
        op_names = _names(schema.BuiltinOperator)
        type_names = _names(schema.TensorType)
        codes = []
        for i in range(model.OperatorCodesLength()):
            c = model.OperatorCodes(i)
            code = max(int(c.BuiltinCode()), int(c.DeprecatedBuiltinCode()))
            name = op_names.get(code, f"BUILTIN_{code}")
            if name == "CUSTOM":
                name = "CUSTOM:" + (c.CustomCode() or b"?").decode("utf-8", "replace")
            codes.append(name)
        graphs = []
        for s in range(model.SubgraphsLength()):
            g = model.Subgraphs(s)
            tensors = []
            for t in range(g.TensorsLength()):
                ten = g.Tensors(t)
                b = model.Buffers(ten.Buffer()) if ten.Buffer() < model.BuffersLength() else None
                const = b is not None and (b.DataLength() > 0 or b.Offset() > 0)
                q = ten.Quantization()
                scales = q.ScaleLength() if q is not None else 0
                zps = [int(z) for z in q.ZeroPointAsNumpy()] if q is not None and q.ZeroPointLength() else []
                tensors.append({
                    "name": (ten.Name() or b"").decode("utf-8", "replace"),
                    "shape": [int(d) for d in ten.ShapeAsNumpy()] if ten.ShapeLength() else [],
                    "signature": [int(d) for d in ten.ShapeSignatureAsNumpy()] if ten.ShapeSignatureLength() else [],
                    "dtype": type_names.get(int(ten.Type()), f"TYPE_{ten.Type()}"),
                    "const": const, "scales": scales, "zero_points": zps})
            ops = []
            for o in range(g.OperatorsLength()):
                op = g.Operators(o)
                ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
                outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
                ops.append({"op": codes[op.OpcodeIndex()], "inputs": [x for x in ins if x >= 0], "outputs": outs})
            graphs.append({"tensors": tensors, "ops": ops})
    except (IndexError, ValueError, TypeError, AttributeError, struct.error) as e:  # a truncated or corrupt flatbuffer
        raise ModelLoadError(f"{p}: not a readable TFLite model ({type(e).__name__}: {e})") from None
    return {"file": str(p), "subgraphs": graphs}


# -- applying the rules --------------------------------------------------------------------------

def _fc_batch(op: Mapping[str, Any], tensors: Sequence[Mapping[str, Any]]) -> int:
    """FULLY_CONNECTED's batch: the rows its weights multiply (all input dims but the last)."""
    shape = tensors[op["inputs"][0]]["shape"]
    n = 1
    for d in shape[:-1]:
        n *= max(int(d), 1)
    return n


def _tensor(ti: int, t: Mapping[str, Any]) -> str:
    """'t12 <name, shortened> [1, 1500, 512]' (converter names can run to hundreds of characters)."""
    name = t["name"].split(";")[0]
    name = name if len(name) <= 40 else "..." + name[-37:]
    return f"t{ti} {name} {t['shape']}"


def _matches(rule: Rule, gen: str, graph: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(subject, where) pairs for each place `rule` applies in `graph` on generation `gen`."""
    out: list[tuple[str, str]] = []
    for si, g in enumerate(graph["subgraphs"]):
        tensors, ops = g["tensors"], g["ops"]
        live = {i for op in ops for i in op["inputs"] + op["outputs"]}
        used = [(i, tensors[i]) for i in sorted(live)]
        sub = f"subgraph {si} " if si else ""
        if rule.kind in ("op", "unlisted_op", "custom_op"):
            listed = _listed(gen) | _rule_ops(gen)
            for oi, op in enumerate(ops):
                name = op["op"]
                hit = (rule.kind == "op" and name in rule.ops) or \
                      (rule.kind == "custom_op" and name.startswith("CUSTOM:") and not name[7:].startswith("MTKEXT_")) or \
                      (rule.kind == "unlisted_op" and not name.startswith("CUSTOM:") and name not in listed)
                if hit:
                    out.append((name, f"{sub}op {oi}"))
        elif rule.kind in ("rank", "dim", "dynamic"):
            for ti, t in used:
                if rule.kind == "rank" and len(t["shape"]) > rule.limit:
                    out.append((f"rank {len(t['shape'])}", sub + _tensor(ti, t)))
                elif rule.kind == "dim" and any(d > rule.limit for d in t["shape"]):
                    out.append((f"dimension {max(t['shape'])}", sub + _tensor(ti, t)))
                elif rule.kind == "dynamic" and any(d < 0 for d in t["signature"]):
                    out.append(("dynamic shape", f"{sub}{_tensor(ti, t)} signature {t['signature']}"))
        elif rule.kind == "dtype":
            for ti, t in used:
                if t["const"] and t["dtype"] in ("INT32", "INT64"):
                    continue  # biases of quantized ops (int64 for 16x8) and shape/axis operands: part of the op
                if (rule.ops and t["dtype"] in rule.ops) or (not rule.ops and t["dtype"] not in MDLA_DTYPES):
                    out.append((f"{t['dtype']} tensor", sub + _tensor(ti, t)))
        elif rule.kind == "int16_asym":
            for ti, t in used:
                if t["dtype"] == "INT16" and any(z != 0 for z in t["zero_points"]):
                    out.append(("asymmetric INT16 tensor", sub + _tensor(ti, t)))
        elif rule.kind == "a16w8":
            for oi, op in enumerate(ops):
                if op["op"] in WEIGHTED_OPS and len(op["inputs"]) > 1:
                    a, w = tensors[op["inputs"][0]], tensors[op["inputs"][1]]
                    if a["dtype"] == "INT16" and w["dtype"] == "INT8":
                        out.append((f"A16W8 {op['op']}", f"{sub}op {oi}"))
        elif rule.kind in ("per_channel", "dequantize_per_channel"):
            for oi, op in enumerate(ops):
                if rule.kind == "per_channel" and op["op"] in PER_CHANNEL_OPS | {"DEQUANTIZE", "QUANTIZE"}:
                    continue  # QUANTIZE/DEQUANTIZE have their own rule (dequantize-per-channel)
                if rule.kind == "dequantize_per_channel" and op["op"] != "DEQUANTIZE":
                    continue
                for i in op["inputs"]:
                    if tensors[i]["scales"] > 1:
                        out.append((f"per-channel {op['op']}", f"{sub}op {oi} {_tensor(i, tensors[i])}"))
        elif rule.kind == "fc_batch":
            for oi, op in enumerate(ops):
                if op["op"] == "FULLY_CONNECTED" and op["inputs"]:
                    n = _fc_batch(op, tensors)
                    if n not in (1, 2, 4, 8):
                        out.append((f"FULLY_CONNECTED batch {n}", f"{sub}op {oi}"))
    return out


def check_graph(graph: Mapping[str, Any], generations: Sequence[str]) -> dict[str, Any]:
    """Findings per generation for one read graph: [{rule, subject, count, where, effect,
    confidence, source}], one per (rule, subject)."""
    ops = Counter(op["op"] for g in graph["subgraphs"] for op in g["ops"])
    result: dict[str, Any] = {"file": graph["file"], "ops": dict(sorted(ops.items())), "findings": {}}
    for gen in generations:
        rows = []
        for rule in RULES:
            if gen not in rule.generations:
                continue
            groups: dict[str, list[str]] = {}
            for subject, where in _matches(rule, gen, graph):
                groups.setdefault(subject, []).append(where)
            for subject, where in groups.items():
                rows.append({"rule": rule.id, "subject": subject, "count": len(where), "where": where[:5],
                             "effect": rule.effect, "confidence": rule.confidence, "source": rule.source})
        result["findings"][gen] = rows
    return result


def check_files(paths: Iterable[PathLike], target: Union[str, Sequence[str]] = "all") -> dict[str, Any]:
    """Reads every TFLite file in `paths` and checks it for `target` (a board, SoC, generation,
    'all', or a list of generations). JSON-ready."""
    gens = parse_target(target) if isinstance(target, str) else [g for t in target for g in parse_target(t)]
    files = [check_graph(read_graph(p), gens) for p in paths]
    return {"target": target if isinstance(target, str) else list(target), "generations": gens,
            "confidences": list(CONFIDENCES), "files": files}


def tflite_files(folder: PathLike) -> list[pathlib.Path]:
    """Every .tflite under `folder` (what export/quantize wrote there), sorted."""
    return sorted(pathlib.Path(folder).rglob("*.tflite"))


def format_report(result: Mapping[str, Any]) -> str:
    """The readable form: per file, per generation, one line per finding with its confidence (the
    ops no table covers share one line)."""
    lines = [f"MDLA pre-flight for {result['target']} ({', '.join(result['generations'])}): what the guidelines "
             "do not cover, each with its source's confidence (documented / reported / unconfirmed)"]
    for f in result["files"]:
        total = sum(f["ops"].values())
        lines.append(f"{f['file']}: {total} ops ({', '.join(f'{k} {v}' for k, v in f['ops'].items())})")
        for gen, rows in f["findings"].items():
            if not rows:
                lines.append(f"  {gen}: nothing outside the guidelines on record")
                continue
            lines.append(f"  {gen}:")
            unlisted = [r for r in rows if r["rule"] == "unlisted-op"]
            for r in rows:
                if r["rule"] == "unlisted-op":
                    continue
                where = ", ".join(r["where"]) + (" ..." if r["count"] > len(r["where"]) else "")
                lines.append(f"    [{r['confidence']}] {r['subject']} x{r['count']}: {r['effect']} ({where})")
            if unlisted:
                ops = ", ".join(f"{r['subject']} x{r['count']}" for r in unlisted)
                lines.append(f"    [{unlisted[0]['confidence']}] {ops}: {unlisted[0]['effect']}")
    return "\n".join(lines)


def run_check(folder_or_files: Union[PathLike, Sequence[PathLike]], target: str, *,
              json_path: Optional[PathLike] = None) -> tuple[dict[str, Any], str]:
    """The CLI's --check-mdla: checks every TFLite file under a folder (or the given files), writes
    the JSON when json_path is given, and returns (result, report text)."""
    import json

    if isinstance(folder_or_files, (str, os.PathLike)) and pathlib.Path(folder_or_files).is_dir():
        files: list[Any] = tflite_files(folder_or_files)
    elif isinstance(folder_or_files, (str, os.PathLike)):
        files = [folder_or_files]
    else:
        files = list(folder_or_files)
    result = check_files(files, target)
    if json_path is not None:
        pathlib.Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    text = format_report(result) if files else f"MDLA pre-flight for {target}: no TFLite file written"
    return result, text
