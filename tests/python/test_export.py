"""whisper-genio export: TFLite (litert-torch) and ONNX encoders with the fixed [1, n_mels, 3000]
input, LayerNorm in a quantization-proof form, the bundle manifest, ncc-tflite commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_genio.backends.bundle import load_bundle
from whisper_genio.errors import InvalidOptionError, WhisperGenioError


def _sqnr(ref, x):
    return 20 * np.log10(np.linalg.norm(ref) / np.linalg.norm(ref - x))


def test_bundle_manifest_describes_both_encoders(float_bundle):
    b = load_bundle(float_bundle)
    assert set(b.artifacts) == {"tflite", "onnx"}
    for kind in ("tflite", "onnx"):
        a = b.artifacts[kind]
        assert a.input.shape == (1, 80, 3000) and a.input.dtype == "float32"
        assert a.output.shape == (1, 1500, 512) and a.output.dtype == "float32"
        assert (float_bundle / a.file).stat().st_size > 70e6
    assert b.artifacts["onnx"].extra["opset"] >= 17
    cmd = b.artifacts["tflite"].extra["compiler"]["command"]
    assert cmd[:4] == ["ncc-tflite", "--arch=mdla3.0", "--relax-fp32", "--opt-accuracy"]
    assert json.loads((float_bundle / "manifest.json").read_text())["encoder"]["tflite"]["input"]["name"] == \
        b.artifacts["tflite"].input.name


def test_tflite_and_onnx_match_the_cpu_encoder(float_bundle, cpu_model, heldout_window):
    from whisper_genio.tools.quantize import onnx_qdq, tflite_quant

    w, _ = heldout_window
    ref = np.array(cpu_model.encode(w.mels[0]), np.float32)
    t = tflite_quant.run(float_bundle / "encoder.tflite", w.mels[0])
    o = onnx_qdq.run(float_bundle / "encoder.onnx", w.mels[0])
    assert t.shape == o.shape == (1500, 512)
    assert _sqnr(ref, t) > 70
    assert _sqnr(ref, o) > 70


def test_onnx_layernorm_is_one_op_and_attention_is_explicit(float_bundle):
    import onnx

    m = onnx.load(str(float_bundle / "encoder.onnx"), load_external_data=False)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("LayerNormalization") == 2 * 6 + 1
    assert "Softmax" in ops and ops.count("Softmax") == 6
    assert "Cast" not in ops  # openai-whisper's x.float() casts are stripped
    assert m.graph.output[0].name == "states"


def test_our_exports_pass_the_board_preflights(float_bundle):
    """The encoder as we export it: the ONNX meets the NeuronExecutionProvider's requirements
    (opset >= 13, static shapes after plain shape inference, no non-QDQ integer ops), and the TFLite
    holds nothing the MDLA pre-flight calls refused on any generation: no rank > 4, no GATHER, no
    dynamic shape, no custom op, no data type outside the MDLA's (FP32 is relaxed to FP16). What it
    does flag is expected: FC batch 1500 on MDLA 3.0 (converted to CONV_2D) and BATCH_MATMUL."""
    from whisper_genio.tools.export_onnx import neuron_ep_problems
    from whisper_genio.tools.mdla_check import GENERATIONS, run_check

    assert neuron_ep_problems(float_bundle / "encoder.onnx") == []
    # export ran the same pre-flight and recorded it: nothing refused, the FP32 products noted (FP16 on the NPU)
    record = json.loads((float_bundle / "manifest.json").read_text())["encoder"]["onnx"]["neuron_ep"]
    assert record["refused"] == [] and any("FP16" in n for n in record["notes"]), record
    result, text = run_check(float_bundle, "all")
    (f,) = result["files"]
    assert f["file"].endswith("encoder.tflite") and "GATHER" not in f["ops"]
    for gen in GENERATIONS:
        rules = {r["rule"] for r in f["findings"][gen]}
        assert not rules & {"rank>4", "gather", "dynamic-shape", "custom-op", "dtype", "dim>65535"}, (gen, rules)
        assert "fp32" in rules
    fc = [r for r in f["findings"]["mdla3.0"] if r["rule"] == "fc-batch"]
    assert [r["subject"] for r in fc] == ["FULLY_CONNECTED batch 1500"] and fc[0]["count"] == 6 * 6
    bmm = [r for r in f["findings"]["mdla5.3"] if r["rule"] == "batch-matmul-5.3"]
    assert bmm[0]["count"] == 2 * 6 and bmm[0]["confidence"] == "reported"
    print(text)


def test_tflite_layernorm_statistics_are_tagged_and_fp16_safe(float_bundle, tflite_qsvs):
    """The converter splits LayerNorm; its statistics are recognised (to stay float) and the
    prescaled export keeps the squared deviations inside FP16's range."""
    from whisper_genio.tools.quantize import tflite_quant

    g = tflite_quant.Graph(float_bundle / "encoder.tflite")
    roles = tflite_quant.tensor_roles(g)
    sq = [g.name(o["outputs"][0]) for o in g.ops if o["op_name"] == "SQUARED_DIFFERENCE"]
    assert len(sq) == 13
    assert all(roles[n].role == "ln_stats" for n in sq)
    kinds = {r.role for r in roles.values()}
    assert {"conv1", "gelu1", "conv2", "pos", "ln1", "q", "k", "v", "qk", "softmax", "pv", "attn_out", "resid1", "ln2",
            "fc1", "gelu", "fc2", "resid2", "ln_post"} <= kinds
    peak = max(float(tflite_qsvs[n]["max"].max()) for n in sq)
    assert 100 < peak < 65504, peak  # squared outlier / 64: fits FP16 (unscaled it is ~3e5)


