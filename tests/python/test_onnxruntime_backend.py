"""The "onnxruntime" encoder backend: an encoder exported by whisper_genio.tools.export_onnx, run
by ONNX Runtime, against the native cpu backend on real speech (cosine >= 0.9999), provider
choice and reporting, auto's order, and refusal of graphs that are not a Whisper encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import whisper_genio
from whisper_genio.backends import onnxruntime as onnx_encoder
from whisper_genio.errors import BackendUnavailableError, InvalidOptionError, ModelLoadError

from testdata import TEST_THREADS, require_speech

ort = pytest.importorskip("onnxruntime")
MIN_COSINE = 0.9999


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, base_checkpoint):
    """whisper-base's encoder exported to ONNX (torch + onnx at export time only), with a manifest."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("whisper")
    from whisper_genio.tools.export_onnx import export_encoder_onnx

    folder = tmp_path_factory.mktemp("onnx_bundle")
    export_encoder_onnx(base_checkpoint, folder / "encoder.onnx", manifest=True)
    return folder


@pytest.fixture(scope="module")
def ort_model(bundle, monkeypatch_module):
    return whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=bundle)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.delenv("WHISPER_GENIO_NEURON_LIB", raising=False)
    yield mp
    mp.undo()


def test_export_writes_a_fixed_shape_graph_and_manifest(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    onnx_entry = manifest["encoder"]["onnx"]
    assert onnx_entry["file"] == "encoder.onnx" and onnx_entry["opset"] == 17
    assert onnx_entry["input"]["shape"] == [1, 80, 3000] and onnx_entry["output"]["shape"] == [1, 1500, 512]
    session = ort.InferenceSession(str(bundle / "encoder.onnx"), providers=["CPUExecutionProvider"])
    (i,), (o,) = session.get_inputs(), session.get_outputs()
    assert (i.name, list(i.shape), o.name, list(o.shape)) == ("mel", [1, 80, 3000], "states", [1, 1500, 512])


def test_auto_picks_onnxruntime_and_reports_the_providers(ort_model):
    assert ort_model.backend == "onnxruntime"
    assert [s.name for s in ort_model.backend_skipped] == ["neuron"]
    info = ort_model.pipeline.encoder.info
    assert info["providers"] == ["CPUExecutionProvider"]  # this onnxruntime has no NeuronExecutionProvider
    assert "NeuronExecutionProvider is not in this onnxruntime" in info["notes"][0]
    assert "CPUExecutionProvider" in ort_model.backend_info


def test_parity_with_the_cpu_backend_on_real_speech(ort_model, base_model):
    rows = [r for r in require_speech() if r["id"].startswith(("en_jfk", "de_fleurs_test_000", "zh_"))][:3]
    assert rows
    for row in rows:
        mel = base_model.log_mel(str(row["path"]))
        ref = base_model.encode(mel)
        got = ort_model.encode(mel)
        c = cosine(got, ref)
        print(f"{row['id']}: cosine {c:.8f}, max abs {np.abs(got - ref).max():.2e}")
        assert c >= MIN_COSINE, row["id"]
    # ONNX Runtime wrote the states straight into the native buffer the decoder reads
    enc = ort_model.pipeline.encoder
    np.testing.assert_array_equal(np.asarray(enc.states), got)
    jfk = [r for r in rows if r["id"].startswith("en_jfk")][0]
    assert ort_model.transcribe(str(jfk["path"]), language="en")["text"] == \
        base_model.transcribe(str(jfk["path"]), language="en")["text"]


def test_provider_choice():
    names, opts, notes = onnx_encoder.choose_providers(None, ["NeuronExecutionProvider", "CPUExecutionProvider"])
    assert names == ["NeuronExecutionProvider"] and opts[0]["NEURON_FLAG_USE_FP16"] == "1" and notes
    names, opts, notes = onnx_encoder.choose_providers(None, ["CPUExecutionProvider"])
    assert names == ["CPUExecutionProvider"] and "not in this onnxruntime" in notes[0]
    names, opts, _ = onnx_encoder.choose_providers(
        [("NeuronExecutionProvider", {"NEURON_FLAG_MIN_GROUP_SIZE": 4}), "CPUExecutionProvider"],
        ["NeuronExecutionProvider", "CPUExecutionProvider"])
    assert names == ["NeuronExecutionProvider", "CPUExecutionProvider"]
    assert opts == [{"NEURON_FLAG_USE_FP16": "1", "NEURON_FLAG_MIN_GROUP_SIZE": "4"}, {}]
    with pytest.raises(BackendUnavailableError, match="NeuronExecutionProvider"):
        onnx_encoder.choose_providers(["NeuronExecutionProvider"], ["CPUExecutionProvider"])
    with pytest.raises(InvalidOptionError):
        onnx_encoder.choose_providers([42], ["CPUExecutionProvider"])


def test_explicit_providers_and_missing_ones(bundle, monkeypatch_module):
    m = whisper_genio.load_model("base", backend="onnxruntime", threads=TEST_THREADS, encoder_model=bundle,
                                 providers=["CPUExecutionProvider"])
    assert m.pipeline.encoder.info["requested"] == ["CPUExecutionProvider"]
    with pytest.raises(BackendUnavailableError, match="NeuronExecutionProvider"):
        whisper_genio.load_model("base", backend="onnxruntime", encoder_model=bundle,
                                 providers=["NeuronExecutionProvider"])


def test_graphs_that_are_not_a_whisper_encoder_are_refused(tmp_path, monkeypatch_module):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, 80, 100])
    y = helper.make_tensor_value_info("states", TensorProto.FLOAT, [1, 80, 100])
    graph = helper.make_graph([helper.make_node("Identity", ["mel"], ["states"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "encoder.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match=r"\[1, 80, 100\].*\[1, 80, 3000\]"):
        whisper_genio.load_model("base", backend="onnxruntime", encoder_model=path)
    with pytest.raises(BackendUnavailableError, match="no ONNX encoder"):
        whisper_genio.load_model("base", backend="onnxruntime")


BOTH = ["NeuronExecutionProvider", "CPUExecutionProvider"]


def test_neuron_options_are_checked_and_fp16_is_always_on():
    assert onnx_encoder.neuron_options() == {"NEURON_FLAG_USE_FP16": "1"}
    assert onnx_encoder.neuron_options({"NEURON_FLAG_MDLA_ONLY": True, "NEURON_FLAG_USE_FP16": "1"}) == \
        {"NEURON_FLAG_USE_FP16": "1", "NEURON_FLAG_MDLA_ONLY": "1"}
    with pytest.raises(InvalidOptionError, match="NEURON_FLAG_USE_FP16 cannot be turned off"):
        onnx_encoder.neuron_options({"NEURON_FLAG_USE_FP16": "0"})
    with pytest.raises(InvalidOptionError, match=r"unknown NeuronExecutionProvider option 'NEURON_FLAG_USE_FP32'; "
                       r"known: NEURON_FLAG_USE_FP16, .*NEURON_FLAG_OPTIMIZATION_STRING"):
        onnx_encoder.choose_providers([("neuron", {"NEURON_FLAG_USE_FP32": "1"})], BOTH)


def test_cli_provider_syntax():
    parsed = onnx_encoder.parse_providers(
        "neuron:NEURON_FLAG_MIN_GROUP_SIZE=100;NEURON_FLAG_OPTIMIZATION_STRING=--opt=3 --arch=mdla5.3,edma3.6, cpu")
    assert parsed == (("neuron", {"NEURON_FLAG_MIN_GROUP_SIZE": "100",
                                  "NEURON_FLAG_OPTIMIZATION_STRING": "--opt=3 --arch=mdla5.3,edma3.6"}), "cpu")
    names, opts, _ = onnx_encoder.choose_providers(parsed, BOTH)
    assert names == BOTH and opts[0] == {"NEURON_FLAG_USE_FP16": "1", "NEURON_FLAG_MIN_GROUP_SIZE": "100",
                                         "NEURON_FLAG_OPTIMIZATION_STRING": "--opt=3 --arch=mdla5.3,edma3.6"}
    # a single string spec through the API reads alike
    assert onnx_encoder.choose_providers(["NeuronExecutionProvider:NEURON_FLAG_MDLA_ONLY=1"], BOTH)[1] == \
        [{"NEURON_FLAG_USE_FP16": "1", "NEURON_FLAG_MDLA_ONLY": "1"}]
    with pytest.raises(InvalidOptionError, match="KEY=VALUE"):
        onnx_encoder.parse_providers("neuron:NEURON_FLAG_MDLA_ONLY")
    with pytest.raises(InvalidOptionError, match="empty"):
        onnx_encoder.parse_providers(" , ")
    from whisper_genio.cli import _build_parser, _encoder_options

    args = _build_parser().parse_args(["transcribe", "x.wav", "--providers", "neuron:NEURON_FLAG_MIN_GROUP_SIZE=100,cpu"])
    assert _encoder_options(args)["encoder_options"].providers == (("neuron", {"NEURON_FLAG_MIN_GROUP_SIZE": "100"}),
                                                                    "cpu")


@pytest.fixture
def recorded_sessions(monkeypatch):
    """Stand-in for an onnxruntime with MediaTek's provider: get_available_providers() lists it and
    InferenceSession records the providers and options it is given, then opens the same graph on
    the CPU provider (the Neuron EP itself cannot be emulated inside onnxruntime)."""
    calls = []
    real = ort.InferenceSession

    def session(path, sess_options=None, providers=None, provider_options=None, **kw):
        calls.append({"providers": list(providers), "provider_options": [dict(o) for o in provider_options]})
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(BOTH))
    monkeypatch.delenv("WHISPER_GENIO_NEURON_LIB", raising=False)
    # The accuracy self-check a non-CPU provider gets at load: test_neuron_provider_self_check
    monkeypatch.setenv("WHISPER_GENIO_NPU_SELF_CHECK", "0")
    return calls


def test_neuron_provider_plumbing_and_the_same_graph_on_the_cpu(bundle, ort_model, recorded_sessions, base_model):
    m = whisper_genio.load_model("base", backend="onnxruntime", threads=TEST_THREADS, encoder_model=bundle)
    assert recorded_sessions[-1] == {"providers": ["NeuronExecutionProvider"],
                                     "provider_options": [{"NEURON_FLAG_USE_FP16": "1"}]}
    info = m.pipeline.encoder.info
    assert info["requested"] == ["NeuronExecutionProvider"] and info["providers"] == ["CPUExecutionProvider"]
    assert "NEURON_FLAG_USE_FP16" in m.backend_info
    m2 = whisper_genio.load_model("base", backend="onnxruntime", threads=TEST_THREADS, encoder_model=bundle,
                                  providers=[("neuron", {"NEURON_FLAG_MIN_GROUP_SIZE": 100,
                                                         "NEURON_FLAG_OPTIMIZATION_STRING": "--opt=3 --num-mdla=1"}),
                                             "cpu"])
    assert recorded_sessions[-1] == {
        "providers": BOTH,
        "provider_options": [{"NEURON_FLAG_USE_FP16": "1", "NEURON_FLAG_MIN_GROUP_SIZE": "100",
                              "NEURON_FLAG_OPTIMIZATION_STRING": "--opt=3 --num-mdla=1"}, {}]}
    mel = np.zeros((80, 3000), np.float32)
    mel[:, :500] = np.random.default_rng(0).normal(size=(80, 500)).astype(np.float32)
    ref = ort_model.encode(mel)  # the plain CPU session of the same file
    np.testing.assert_array_equal(m2.encode(mel), ref)
    with pytest.raises(InvalidOptionError, match="known: NEURON_FLAG_USE_FP16"):
        whisper_genio.load_model("base", backend="onnxruntime", encoder_model=bundle,
                                 providers=[("neuron", {"NEURON_FLAG_TURBO": "1"})])


def test_doctor_lists_the_provider_options_in_force(recorded_sessions):
    from whisper_genio.tools.doctor import Report, _check_onnxruntime

    r = Report()
    _check_onnxruntime(r)
    opts = next(c for c in r.checks if c.name == "onnxruntime provider options")
    assert "in force by default: NeuronExecutionProvider {NEURON_FLAG_USE_FP16=1}" in opts.detail
    assert "NEURON_FLAG_MIN_GROUP_SIZE" in opts.detail


def test_exports_meet_the_neuron_ep_requirements(bundle, tmp_path):
    """The ONNX encoder we write: default-domain opset >= 13, every tensor statically shaped (after
    shape inference), no integer ops other than QDQ; and the checker catches each violation."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from whisper_genio.tools.export_onnx import neuron_ep_problems

    m = onnx.load(str(bundle / "encoder.onnx"))
    assert next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert neuron_ep_problems(bundle / "encoder.onnx") == []

    def model(nodes, x_shape, opset, inits=()):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        g = helper.make_graph(nodes, "g", [x], [y], initializer=list(inits))
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)],
                                 ir_version=10)  # the newest the board's ONNX Runtime 1.20.2 reads

    assert neuron_ep_problems(model([helper.make_node("Softmax", ["x"], ["y"])], [1, 4], 17)) == []
    assert "opset 12" in neuron_ep_problems(model([helper.make_node("Softmax", ["x"], ["y"])], [1, 4], 12))[0]
    (p,) = neuron_ep_problems(model([helper.make_node("Relu", ["x"], ["y"])], ["batch", 4], 17))
    assert "static shape" in p and "'batch'" in p
    s = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    z = helper.make_tensor("z", TensorProto.UINT8, [], [128])
    dyn = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "qs", "qz"]),
           helper.make_node("DequantizeLinear", ["q", "qs", "qz"], ["y"])]
    assert any("DynamicQuantizeLinear" in p for p in neuron_ep_problems(model(dyn, [1, 4], 17)))
    contrib = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], domain="com.microsoft"),
               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], domain="com.microsoft")]
    assert any("com.microsoft.DequantizeLinear, com.microsoft.QuantizeLinear" in p
               for p in neuron_ep_problems(model(contrib, [1, 4], 17, [s, z])))
    qdq = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
           helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    assert neuron_ep_problems(model(qdq, [1, 4], 17, [s, z])) == []


def test_neuron_ep_checker_flags_a_bad_graph(tmp_path):
    """One graph with all of it at once (a com.microsoft node, a dynamic dim, opset 11), graphs newer
    than the board's ONNX Runtime 1.20.2 reads, and the notes on matrix products: float32 (FP16 on
    the NPU), dequantized weights beside a float activation, and a whole QDQ unit (no note)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from whisper_genio.tools.doctor import FAIL, OK, WARN, onnx_preflight_check
    from whisper_genio.tools.export_onnx import NOTE, neuron_ep_findings, neuron_ep_problems

    def graph(nodes, x_shape, inits=()):
        return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=list(inits))

    bad = helper.make_model(graph([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], ["n", 4]),
                            opset_imports=[helper.make_opsetid("", 11), helper.make_opsetid("com.microsoft", 1)], ir_version=10)
    found = neuron_ep_problems(bad)
    assert len(found) == 3, found
    assert "opset 11" in found[0] and "'n'" in found[1] and "com.microsoft.Gelu" in found[2]
    relu = graph([helper.make_node("Relu", ["x"], ["y"])], [1, 4])
    assert "opset 22" in neuron_ep_problems(helper.make_model(relu, opset_imports=[helper.make_opsetid("", 22)], ir_version=10))[0]
    newer_ir = helper.make_model(relu, opset_imports=[helper.make_opsetid("", 21)], ir_version=11)
    assert "IR version 11" in neuron_ep_problems(newer_ir)[0]

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    wq = numpy_helper.from_array(np.ones((4, 3), np.int8), "wq")
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    z8 = numpy_helper.from_array(np.array(0, np.int8), "z8")
    zu = numpy_helper.from_array(np.array(128, np.uint8), "zu")
    dq_w = helper.make_node("DequantizeLinear", ["wq", "s", "z8"], ["wd"])
    std = [helper.make_opsetid("", 21)]
    fp32 = neuron_ep_findings(helper.make_model(graph([helper.make_node("MatMul", ["x", "w"], ["y"])], [1, 4], [w]),
                                                opset_imports=std, ir_version=10))
    assert [lvl for lvl, _ in fp32] == [NOTE] and "FP16" in fp32[0][1]
    weight_only = graph([dq_w, helper.make_node("MatMul", ["x", "wd"], ["y"], name="mm")], [1, 4], [wq, s, z8])
    (lvl, msg), = neuron_ep_findings(helper.make_model(weight_only, opset_imports=std, ir_version=10))
    assert lvl == NOTE and "weight-only" in msg and "mm" in msg
    unit = graph([helper.make_node("QuantizeLinear", ["x", "s", "zu"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "zu"], ["xd"]), dq_w,
                  helper.make_node("MatMul", ["xd", "wd"], ["m"]),
                  helper.make_node("QuantizeLinear", ["m", "s", "zu"], ["mq"]),
                  helper.make_node("DequantizeLinear", ["mq", "s", "zu"], ["y"])], [1, 4], [wq, s, z8, zu])
    assert neuron_ep_findings(helper.make_model(unit, opset_imports=std, ir_version=10)) == []

    # doctor --onnx: the same findings, a warning when something is refused, a clear failure for a non-model
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    onnx.save(helper.make_model(unit, opset_imports=std, ir_version=10), str(tmp_path / "good.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    c = onnx_preflight_check(str(tmp_path / "bad.onnx"))
    assert c.status == WARN and "com.microsoft.Gelu" in c.detail and c.fix
    assert onnx_preflight_check(str(tmp_path / "good.onnx")).status == OK
    c = onnx_preflight_check(str(tmp_path / "junk.onnx"))
    assert c.status == FAIL and "not readable as ONNX" in c.detail


def test_freeze_shapes_keeps_the_numbers():
    """A Reshape fed by Shape -> Slice -> Concat (openai-whisper's view(*x.shape[:2], h, -1)) gets a
    constant target: same output bit for bit, no shape arithmetic left, static shapes throughout."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from whisper_genio.tools.export_onnx import freeze_shapes, neuron_ep_problems

    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in (("s0", [0]), ("s2", [2]), ("tail", [2, -1]))]
    nodes = [helper.make_node("Shape", ["x"], ["sh"]),
             helper.make_node("Slice", ["sh", "s0", "s2"], ["lead"]),
             helper.make_node("Concat", ["lead", "tail"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    assert any("static shape" in p for p in neuron_ep_problems(model))
    x = np.random.default_rng(1).normal(size=(1, 6, 8)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert freeze_shapes(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Reshape", "Softmax"]
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(after, before)
    assert after.shape == (1, 6, 2, 4) and neuron_ep_problems(model) == []


class _WrongProviderSession:
    """STAND-IN for a session on a provider that computes wrongly (the Neuron EP has no emulator
    inside onnxruntime): the real CPU session runs, then a block of its states is pushed off by
    tens, as the Genio 720 report's FP16 BATCH_MATMUL was on the MDLA."""

    def __init__(self, real):
        self.real, self.out, self.runs = real, None, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def io_binding(self):
        binding, outer = self.real.io_binding(), self

        class Binding:
            real = binding

            def bind_input(self, *a):
                return binding.bind_input(*a)

            def bind_output(self, name, device, index, dtype, shape, ptr):
                outer.out = (ptr, tuple(shape))
                return binding.bind_output(name, device, index, dtype, shape, ptr)
        return Binding()

    def run_with_iobinding(self, binding):
        import ctypes

        self.real.run_with_iobinding(binding.real)
        self.runs += 1
        ptr, shape = self.out
        states = np.ctypeslib.as_array((ctypes.c_float * int(np.prod(shape))).from_address(ptr)).reshape(shape)
        states[0, :200, :80] += 29.0 * np.sign(states[0, :200, :80] + 1e-9)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """A random 1-layer, d=64 Whisper's encoder in ONNX (fast to check) and its checkpoint."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("whisper")
    from model_factory import make_random_state_dict, write_openai_pt
    from whisper_genio.dims import ModelDims
    from whisper_genio.tools.export_onnx import export_encoder_onnx

    dims = ModelDims(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1, n_vocab=51865,
                     n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
    folder = tmp_path_factory.mktemp("tiny_onnx")
    pt = write_openai_pt(folder / "tiny.pt", dims, make_random_state_dict(dims, seed=5))
    export_encoder_onnx(str(pt), folder / "encoder.onnx", manifest=True)
    return folder, pt


@pytest.mark.parametrize("wrong", [False, True])
def test_neuron_provider_self_check(tiny_bundle, monkeypatch, tmp_path, wrong):
    """A session on NeuronExecutionProvider (stand-in: the CPU provider behind it, its output
    corrupted when `wrong`) is checked at load like an encoder DLA: passes once, then is cached;
    wrong numbers raise with the numbers, or npu_fallback='cpu' runs the CPU encoder."""
    from whisper_genio.backends.options import EncoderOptions
    from whisper_genio.errors import NpuSelfCheckError

    sessions = []
    real = ort.InferenceSession

    def session(path, sess_options=None, providers=None, provider_options=None, **kw):
        s = real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])
        sessions.append(_WrongProviderSession(s) if wrong else s)
        return sessions[-1]

    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(BOTH))
    monkeypatch.delenv("WHISPER_GENIO_NEURON_LIB", raising=False)
    monkeypatch.setenv("WHISPER_GENIO_NPU_SELF_CHECK", "1")
    monkeypatch.setenv("WHISPER_GENIO_CACHE_DIR", str(tmp_path / "cache"))
    folder, pt = tiny_bundle
    kw = dict(backend="onnxruntime", threads=TEST_THREADS, encoder_model=folder)
    if not wrong:
        m = whisper_genio.load_model(pt, **kw)
        assert "self-check passed: SQNR" in m.backend_info, m.backend_info
        m = whisper_genio.load_model(pt, **kw)
        assert "self-check passed (cached)" in m.backend_info
        # ORT's own CPU provider is not checked (it is the reference's twin)
        m = whisper_genio.load_model(pt, providers=["cpu"], **kw)
        assert "self-check" not in m.backend_info
        return
    with pytest.raises(NpuSelfCheckError, match=r"onnxruntime encoder .* on NeuronExecutionProvider.*fails the "
                                                r"accuracy gate: SQNR") as e:
        whisper_genio.load_model(pt, **kw)
    assert e.value.verdict["sqnr_db"] < 15 and sessions[-1].runs == 1
    m = whisper_genio.load_model(pt, encoder_options=EncoderOptions(encoder_model=str(folder), npu_fallback="cpu"),
                                 backend="onnxruntime", threads=TEST_THREADS)
    assert sessions[-1].runs == 0  # the cached verdict: the provider ran nothing
    assert m.backend == "cpu" and "npu_fallback='cpu'" in m.backend_info
    assert "fails the accuracy gate" in {a.name: a.reason for a in m.backend_skipped}["onnxruntime"]
    cpu = whisper_genio.load_model(pt, backend="cpu", threads=TEST_THREADS)
    mel = cpu.log_mel(np.zeros(16000, np.float32))
    np.testing.assert_array_equal(m.encode(mel), cpu.encode(mel))
