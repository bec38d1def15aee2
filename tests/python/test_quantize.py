"""whisper-genio quantize: calibration windows, schemes, ONNX QDQ and TFLite encoders run with
integer kernels on the host, the quantized bundle, and the mixed-precision search. Small sets
(2 calibration windows, 1 held-out clip); the full numbers come from tools/quant_study.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_genio.errors import InvalidOptionError
from whisper_genio.tools.quantize.schemes import BUILTIN, mac_summary, parse_scheme


def _sqnr(ref, x, n=None):
    ref, x = ref[:n], x[:n]
    return 20 * np.log10(np.linalg.norm(ref) / np.linalg.norm(ref - x))


# -- pure logic ------------------------------------------------------------------------------

def test_parse_scheme():
    assert parse_scheme("a16w8").activation_bits == 16
    assert parse_scheme("a8w8-tensor").per_channel is False
    assert parse_scheme("weight-only").kind == "weight_only"
    m = parse_scheme("mixed:resid=16,softmax=16,b3.fc2=16")
    assert m.overrides == {"resid": 16, "softmax": 16, "b3.fc2": 16} and m.activation_bits == 8
    assert parse_scheme(m.spec()).overrides == m.overrides
    for bad in ("a4w4", "mixed:nothing=16", "mixed:resid=12", "w8:resid=16"):
        with pytest.raises(InvalidOptionError):
            parse_scheme(bad)


def test_int8_mac_share(base_checkpoint):
    dims = base_checkpoint.dims
    assert mac_summary(BUILTIN["a8w8"], dims)["int8_mac_share"] == 1.0
    assert mac_summary(BUILTIN["a16w8"], dims)["int8_mac_share"] == 0.0
    assert mac_summary(BUILTIN["w8"], dims)["int8_mac_share"] == 0.0
    # q/k/v + q·k + fc1 in int8: more than half of the encoder's MACs
    mixed = parse_scheme("a16w8:ln1=8,q=8,k=8,v=8,qk=8,ln2=8,fc1=8")
    share = mac_summary(mixed, dims)
    assert 0.5 < share["int8_mac_share"] < 0.6
    assert share["products"]["b0.fc1"] == "int8" and share["products"]["b0.fc2"] == "int16x8"
    # an int8 input with a 16-bit output is not an int8 product
    assert mac_summary(parse_scheme("a16w8:ln2=8"), dims)["products"]["b0.fc1"] == "int16x8"


def test_pack_fills_windows_with_speech():
    from whisper_genio.tools.quantize.calibrate import N_SAMPLES, pack

    sr = 16000
    clips = [(f"c{i}", np.ones(int(sr * s), np.float32)) for i, s in enumerate([7, 9, 12, 5, 4, 40])]
    windows = pack(clips)
    assert len(windows) == 3  # 77 s of audio + gaps
    assert all(len(s) == N_SAMPLES for s, _ in windows)
    assert all(np.mean(s != 0) > 0.97 for s, _ in windows)  # full of audio, the last one filled up again
    names = [n for _, ns in windows for n in ns]
    assert names.count("c5") == 2  # the 40 s clip spans two windows
    assert any("(repeat)" in n for n in names)
    assert len(pack(clips, max_windows=2)) == 2


def test_build_windows_caches(tmp_path, calibration_split):
    from whisper_genio.tools.quantize.calibrate import build_windows

    calib, _ = calibration_split
    files = [r["path"] for r in calib[:3]]
    w1 = build_windows([], files=files, cache=tmp_path / "c.npz")
    assert w1.mels.shape[1:] == (80, 3000) and w1.speech_fraction() > 0.5
    w2 = build_windows([], files=files, cache=tmp_path / "c.npz")
    assert np.array_equal(w1.mels, w2.mels) and w1.sources == w2.sources


def test_search_is_greedy_and_respects_the_target(base_checkpoint):
    from whisper_genio.tools.quantize import sensitivity

    loss = {"qkv": 3, "fc1": 4, "logits": 0.5, "attn_v": 12, "out": 6, "fc2": 25, "stem": 8}

    def evaluate(scheme):
        db = 28.0 - sum(v for m, v in loss.items() if all(scheme.overrides.get(r) == 8 for r in sensitivity.MOVES[m]))
        return {"sqnr_db": db, "wer_vs_float": 0.0 if db > 15 else 0.5}

    res = sensitivity.search(evaluate, base_checkpoint.dims, target_db=20.0)
    chosen = {m for m, rs in sensitivity.MOVES.items() if all(res.scheme.overrides.get(r) == 8 for r in rs)}
    assert chosen == {"logits", "qkv", "fc1"}  # 28 - 0.5 - 3 - 4 = 20.5; adding "out" would fall below 20
    assert mac_summary(res.scheme, base_checkpoint.dims)["int8_mac_share"] > 0.5
    assert res.isolated["fc2"].accepted is False


# -- ONNX QDQ on ONNX Runtime ---------------------------------------------------------------------

MIXED = "a16w8:ln1=8,q=8,k=8,v=8,qk=8,ln2=8,fc1=8"  # > 50 % of the encoder's MACs in int8

@pytest.fixture(scope="module")
def onnx_results(workspace, onnx_ranges, heldout_window, cpu_model, tmp_path_factory):
    from whisper_genio.tools.quantize import onnx_qdq

    w, _ = heldout_window
    ref = np.array(cpu_model.encode(w.mels[0]), np.float32)
    out = tmp_path_factory.mktemp("onnx_q")
    res = {}
    for name in ("a8w8", "a16w8", "w8", MIXED):
        path = onnx_qdq.quantize(workspace.onnx_prepared(), out / f"{parse_scheme(name).name}.onnx",
                                 parse_scheme(name), onnx_ranges)
        res[name] = (path, onnx_qdq.run(path, w.mels[0]))
    return ref, int(w.content_frames[0]), res


def test_onnx_a8w8_reproduces_the_failure_and_a16w8_fixes_it(onnx_results):
    ref, n, res = onnx_results
    assert _sqnr(ref, res["a8w8"][1], n) < 8  # the users' garbage
    assert _sqnr(ref, res["a16w8"][1], n) > 20
    assert _sqnr(ref, res["w8"][1], n) > 25  # weights are not the cause
    assert _sqnr(ref, res[MIXED][1], n) > 18


def test_onnx_graphs_use_only_standard_onnx_ops(onnx_results, workspace):
    """Issue 13.4: every quantized graph (and the prepared one they come from) is in the ONNX domain
    only, opset 21 (standard int16 QuantizeLinear/DequantizeLinear, standard Gelu), static shapes:
    nothing the NeuronExecutionProvider is reported to refuse. The numbers above come from these."""
    import onnx

    from whisper_genio.tools.export_onnx import neuron_ep_findings, neuron_ep_problems
    from whisper_genio.tools.quantize import onnx_qdq

    assert onnx_qdq.is_prepared(workspace.onnx_prepared())
    _, _, res = onnx_results
    for name, (path, _) in res.items():
        m = onnx.load(str(path))
        assert {n.domain for n in m.graph.node} == {""}, name
        assert [(o.domain, o.version) for o in m.opset_import] == [("", onnx_qdq.QDQ_OPSET)], name
        assert "Gelu" in {n.op_type for n in m.graph.node}
        assert neuron_ep_problems(m) == [], (name, neuron_ep_problems(m))
    int16 = onnx.TensorProto.INT16
    a16 = onnx.load(str(res["a16w8"][0]))
    zps = {i.name: i.data_type for i in a16.graph.initializer}
    assert any(zps.get(n.input[2]) == int16 for n in a16.graph.node if n.op_type == "QuantizeLinear")
    # the weight-only graph is flagged as what it is: dequantized weights beside float activations
    assert any("weight-only" in m for level, m in neuron_ep_findings(res["w8"][0]) if level == "note")


def test_onnx_quantize_refuses_an_unprepared_graph(float_bundle, tmp_path, onnx_ranges):
    from whisper_genio.errors import WhisperGenioError
    from whisper_genio.tools.quantize import onnx_qdq

    with pytest.raises(WhisperGenioError, match="prepare"):
        onnx_qdq.quantize(float_bundle / "encoder.onnx", tmp_path / "x.onnx", parse_scheme("a16w8"), onnx_ranges)


def test_onnx_qdq_graph_and_io_quantization(onnx_results):
    import onnx

    from whisper_genio.tools.quantize import onnx_qdq

    _, _, res = onnx_results
    m = onnx.load(str(res["a8w8"][0]))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") > 100 and "LayerNormalization" in ops
    io = onnx_qdq.io_quantization(res["a16w8"][0])
    assert io["input"]["dtype"] == "int16" and io["input"]["zero_point"] == 0 and io["input"]["scale"] > 0
    assert io["output"]["dtype"] == "int16" and io["output"]["scale"] > 0
    assert onnx_qdq.io_quantization(res["a8w8"][0])["input"]["dtype"] == "uint8"
    wo = onnx.load(str(res["w8"][0]))
    assert not any(n.op_type == "QuantizeLinear" for n in wo.graph.node)
    assert sum(n.op_type == "DequantizeLinear" for n in wo.graph.node) == 2 + 6 * 6


# -- TFLite (ai-edge-quantizer) on the LiteRT interpreter --------------------------------------------

def test_tflite_a16w8_and_a8w8(workspace, tflite_qsvs, heldout_window, cpu_model, tmp_path):
    from whisper_genio.tools.quantize import tflite_quant

    w, _ = heldout_window
    n = int(w.content_frames[0])
    ref = np.array(cpu_model.encode(w.mels[0]), np.float32)
    a16 = tflite_quant.quantize(workspace.path("tflite"), tmp_path / "a16.tflite", parse_scheme("a16w8"), tflite_qsvs)
    io = tflite_quant.io_quantization(a16)
    assert io["input"]["dtype"] == "int16" and io["output"]["dtype"] == "int16" and io["output"]["scale"] > 0
    floats = tflite_quant.float_ops(a16)
    roles = tflite_quant.tensor_roles(a16)
    assert floats and all(roles[t].role == "ln_stats" for _, t in floats)  # only the LayerNorm statistics
    assert _sqnr(ref, tflite_quant.run(a16, w.mels[0]), n) > 18
    a8 = tflite_quant.quantize(workspace.path("tflite"), tmp_path / "a8.tflite", parse_scheme("a8w8"), tflite_qsvs)
    assert tflite_quant.io_quantization(a8)["output"]["dtype"] == "int8"
    assert _sqnr(ref, tflite_quant.run(a8, w.mels[0]), n) < 8


@pytest.fixture(scope="module")
def outlier_tflite(tmp_path_factory):
    """A 1-layer random-weight encoder (d=64) whose residual stream has whisper-base's kind of
    outlier: one channel, a few frames, ~1000x the other values (the positional embedding
    carries it), and block weights large enough that the block, not the stem, makes the
    output. Float TFLite, one calibration window, one other window."""
    for m in ("torch", "whisper.model", "litert_torch", "ai_edge_quantizer", "ai_edge_litert"):
        pytest.importorskip(m)
    from model_factory import make_random_state_dict, write_openai_pt

    from whisper_genio.checkpoints import load_checkpoint
    from whisper_genio.dims import ModelDims
    from whisper_genio.tools.export import export_bundle

    dims = ModelDims(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1, n_vocab=51865,
                     n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
    sd = make_random_state_dict(dims)
    pe = np.array(sd["encoder.positional_embedding"], np.float32)
    pe[:4, 5] += 2000.0
    sd["encoder.positional_embedding"] = pe.astype(np.float16)
    for k in ("encoder.blocks.0.attn.out.weight", "encoder.blocks.0.mlp.2.weight"):
        sd[k] = (np.array(sd[k], np.float32) * 1000).astype(np.float16)
    d = tmp_path_factory.mktemp("outlier")
    b = export_bundle(load_checkpoint(write_openai_pt(d / "m.pt", dims, sd)), d / "b", formats=("tflite",),
                      checkpoint=False, soc=None)
    mels = (np.random.default_rng(0).standard_normal((2, 80, 3000)) * 0.3).astype(np.float32)
    return b.path_of("tflite"), mels


def test_tflite_mixed_keeps_the_layernorm_input_16bit(outlier_tflite, tmp_path):
    """Issue 13: the mixed scheme (q/k/v, q·kᵀ, fc1 in int8) was garbage on the TFLite path only.
    The converter splits LayerNorm, and its normalising ops (x·rsqrt(var), + −mean·rsqrt(var))
    read the residual stream; written as int8 ops, ai-edge-quantizer requantized the residual
    and the statistics to int8 in front of them: the A8W8 failure again (this file: -3 dB). The
    recipe now gives them the residual's 16 bits, and the 8-bit requantization happens on the
    normalised values the int8 products read."""
    from whisper_genio.tools.quantize import tflite_quant

    path, mels = outlier_tflite
    qsvs = tflite_quant.collect_qsvs(path, mels[:1])
    mixed = parse_scheme("a16w8:ln1=8,q=8,k=8,v=8,qk=8,ln2=8,fc1=8")
    out = tflite_quant.quantize(path, tmp_path / "mixed.tflite", mixed, qsvs)
    g = tflite_quant.Graph(out)
    roles = tflite_quant.tensor_roles(g)
    dtype = lambda t: np.dtype(g.tensors[int(t)]["dtype"]).name  # noqa: E731
    role = lambda t: roles.get(g.name(int(t)))  # noqa: E731
    fcs = [o for o in g.ops
           if o["op_name"] == "FULLY_CONNECTED" and role(o["outputs"][0]).role in ("q", "k", "v", "fc1")]
    assert len(fcs) == 4 and all(dtype(o["inputs"][0]) == "int8" for o in fcs)  # the int8 products stay int8
    for o in g.ops:  # nothing puts the residual stream on an 8-bit grid
        ins = [int(i) for i in o["inputs"] if int(i) >= 0]
        if any(role(i) is not None and role(i).group == "resid" for i in ins):
            assert dtype(o["outputs"][0]) != "int8", (o["op_name"], g.name(int(o["outputs"][0])))
    ref = tflite_quant.run(path, mels[1])
    assert _sqnr(ref, tflite_quant.run(out, mels[1])) > 20
    # per tensor: the LayerNorm outputs the int8 products read keep their accuracy
    rows = tflite_quant.tensor_sqnr(path, out, mels[1])
    ln = [r for r in rows if r["role"] in ("b0.ln1", "b0.ln2")]
    assert ln and min(r["sqnr_db"] for r in ln) > 20, ln


# -- the quantized bundle ---------------------------------------------------------------------------

def test_quantize_bundle_writes_a_loadable_bundle(float_bundle, calibration_split, tmp_path, heldout_window,
                                                  cpu_model, onnx_ranges, tflite_qsvs):
    import whisper_genio
    from whisper_genio.backends.bundle import load_bundle
    from whisper_genio.tools.quantize.pipeline import quantize_bundle

    calib, _ = calibration_split
    out = tmp_path / "q"
    summary = quantize_bundle(float_bundle, [], "a16w8", out, calibration_files=[r["path"] for r in calib],
                              max_windows=2, soc="genio-510")
    b = load_bundle(out)
    t = b.artifacts["tflite"]
    assert t.input.dtype == "int16" and t.output.dtype == "int16" and t.output.scale > 0 and t.output.zero_point == 0
    q = t.extra["quantization"]
    assert q["scheme"] == "a16w8" and q["io"]["output"]["scale"] == t.output.scale
    assert q["float_ops"] and set(q["float_ops"]) <= {"MEAN", "SQUARED_DIFFERENCE", "RSQRT", "ADD", "MUL", "SUB"}
    assert q["calibration"]["windows"] == 2
    assert t.extra["compiler"]["command"][:4] == ["ncc-tflite", "--arch=mdla3.0", "--relax-fp32", "--opt-accuracy"]
    o = b.artifacts["onnx"]
    assert o.input.dtype == "float32"  # QDQ keeps float I/O; the inner scales are recorded
    assert o.extra["opset"] == 21 and o.extra["neuron_ep"]["refused"] == []  # the pre-flight ran on it
    assert o.extra["quantization"]["io"]["input"]["dtype"] == "int16"
    assert summary["int8_mac_share"] == 0.0
    # the onnxruntime backend runs the quantized bundle and transcribes like the CPU encoder
    w, row = heldout_window
    m = whisper_genio.load_model("base", backend="onnxruntime", encoder_model=str(out), threads=2)
    got = m.decode(w.mels[0], language="en", without_timestamps=True).text
    want = cpu_model.decode(w.mels[0], language="en", without_timestamps=True).text
    from whisper_genio.tools.quantize.evaluate import wer

    assert wer([want], [got]) <= 0.1, (want, got)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantized_from"]
    # every written artifact was run once by the host's integer kernels against the float encoder
    for kind in ("tflite", "onnx"):
        hc = b.artifacts[kind].extra["quantization"]["host_check"]
        assert hc["pass"] and hc["sqnr_db"] >= 15.0 and hc["cosine"] > 0.99, (kind, hc)


def test_quantize_flags_an_artifact_that_fails_its_host_check(float_bundle, calibration_split, tmp_path, onnx_ranges):
    from whisper_genio.backends.bundle import load_bundle
    from whisper_genio.tools.quantize.pipeline import quantize_bundle

    calib, _ = calibration_split
    out = tmp_path / "q8"
    summary = quantize_bundle(float_bundle, [], "a8w8", out, formats=["onnx"], calibration_files=[r["path"] for r in calib],
                              max_windows=2, soc=None)
    hc = summary["artifacts"]["onnx"]["host_check"]
    assert not hc["pass"] and hc["sqnr_db"] < 5.0, hc  # A8W8 garbage is caught before anyone compiles it
    assert load_bundle(out).artifacts["onnx"].extra["quantization"]["host_check"] == hc


def test_quantize_refuses_a_quantized_bundle(tmp_path, float_bundle):
    from whisper_genio.tools.quantize.pipeline import quantize_bundle

    with pytest.raises(InvalidOptionError):
        quantize_bundle(float_bundle, [], "float", tmp_path / "x")


def test_mixed_search_on_real_windows(workspace, calibration_windows, onnx_ranges):
    """Two moves only, one window: the search runs end to end on ONNX Runtime and reports sensitivities."""
    from whisper_genio.tools.quantize import onnx_qdq, sensitivity
    from whisper_genio.tools.quantize.pipeline import _model
    from whisper_genio.tools.quantize.evaluate import Evaluator

    sub = calibration_windows.subset(1)
    ev = Evaluator(_model(workspace, 2), sub)
    scratch = workspace.cache / "test_search.onnx"

    def evaluate(scheme):
        p = onnx_qdq.quantize(workspace.onnx_prepared(), scratch, scheme, onnx_ranges)
        return ev.score([onnx_qdq.run(p, m) for m in sub.mels])

    res = sensitivity.search(evaluate, workspace.dims, moves=("logits", "fc2"), target_db=18.0)
    assert res.isolated["fc2"].score["sqnr_db"] < res.isolated["logits"].score["sqnr_db"]
    assert res.isolated["fc2"].accepted is False  # fc2 in 8 bits breaks the encoder
    assert res.scheme.overrides.get("qk") == 8  # q·kᵀ in int8 is cheap