def test_onnx_roles_cover_every_block(float_bundle, workspace):
    from whisper_genio.tools.quantize import onnx_qdq
    from whisper_genio.tools.quantize.schemes import BLOCK_ROLES

    roles = onnx_qdq.tensor_roles(workspace.onnx_prepared())
    for b in range(6):
        assert {r.role for r in roles.values() if r.block == b} == set(BLOCK_ROLES)
    assert any(r.role == "ln_post" for r in roles.values())


def test_ncc_commands_per_soc(tmp_path):
    from whisper_genio.tools.ncc import ncc_command, run_ncc

    assert ncc_command("e.tflite", "e.dla", soc="genio-1200") == [
        "ncc-tflite", "--arch=mdla2.0", "--num-mdla=2", "--relax-fp32", "--opt-accuracy", "-d", "e.dla", "e.tflite"]
    assert "--relax-fp32" not in ncc_command("e.tflite", "e.dla", soc="mt8390", float_ops=False)
    g720 = ncc_command("e.tflite", "e.dla", soc="Genio 720")
    assert "--arch=mdla5.3,edma3.6" in g720 and "--l1-size-kb=256" in g720
    with pytest.raises(InvalidOptionError, match="no MDLA"):
        ncc_command("e.tflite", "e.dla", soc="genio-350")
    with pytest.raises(InvalidOptionError, match="unknown SoC"):
        ncc_command("e.tflite", "e.dla", soc="mt9999")
    assert run_ncc(["whisper-genio-no-such-compiler", "x"]) is None


def test_onnx_opset_below_17_is_refused(tmp_path, base_checkpoint):
    from whisper_genio.tools.export_onnx import export_encoder_onnx

    with pytest.raises(InvalidOptionError, match="17"):
        export_encoder_onnx(base_checkpoint, tmp_path / "e.onnx", opset=16)


def test_missing_exporter_names_the_extra(monkeypatch, tmp_path, base_checkpoint):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("litert_torch"):
            raise ImportError("No module named 'litert_torch'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda n, *a: fake(n))
    from whisper_genio.tools.export import export_encoder_tflite

    with pytest.raises(WhisperGenioError, match=r"whisper_genio\[export\]"):
        export_encoder_tflite(base_checkpoint, tmp_path / "e.tflite")


def test_cli_export_onnx_only(tmp_path, base_checkpoint, capsys):
    pytest.importorskip("onnx")
    from whisper_genio.cli import main

    assert main(["export", "--model", "base", "--format", "onnx", "--no-checkpoint", "-o", str(tmp_path / "b")]) == 0
    b = load_bundle(tmp_path / "b")
    assert set(b.artifacts) == {"onnx"}
    assert "onnx:" in capsys.readouterr().out


def test_other_sizes_export_and_quantize(tmp_path):
    """A random 2-layer, 128-mel model (large-v3's input, any width): export, roles and A16W8 on
    both paths work for any Whisper size, not only base."""
    for m in ("torch", "onnx", "whisper.model", "litert_torch", "onnxruntime", "ai_edge_quantizer"):
        pytest.importorskip(m)
    from model_factory import make_random_state_dict, write_openai_pt

    from whisper_genio.checkpoints import load_checkpoint
    from whisper_genio.dims import ModelDims
    from whisper_genio.tools.export import export_bundle
    from whisper_genio.tools.quantize import onnx_qdq, tflite_quant
    from whisper_genio.tools.quantize.calibrate import CalibrationWindows
    from whisper_genio.tools.quantize.pipeline import Workspace
    from whisper_genio.tools.quantize.schemes import BLOCK_ROLES, parse_scheme

    dims = ModelDims(n_mels=128, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2, n_vocab=51866,
                     n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
    pt = write_openai_pt(tmp_path / "tiny.pt", dims, make_random_state_dict(dims))
    b = export_bundle(load_checkpoint(pt), tmp_path / "b", checkpoint=False, soc="genio-1200")
    assert b.artifacts["tflite"].input.shape == (1, 128, 3000) and b.artifacts["onnx"].output.shape == (1, 1500, 64)
    troles = tflite_quant.tensor_roles(b.path_of("tflite"))
    ws = Workspace(b.root)
    oroles = onnx_qdq.tensor_roles(ws.onnx_prepared())
    for roles in (troles, oroles):
        for blk in range(2):
            assert set(BLOCK_ROLES) <= {r.role for r in roles.values() if r.block == blk}
    rng = np.random.default_rng(0)
    mels = (rng.standard_normal((2, 128, 3000)) * 0.3).astype(np.float32)
    w = CalibrationWindows(mels, np.array([1500, 1500], np.int32), [["a"], ["b"]])
    ref = onnx_qdq.run(b.path_of("onnx"), mels[0])
    q = onnx_qdq.quantize(ws.onnx_prepared(), tmp_path / "q.onnx", parse_scheme("a16w8"), ws.onnx_ranges(w))
    assert _sqnr(ref, onnx_qdq.run(q, mels[0])) > 20
    t = tflite_quant.quantize(b.path_of("tflite"), tmp_path / "q.tflite", parse_scheme("a16w8"), ws.tflite_qsvs(w))
    assert _sqnr(ref, tflite_quant.run(t, mels[0])) > 20
