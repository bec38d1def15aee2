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
    assert opts == [{"NEURON_FLAG_MIN_GROUP_SIZE": "4"}, {}]
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
