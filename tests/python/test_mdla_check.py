"""MDLA pre-flight (issue 13, deliverable 5): small TFLite graphs written with LiteRT's own
flatbuffer schema (exact control over ops, ranks, dtypes and quantization, no converter run),
each checked for the findings the rules table predicts per MDLA generation; targets; bad files;
the CLI flag on export (a tiny random checkpoint's decoder subgraphs, rank <= 4 and no GATHER)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_genio.errors import InvalidOptionError, ModelLoadError

mc = pytest.importorskip("whisper_genio.tools.mdla_check")
schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")


def write_tflite(path, tensors, ops):
    """tensors: [(name, shape, dtype name, dict(const=, scale=, zero_point=, signature=))];
    ops: [(builtin name or 'CUSTOM:code', [inputs], [outputs])]. Returns the path."""
    m = schema.ModelT()
    m.version = 3
    m.buffers = [schema.BufferT()]
    codes, code_index = [], {}
    sg = schema.SubGraphT()
    sg.tensors = []
    for name, shape, dtype, extra in tensors:
        t = schema.TensorT()
        t.name, t.shape, t.type = name, list(shape), getattr(schema.TensorType, dtype)
        if "signature" in extra:
            t.shapeSignature = list(extra["signature"])
        if extra.get("const"):
            b = schema.BufferT()
            b.data = np.zeros(int(np.prod(shape)) or 1, np.uint8).tolist()
            m.buffers.append(b)
            t.buffer = len(m.buffers) - 1
        else:
            t.buffer = 0
        if "scale" in extra:
            q = schema.QuantizationParametersT()
            q.scale = list(extra["scale"])
            q.zeroPoint = list(extra.get("zero_point", [0] * len(q.scale)))
            t.quantization = q
        sg.tensors.append(t)
    sg.operators = []
    for name, ins, outs in ops:
        if name not in code_index:
            c = schema.OperatorCodeT()
            if name.startswith("CUSTOM:"):
                c.builtinCode, c.customCode = schema.BuiltinOperator.CUSTOM, name[7:]
            else:
                c.builtinCode = getattr(schema.BuiltinOperator, name)
            c.deprecatedBuiltinCode = min(c.builtinCode, 127)
            c.version = 1
            code_index[name] = len(codes)
            codes.append(c)
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code_index[name], list(ins), list(outs)
        sg.operators.append(o)
    sg.inputs = [0]
    sg.outputs = [ops[-1][2][0]]
    m.operatorCodes, m.subgraphs = codes, [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path


def findings(result, gen, rule=None):
    rows = result["files"][0]["findings"][gen]
    return [r for r in rows if rule is None or r["rule"] == rule]


def test_targets():
    assert mc.parse_target("genio-510") == mc.parse_target("Genio 700") == ["mdla3.0"]
    assert mc.parse_target("genio-1200") == ["mdla2.0"]
    assert mc.parse_target("genio-520") == mc.parse_target("genio-720") == mc.parse_target("mt8391") == ["mdla5.3"]
    assert mc.parse_target("MDLA5.3") == ["mdla5.3"] and mc.parse_target("all") == list(mc.GENERATIONS)
    with pytest.raises(InvalidOptionError, match="no MDLA"):
        mc.parse_target("genio-350")
    with pytest.raises(InvalidOptionError, match="mdla2.0, mdla3.0, mdla5.3"):
        mc.parse_target("genio-9000")


def test_rules_table_is_well_formed():
    for r in mc.RULES:
        assert r.confidence in mc.CONFIDENCES and r.source and r.effect
        assert set(r.generations) <= set(mc.GENERATIONS)
    # one rule per (id, generation): a fact is stated once per generation
    keys = [(r.id, g) for r in mc.RULES for g in r.generations]
    assert len(keys) == len(set(keys))


def test_rank5_gather_and_fc_batch(tmp_path):
    f32 = "FLOAT32"
    path = write_tflite(tmp_path / "g.tflite", [
        ("x", [1, 2, 3, 4, 5], f32, {}),                 # 0 rank 5
        ("shape", [4], "INT32", {"const": True}),         # 1 (const int32: not a dtype finding)
        ("y", [2, 3, 4, 5], f32, {}),                    # 2
        ("ids", [1, 3], "INT32", {}),                    # 3 live int32: a dtype finding
        ("table", [10, 5], f32, {"const": True}),         # 4
        ("emb", [1, 3, 5], f32, {}),                     # 5
        ("w", [7, 5], f32, {"const": True}),              # 6
        ("fc3", [3, 7], f32, {}),                        # 7 batch 3
        ("fc_in4", [4, 5], f32, {}),                     # 8
        ("fc4", [4, 7], f32, {}),                        # 9 batch 4: fine
        ("bias64", [7], "INT64", {"const": True}),        # 10 a 16x8 FC's bias: part of the op
    ], [
        ("RESHAPE", [0, 1], [2]),
        ("GATHER", [4, 3], [5]),
        ("FULLY_CONNECTED", [5, 6], [7]),
        ("FULLY_CONNECTED", [8, 6, 10], [9]),
    ])
    r = mc.check_files([path], "all")
    for gen in ("mdla2.0", "mdla3.0"):
        (rank,) = findings(r, gen, "rank>4")
        assert rank["confidence"] == "documented" and rank["subject"] == "rank 5" and "t0 x [1, 2, 3, 4, 5]" in rank["where"][0]
        (g,) = findings(r, gen, "gather")
        assert g["confidence"] == "unconfirmed"
    assert findings(r, "mdla5.3", "rank>4")[0]["confidence"] == "reported"
    (g,) = findings(r, "mdla5.3", "gather")
    assert g["confidence"] == "reported" and g["where"] == ["op 1"]
    (fc,) = findings(r, "mdla3.0", "fc-batch")
    assert fc["subject"] == "FULLY_CONNECTED batch 3" and fc["count"] == 1 and fc["where"] == ["op 2"]
    assert not findings(r, "mdla2.0", "fc-batch") and not findings(r, "mdla5.3", "fc-batch")
    (dt,) = findings(r, "mdla3.0", "dtype")
    assert dt["subject"] == "INT32 tensor" and dt["count"] == 1 and "ids" in dt["where"][0]
    assert findings(r, "mdla3.0", "fp32")[0]["confidence"] == "documented"
    # RESHAPE is in no table on record for 3.0; FULLY_CONNECTED is listed
    unlisted = {x["subject"] for x in findings(r, "mdla3.0", "unlisted-op")}
    assert unlisted == {"RESHAPE"}
    text = mc.format_report(r)
    assert "[documented] rank 5 x1" in text and "[reported] GATHER x1" in text and "mdla5.3:" in text
    json.dumps(r)  # JSON-ready


def test_quantization_rules(tmp_path):
    path = write_tflite(tmp_path / "q.tflite", [
        ("a", [1, 8], "INT16", {"scale": [0.1], "zero_point": [3]}),               # 0 asymmetric int16
        ("w", [4, 8], "INT8", {"const": True, "scale": [0.1] * 4}),                # 1 per-channel weights
        ("y", [1, 4], "INT16", {"scale": [0.1]}),                                  # 2
        ("w2", [4, 4], "INT8", {"const": True, "scale": [0.1] * 4}),               # 3 per-channel
        ("wf", [4, 4], "FLOAT32", {}),                                             # 4
        ("z", [1, 4], "FLOAT32", {"signature": [-1, 4]}),                          # 5 dynamic
        ("o", [1, 4], "FLOAT32", {}),                                              # 6
    ], [
        ("FULLY_CONNECTED", [0, 1], [2]),            # A16W8, per-channel allowed on FC
        ("DEQUANTIZE", [3], [4]),                    # per-channel DEQUANTIZE input
        ("ADD", [5, 5], [6]),
        ("CUSTOM:odml.foo", [6], [6]),
    ])
    r = mc.check_files([path], ["mdla2.0", "mdla3.0", "mdla5.3"])
    assert [x["subject"] for x in findings(r, "mdla2.0", "a16w8")] == ["A16W8 FULLY_CONNECTED"]
    assert not findings(r, "mdla3.0", "a16w8")  # MDLA 3.0 documents A16W8
    assert findings(r, "mdla3.0", "int16-asymmetric")[0]["where"][0].startswith("t0 a")
    assert not findings(r, "mdla3.0", "per-channel")  # FC may be per-channel
    (dq,) = findings(r, "mdla3.0", "dequantize-per-channel")
    assert dq["where"][0].startswith("op 1 t3 w2")
    assert not findings(r, "mdla5.3", "dequantize-per-channel")
    assert all(findings(r, g, "dynamic-shape") for g in mc.GENERATIONS)
    assert findings(r, "mdla3.0", "custom-op")[0]["subject"] == "CUSTOM:odml.foo"


def test_per_channel_outside_the_allowed_ops(tmp_path):
    path = write_tflite(tmp_path / "pc.tflite", [
        ("a", [1, 4], "INT8", {"scale": [0.1]}),
        ("b", [1, 4], "INT8", {"const": True, "scale": [0.1] * 4}),
        ("c", [1, 4], "INT8", {"scale": [0.1]}),
    ], [("ADD", [0, 1], [2])])
    r = mc.check_files([path], "genio-1200")
    assert r["generations"] == ["mdla2.0"]
    assert findings(r, "mdla2.0", "per-channel")[0]["subject"] == "per-channel ADD"


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError, match="not a TFLite flatbuffer"):
        mc.check_files([bad], "all")
    trunc = tmp_path / "t.tflite"
    trunc.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 8)
    with pytest.raises(ModelLoadError, match="t.tflite"):
        mc.check_files([trunc], "all")
    with pytest.raises(ModelLoadError, match="cannot read"):
        mc.check_files([tmp_path / "missing.tflite"], "all")


def _small_graph(folder):
    folder.mkdir(parents=True, exist_ok=True)
    return write_tflite(folder / "encoder.tflite", [
        ("x", [1, 2, 3, 4, 5], "FLOAT32", {}), ("shape", [2], "INT32", {"const": True}), ("y", [6, 20], "FLOAT32", {}),
    ], [("RESHAPE", [0, 1], [2])])


def test_cli_export_and_quantize_run_the_preflight(monkeypatch, tmp_path, capsys):
    """--check-mdla on export and quantize: every TFLite file written is checked, the report is
    printed and mdla_check.json written; an unknown board is refused before any work. (The
    exporters are replaced by writers of a small graph: converting is tested in test_export.)"""
    from whisper_genio.cli import main
    from whisper_genio.tools import export as export_mod
    from whisper_genio.tools.quantize import pipeline

    calls = []

    class FakeBundle:
        def __init__(self, root):
            self.root, self.artifacts = root, {}

    def fake_export(model, out, **kw):
        calls.append("export")
        _small_graph(tmp_path / "b")
        return FakeBundle(tmp_path / "b")

    def fake_quantize(bundle, calibration, scheme, out, **kw):
        calls.append("quantize")
        _small_graph(tmp_path / "q" / "sub")
        return {"scheme": scheme, "int8_mac_share": 1.0, "artifacts": {}}

    monkeypatch.setattr(export_mod, "export_bundle", fake_export)
    monkeypatch.setattr(pipeline, "quantize_bundle", fake_quantize)
    assert main(["export", "--model", "base", "-o", str(tmp_path / "b"), "--check-mdla", "genio-700"]) == 0
    out = capsys.readouterr().out
    assert "MDLA pre-flight for genio-700 (mdla3.0)" in out and "[documented] rank 5 x1" in out
    saved = json.loads((tmp_path / "b" / "mdla_check.json").read_text())
    assert saved["generations"] == ["mdla3.0"] and saved["files"][0]["file"].endswith("encoder.tflite")
    assert main(["quantize", "--bundle", str(tmp_path / "b"), "--calibration", "x.wav", "-o", str(tmp_path / "q"),
                 "--check-mdla", "mdla5.3"]) == 0
    out = capsys.readouterr().out
    assert "[reported] rank 5 x1" in out and (tmp_path / "q" / "mdla_check.json").is_file()
    assert calls == ["export", "quantize"]
    assert main(["export", "--model", "base", "-o", str(tmp_path / "c"), "--check-mdla", "genio-9000"]) == 2
    assert "unknown SoC 'genio-9000'" in capsys.readouterr().err and calls == ["export", "quantize"]

