"""Decoder subgraph export (issue 6): TFLite per op at fixed shapes via litert-torch, A16W8 and
weight-only int8 via ai-edge-quantizer calibrated on activations recorded from the native decode
loop, manifest entries with shapes, dtypes, scales and the ncc-tflite command; host numerics of
the quantized subgraphs (LiteRT's integer kernels) inside the native loop through callback
runners, and the WER of the whole pipeline with an A16W8 decoder against the float decoder."""

from __future__ import annotations

import time

import numpy as np
import pytest

import whisper_genio
from whisper_genio.backends.bundle import load_bundle, make_manifest, write_manifest
from whisper_genio.checkpoints import load_checkpoint
from whisper_genio.dims import ModelDims

from model_factory import make_random_state_dict, write_openai_pt
from testdata import TEST_THREADS, report_metric

ed = pytest.importorskip("whisper_genio.tools.export_decoder")


def _need_tools():
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    dims = ModelDims(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1, n_vocab=51865,
                     n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
    folder = tmp_path_factory.mktemp("tiny_export")
    pt = write_openai_pt(folder / "tiny.pt", dims, make_random_state_dict(dims, seed=5))
    return load_checkpoint(pt), pt


def _audio(seconds=3.0):
    return (0.1 * np.sin(np.arange(int(16000 * seconds)) * 0.05)).astype(np.float32)


@pytest.mark.parametrize("quant", [None, "a16w8", "w8"])
def test_export_tiny(quant, tiny, tmp_path):
    _need_tools()
    ck, pt = tiny
    m = whisper_genio.load_model(pt, threads=TEST_THREADS)
    acts = ed.record_activations(m, ck.tensors, [_audio()], vocab_chunk=32768) if quant == "a16w8" else None
    if acts is not None:
        assert set(acts) == {(op, 0) for op in ed.LINEAR_OPS} | {("vocab", -1)}
        assert acts[("fc2", 0)].shape[1] == 4 * ck.dims.n_text_state and len(acts[("fc2", 0)]) > 3
    entries = ed.export_decoder_subgraphs(ck, tmp_path, batches=(2,), quantize=quant, calibration=acts,
                                          vocab_chunk=32768, soc="genio-700")
    assert len(entries) == 6 + 2
    write_manifest(tmp_path, make_manifest(ck.dims, extra={"decoder": {"subgraphs": entries}}))
    b = load_bundle(tmp_path)
    assert len(b.decoder_subgraphs) == 8
    d = ck.dims.n_text_state
    for e in b.decoder_subgraphs:
        n_out = e["cols"] if e["op"] == "vocab" else {"self_qkv": 3 * d, "fc1": 4 * d}.get(e["op"], d)
        n_in = 4 * d if e["op"] == "fc2" else d
        assert e["inputs"][0]["shape"] == [2, n_in] and e["outputs"][0]["shape"] == [2, n_out]
        cmd = e["compiler"]["command"]
        assert cmd[0] == "ncc-tflite" and "--arch=mdla3.0" in cmd and cmd[-1] == e["files"]["tflite"]
        assert ("--relax-fp32" in cmd) == (quant != "a16w8")
        per = e["compiler"]["per_soc"]
        assert "--arch=mdla2.0" in per["genio-1200"] and "--num-mdla=2" in per["genio-1200"]
        assert "--arch=mdla5.3,edma3.6" in per["genio-720"]
        if quant == "a16w8":
            assert e["inputs"][0]["dtype"] == "int16" and e["inputs"][0]["scale"] > 0
            assert e["quantization"]["scheme"] == "a16w8"
        else:
            assert e["inputs"][0]["dtype"] == "float32"
    # numerics of each subgraph in LiteRT against x W^T + b
    runners = ed.litert_entries(b.decoder_subgraphs, tmp_path)
    rng = np.random.default_rng(0)
    for e, r in zip(b.decoder_subgraphs, runners):
        if e["op"] == "vocab":
            w = np.asarray(ck.tensors["decoder.token_embedding.weight"], np.float32)[e["col0"]:e["col0"] + e["cols"]]
            bias = 0.0
        else:
            w, bias = ed.linear_weights(ck.tensors, 0, e["op"])
        x = acts[(e["op"], 0 if e["op"] != "vocab" else -1)][:2] if acts else rng.standard_normal((2, w.shape[1]))
        want = x.astype(np.float32) @ w.T + bias
        got = r["callback"](x.astype(np.float32))
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert rel < (1e-5 if quant is None else 0.02), (e["op"], quant, rel)
    # the native loop with these subgraphs as callback runners (batch 2 = best_of 2 sampling)
    plan = m.set_decoder_offload("linear", runners)
    assert all(p["where"] == "npu" for p in plan)
    m.decode(_audio(), language="en", sample_len=8, temperature=0.5, best_of=2)
    assert m.offload_stats()["npu_calls"] > 0


def test_layer_step_tflite_in_the_native_loop(tmp_path):
    """The exported float layer step (litert-torch), run by LiteRT as the layer-step runner with the
    KV cache bound as its inputs: the CPU path's tokens, greedy and beam 2 (cache reordered in place)."""
    _need_tools()
    dims = ModelDims(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1, n_vocab=51865,
                     n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2)
    pt = write_openai_pt(tmp_path / "tiny.pt", dims, make_random_state_dict(dims, seed=1))
    ck = load_checkpoint(pt)
    m = whisper_genio.load_model(pt, threads=TEST_THREADS)
    ref = m.decode(_audio(), language="en", sample_len=12).tokens
    ref_beam = m.decode(_audio(), language="en", sample_len=12, beam_size=2).tokens
    entries = ed.export_decoder_subgraphs(ck, tmp_path, batches=(1, 2), kinds=("layer",), soc="genio-720",
                                          vocab=False)
    assert [e["op"] for e in entries] == ["layer_step"] * 4
    e = entries[0]
    assert [t["shape"] for t in e["inputs"]] == [[1, 64], [1, 448, 64], [1, 448, 64], [1500, 64], [1500, 64], [1, 448]]
    assert "--relax-fp32" in e["compiler"]["command"] and "--arch=mdla5.3,edma3.6" in e["compiler"]["command"]
    plan = m.set_decoder_offload("layer", ed.litert_entries(entries, tmp_path))
    assert sorted((p["op"], p["where"]) for p in plan if p["op"] != "vocab") == [("layer_step", "npu")] * 4
    for beam, want in ((0, ref), (2, ref_beam)):
        calls0 = m.pipeline.decoder.forward_calls
        m.offload_stats(reset=True)
        assert m.decode(_audio(), language="en", sample_len=12, beam_size=beam or None).tokens == want
        steps = m.pipeline.decoder.forward_calls - calls0 - 1  # the prompt runs on the CPU
        assert steps > 3 and m.offload_stats()["npu_calls"] == dims.n_text_layer * steps


@pytest.mark.slow
def test_host_numerics_a16w8_decoder_wer(english_items, english_normalizer, tmp_path):
    """WER of whisper-base with every decoder projection and vocabulary chunk run as an A16W8
    TFLite subgraph in LiteRT (greedy), against the float decoder: within 0.5 points."""
    _need_tools()
    jiwer = pytest.importorskip("jiwer")
    from testdata import require_base_checkpoint

    ck = require_base_checkpoint()
    verified = [r for r in english_items if r["status"] == "verified"]
    if len(verified) < 20:
        pytest.skip("needs 20 verified English clips")
    calib, evaluate = verified[-8:], verified[:12]
    m = whisper_genio.load_model("base", threads=TEST_THREADS)
    t0 = time.perf_counter()
    acts = ed.record_activations(m, ck.tensors, [str(r["path"]) for r in calib])
    entries = ed.export_decoder_subgraphs(ck, tmp_path, batches=(1,), quantize="a16w8", calibration=acts)
    t_export = time.perf_counter() - t0
    refs = [english_normalizer(r["transcript"]) for r in evaluate]
    float_text = [m.transcribe(str(r["path"]), language="en", temperature=0.0)["text"] for r in evaluate]
    plan = m.set_decoder_offload("linear", ed.litert_entries(entries, tmp_path))
    assert all(p["where"] == "npu" for p in plan)
    t0 = time.perf_counter()
    m.offload_stats(reset=True)
    q_text = [m.transcribe(str(r["path"]), language="en", temperature=0.0)["text"] for r in evaluate]
    t_q = time.perf_counter() - t0
    s = m.offload_stats()
    wer_f = jiwer.wer(refs, [english_normalizer(t) for t in float_text])
    wer_q = jiwer.wer(refs, [english_normalizer(t) for t in q_text])
    same = sum(a == b for a, b in zip(float_text, q_text))
    report_metric(f"A16W8 decoder subgraphs (LiteRT host numerics, whisper-base, greedy) on {len(evaluate)} verified "
                  f"English clips: WER float {wer_f:.2%}, A16W8 {wer_q:.2%}; identical text {same}/{len(evaluate)}; "
                  f"export+calibration {t_export:.0f} s, {s['npu_calls']} subgraph calls in {t_q:.0f} s")
    assert wer_q - wer_f <= 0.005


def test_cli_export_decoder_subgraphs(tiny, tmp_path, capsys):
    """whisper-genio export --decoder-subgraphs: the bundle's manifest lists them (validated on
    load); without compiled DLAs a model built from it keeps every op on the CPU, saying why."""
    _need_tools()
    pytest.importorskip("onnx")
    from whisper_genio.cli import main

    ck, pt = tiny
    out = tmp_path / "bundle"
    assert main(["export", "--model", str(pt), "-o", str(out), "--format", "onnx", "--decoder-subgraphs", "linear",
                 "--beams", "1", "--decoder-quantize", "w8", "--soc", "genio-510"]) == 0
    printed = capsys.readouterr().out
    assert "decoder subgraphs: " in printed and "--arch=mdla3.0" in printed
    b = load_bundle(out)
    assert len(b.decoder_subgraphs) == 6 + 7 and all(e["batch"] == 1 for e in b.decoder_subgraphs)
    m = whisper_genio.load_model(pt, threads=TEST_THREADS, decoder_offload="auto", decoder_subgraphs=str(out))
    assert all(e["where"] == "cpu" for e in m.decoder_plan)
    assert "no subgraph in the bundle" in m.decoder_plan_text()
