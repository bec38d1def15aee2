"""The "neuron" encoder backend against the STAND-IN Neuron runtime (tests/cpp/standin; NOT
MediaTek's library), built here from source: search order and override, missing symbols, old
versions, wrong sizes, the whole transcribe path with the stand-in computing the real
whisper-base encoder's states (a lookup of precomputed states), zero copies per inference
(pointer identity), failures mid-inference, release always called, QoS bytes, quantized I/O,
input latching, two models in two threads, padded and float16-native device I/O."""

from __future__ import annotations

import gc
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import whisper_genio
from whisper_genio import _core
from whisper_genio.backends import EncoderOptions
from whisper_genio.backends.bundle import TensorInfo, make_manifest, write_manifest
from whisper_genio.dims import ModelDims
from whisper_genio.errors import (BackendUnavailableError, InferenceError, ModelLoadError, RuntimeVersionError)

import standin
from standin import Io
from testdata import TEST_THREADS, require_speech

BASE = ModelDims.for_size("base")
MEL = BASE.n_mels * 3000
STATES = BASE.n_audio_ctx * BASE.n_audio_state


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    out = tmp_path_factory.mktemp("standin")
    return {v: standin.build(out, v) for v in ("full", "nov2", "noinfer")}


@pytest.fixture()
def control(libs):
    c = standin.Control(libs["full"])
    c.reset()
    c.clear_log()
    yield c
    c.reset()


@pytest.fixture()
def neuron_env(monkeypatch, libs, tmp_path):
    monkeypatch.setenv("WHISPER_GENIO_NEURON_LIB", str(libs["full"]))
    monkeypatch.setenv("WHISPER_GENIO_DMA_HEAP", "none")  # host memory: the same on every machine
    # Linear stand-in maps and lookups without the self-check window compute no encoder that
    # could pass the accuracy self-check: the tests that check it turn it on.
    monkeypatch.setenv("WHISPER_GENIO_NPU_SELF_CHECK", "0")
    monkeypatch.setenv("WHISPER_GENIO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def linear_dla(tmp_path_factory):
    """A stand-in model file (named .dla so the backend takes it): out[j] = 0.01 * mel[j % MEL]."""
    path = tmp_path_factory.mktemp("models") / "linear.standin.dla"
    return standin.write_model(path, MEL, STATES, alpha=0.01)


def _probe_in_subprocess(lib_dir: pathlib.Path, override: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_GENIO_")}
    env["LD_LIBRARY_PATH"] = str(lib_dir)
    if override:
        env["WHISPER_GENIO_NEURON_LIB"] = override
    out = subprocess.run([sys.executable, "-c", "import json; from whisper_genio import _core; "
                          "print(json.dumps(_core.neuron_probe()))"], env=env, stdout=subprocess.PIPE, text=True,
                         check=True, cwd=lib_dir)  # not the repo root: `-c` puts the cwd first on sys.path
    return json.loads(out.stdout)


def test_search_order_and_override(tmp_path, libs):
    """The loader's own default names, found by the dynamic loader: the first that loads wins."""
    names = _core.neuron_default_library_names()
    assert names == ["libneuronusdk_runtime.mtk.so", "libneuronusdk_runtime.mtk.so.8",
                     "libneuronusdk_runtime.mtk.so.6", "libneuron_runtime.so"]
    d = tmp_path / "lib"
    d.mkdir()
    r = _probe_in_subprocess(d)
    assert not r["ok"] and all(n in r["reason"] for n in names) and "WHISPER_GENIO_NEURON_LIB" in r["reason"]
    shutil.copy(libs["full"], d / "libneuron_runtime.so")
    assert _probe_in_subprocess(d)["path"] == "libneuron_runtime.so"
    shutil.copy(libs["full"], d / "libneuronusdk_runtime.mtk.so.6")
    assert _probe_in_subprocess(d)["path"] == "libneuronusdk_runtime.mtk.so.6"
    shutil.copy(libs["nov2"], d / "libneuronusdk_runtime.mtk.so.8")
    r = _probe_in_subprocess(d)
    assert r["path"] == "libneuronusdk_runtime.mtk.so.8" and r["v2"] is False
    shutil.copy(libs["full"], d / "libneuronusdk_runtime.mtk.so")
    r = _probe_in_subprocess(d)
    assert r["path"] == "libneuronusdk_runtime.mtk.so" and r["v2"] is True and r["version"] == "6.3.3"
    assert r["attempts"] == ["libneuronusdk_runtime.mtk.so: loaded"]
    # The environment override comes first; a broken one is an error, not a fallback.
    r = _probe_in_subprocess(d, override=str(libs["nov2"]))
    assert r["path"] == str(libs["nov2"])
    r = _probe_in_subprocess(d, override=str(tmp_path / "nope.so"))
    assert not r["ok"] and "WHISPER_GENIO_NEURON_LIB" in r["reason"] and "nope.so" in r["reason"]


def test_missing_symbols_and_old_versions(libs, control):
    with pytest.raises(BackendUnavailableError, match="NeuronRuntime_inference"):
        _core.neuron_check_library(str(libs["noinfer"]))
    control.set_version(3, 2, 1)
    with pytest.raises(RuntimeVersionError, match="3.2.1"):
        _core.neuron_check_library(str(libs["full"]))
    control.set_version(4, 0, 2)
    info = _core.neuron_check_library(str(libs["full"]))
    assert info["version"] == "4.0.2" and info["layout"].startswith("legacy")
    control.set_version(8, 2, 16)
    info = _core.neuron_check_library(str(libs["full"]))
    assert info["layout"] == "np6" and "NP7" in info["layout_reason"]
    assert "NEURONRUNTIME_BAD_DATA (4)" in _core.neuron_error_message(4)


def test_auto_prefers_neuron_and_says_why_not(neuron_env, linear_dla, control, tmp_path):
    m = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=linear_dla)
    assert m.backend == "neuron" and m.backend_skipped == []
    assert "v2 API" in m.backend_info and "6.3.3" in m.backend_info
    del m
    m = whisper_genio.load_model("base", threads=TEST_THREADS)  # no DLA: the runtime alone is not enough
    assert m.backend == "cpu"
    reasons = {a.name: a.reason for a in m.backend_skipped}
    assert list(reasons) == ["neuron", "onnxruntime"]
    assert "no encoder DLA" in reasons["neuron"] and "6.3.3" in reasons["neuron"]
    del m
    opts = EncoderOptions(encoder_model=str(linear_dla), neuron_library=str(tmp_path / "absent.so"))
    m = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_options=opts)
    assert m.backend == "cpu" and "absent.so" in m.backend_skipped[0].reason
    with pytest.raises(BackendUnavailableError, match="absent.so"):
        whisper_genio.load_model("base", backend="neuron", threads=TEST_THREADS, encoder_options=opts)
    gc.collect()
    assert control.live() == 0


def _window_mels(samples: np.ndarray) -> list[np.ndarray]:
    """The mel windows transcribe(language=...) asks the encoder for, for a clip shorter than 30 s."""
    w = _core.MelWindows(samples, BASE.n_mels)
    return [w.window(0, w.content_frames)]


@pytest.fixture(scope="module")
def clips(base_model):
    """Two real English clips with the CPU encoder's states for their windows (the stand-in's table)."""
    wanted = ("en_jfk_inaugural_1961", "en_librivox_sas01_0890")
    rows = [r for r in require_speech() if r["id"] in wanted]
    if len(rows) < 2:
        pytest.skip("the JFK and LibriVox clips are missing from ../shared/data/speech")
    from whisper_genio.audio import load_audio

    out = []
    for row in rows:
        samples = load_audio(str(row["path"]))
        pairs = [(mel, base_model.encode(mel)) for mel in _window_mels(samples)]
        reference = base_model.transcribe(samples, language="en")
        out.append({"id": row["id"], "samples": samples, "pairs": pairs, "reference": reference})
    return out


def _bundle(folder: pathlib.Path, control: standin.Control, clips, out: Io) -> pathlib.Path:
    """A model bundle: manifest.json + a stand-in model file computing the real states by lookup."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [p for c in clips for p in c["pairs"]]
    standin.write_model(folder / "encoder.dla", MEL, STATES, out=out, alpha=0.01,
                        entries=standin.lookup_entries(control, pairs, out))
    tensor = TensorInfo("states", (1, 1500, 512), out.dtype, out.scale if out.dtype in ("int8", "uint8", "int16") else None,
                        out.zero_point if out.dtype in ("int8", "uint8", "int16") else None, "ntc")
    write_manifest(folder, make_manifest(BASE, model="base", dla={"file": "encoder.dla", "output": tensor,
                                                                  "compiler": {"tool": "stand-in"}}))
    return folder


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_transcribe_through_the_neuron_backend(api, neuron_env, control, clips, tmp_path):
    bundle = _bundle(tmp_path / "bundle", control, clips, Io())
    opts = EncoderOptions(encoder_model=str(bundle), neuron_api=api)
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_options=opts)
    assert model.backend == "neuron"
    enc = model.pipeline.encoder
    assert enc.api == api and enc.input_zero_copy and enc.output_zero_copy
    assert enc.mel_buffer_address == enc.input_address  # the mel is written into the DLA input
    control.clear_log()
    for clip in clips:
        result = model.transcribe(clip["samples"], language="en")
        assert result["text"] == clip["reference"]["text"], clip["id"]
        assert [s["tokens"] for s in result["segments"]] == [s["tokens"] for s in clip["reference"]["segments"]]
    windows = sum(len(c["pairs"]) for c in clips)
    assert control.misses() == 0 and control.hits() == windows  # every window was the real encoder's
    # Zero copies: every inference used the buffers allocated at load, and the decoder's states
    # view is the DLA output buffer itself.
    fn = "NeuronRuntimeV2_run" if api == "v2" else "NeuronRuntime_inference"
    runs = [standin.fields(l) for l in control.log() if l.startswith(fn + " ")]
    assert len(runs) == windows
    assert {standin.address(r["in"]) for r in runs} == {enc.input_address}
    assert {standin.address(r["out"]) for r in runs} == {enc.output_address}
    assert enc.states_address == enc.output_address
    if api == "v1":
        binds = [standin.fields(l) for l in control.log() if l.startswith("NeuronRuntime_setInput ")]
        assert len(binds) == windows  # rebound before every inference: the same buffer
        assert {standin.address(b["ptr"]) for b in binds} == {enc.input_address}
    assert control.calls("NeuronRuntime_create") + control.calls("NeuronRuntimeV2_create") == 0  # no new runtime
    del model, enc
    gc.collect()
    assert control.live() == 0


def test_int16_outputs_are_dequantized_once_natively(neuron_env, control, clips, tmp_path):
    peak = max(float(np.abs(s).max()) for c in clips for _, s in c["pairs"])
    out = Io("int16", scale=peak / 32767, zero_point=0)
    bundle = _bundle(tmp_path / "bundle16", control, clips, out)
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=bundle)
    enc = model.pipeline.encoder
    assert model.backend == "neuron" and not enc.output_zero_copy and enc.states_address != enc.output_address
    assert "int16" in model.backend_info
    clip = clips[0]
    mel, states = clip["pairs"][0]
    got = model.encode(mel)
    np.testing.assert_allclose(got, standin.quantize(states, out).astype(np.float32) * np.float32(out.scale), rtol=0,
                               atol=1e-6)
    result = model.transcribe(clip["samples"], language="en")
    assert result["text"] == clip["reference"]["text"]


def test_wrong_sizes_are_refused_with_what_differs(neuron_env, control, linear_dla, tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    shutil.copy(linear_dla, folder / "encoder.dla")
    write_manifest(folder, make_manifest(BASE, dla={"file": "encoder.dla",
                                                    "output": TensorInfo("states", (1, 1500, 512), "float16")}))
    with pytest.raises(ModelLoadError) as e:
        whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=folder)
    msg = str(e.value)
    assert f"expected {STATES * 2} bytes" in msg and f"got {STATES * 4} bytes" in msg and "float32" in msg, msg
    # a manifest for another model size is refused before the runtime is asked
    small = ModelDims.for_size("small")
    write_manifest(folder, make_manifest(small, dla={"file": "encoder.dla"}))
    with pytest.raises(ModelLoadError, match="n_audio_state 768 .bundle. vs 512"):
        whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=folder)
    gc.collect()
    assert control.live() == 0


def test_runtime_failures_raise_and_release_is_always_called(neuron_env, control, linear_dla):
    control.fail("NeuronRuntimeV2_create", 1, 4)
    with pytest.raises(ModelLoadError, match="NEURONRUNTIME_BAD_DATA"):
        whisper_genio.load_model("base", backend="neuron", threads=TEST_THREADS, encoder_model=linear_dla)
    assert control.live() == 0
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=linear_dla)
    mel = np.zeros((80, 3000), np.float32)
    control.fail("NeuronRuntimeV2_run", 1, 6)  # the next inference fails
    with pytest.raises(InferenceError, match="NeuronRuntimeV2_run failed: NEURONRUNTIME_RUNTIME_ERROR"):
        model.decode(mel, language="en")
    assert model.encode(mel).shape == (1500, 512)  # and the model goes on working
    assert control.live() == 1
    del model
    gc.collect()
    assert control.live() == 0 and control.calls("NeuronRuntimeV2_release") == 1


def test_a_stream_on_the_neuron_backend_encodes_whole_windows_within_a_bounded_buffer(neuron_env, control,
                                                                                      linear_dla):
    """A fixed-shape encoder (one 30 s DLA) streams without trimming: each decode runs the DLA on
    whole windows of a buffer that max_buffer bounds, however long the stream (the linear stand-in's
    states are not speech: only the path and the bounds are checked, not the text)."""
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=linear_dla)
    assert model.backend == "neuron"
    session = model.stream(vad=False, language="en", step=1.0, max_buffer=3.0, trim_seconds=2.0)
    assert "trim_window" not in session._kwargs  # nothing to trim: the DLA takes one shape
    control.clear_log()
    audio = (0.05 * np.random.default_rng(0).standard_normal(6 * 16000)).astype(np.float32)
    events = []
    for i in range(0, len(audio), 1600):
        events += session.feed(audio[i:i + 1600])
    events += session.flush()
    decodes = session.stats["steps"]
    assert decodes >= 6 and events[-1].type == "endpoint"
    assert control.calls("NeuronRuntimeV2_run") >= decodes  # every decode encoded on the (stand-in) NPU
    assert session.stats["decoded_seconds"] <= decodes * (3.0 + 1.0)  # no buffer past max_buffer + a step


def test_self_test_catches_input_latching(neuron_env, control, linear_dla):
    control.set_latch(True)
    opts = EncoderOptions(encoder_model=str(linear_dla), neuron_api="v1")
    with pytest.raises(InferenceError, match="latch"):
        whisper_genio.load_model("base", threads=TEST_THREADS, encoder_options=opts)
    gc.collect()
    assert control.live() == 0
    # without rebinding, V1 binds once at load
    control.set_latch(False)
    opts = EncoderOptions(encoder_model=str(linear_dla), neuron_api="v1", neuron_rebind=False)
    m = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_options=opts)
    control.clear_log()
    m.encode(np.zeros((80, 3000), np.float32))
    assert control.calls("NeuronRuntime_setInput") == 0 and control.calls("NeuronRuntime_inference") == 1


def test_qos_reaches_the_runtime_in_its_layout(neuron_env, control, linear_dla):
    m = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=linear_dla,
                                 neuron_qos="preference=power,priority=low,boost=30,deadline_ms=500")
    line = [l for l in control.log() if l.startswith("NeuronRuntimeV2_setQoSOption ")][0]
    qos = bytes.fromhex(standin.fields(line)["qos"])
    assert len(qos) == 40  # NP6 layout
    assert qos[0:4] == (1).to_bytes(4, "little") and qos[4:8] == (0).to_bytes(4, "little")
    assert qos[8] == 30 and int.from_bytes(qos[12:14], "little") == 500
    assert qos[16:20] == b"\xff\xff\xff\xff"  # delayedPowerOffTime -1
    del m
    from whisper_genio.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="boost"):
        whisper_genio.load_model("base", encoder_model=linear_dla, neuron_qos={"boost": 300})


@pytest.mark.parametrize("inp,out", [
    (Io("float32"), Io("float16")),
    (Io("int8", 1 / 32, -2), Io("int16", 1 / 8192, 0)),
    (Io("uint8", 1 / 40, 128), Io("int8", 1 / 20, 3)),
])
def test_quantized_io(inp, out, libs, control, tmp_path):
    path = standin.write_model(tmp_path / "q.dla", MEL, STATES, inp=inp, out=out, alpha=0.5, beta=0.1)
    spec_in = TensorInfo("mel", (1, 80, 3000), inp.dtype, inp.scale if inp.dtype != "float32" else None,
                         inp.zero_point if inp.dtype not in ("float32", "float16") else None).native("input")
    spec_out = TensorInfo("states", (1, 1500, 512), out.dtype, out.scale if out.dtype not in ("float32", "float16") else None,
                          out.zero_point if out.dtype not in ("float32", "float16") else None).native("output")
    enc = _core.NeuronEncoder(BASE.to_dict(), str(path), spec_in, spec_out, dma_heap="", library=str(libs["full"]))
    assert enc.input_zero_copy == (inp.dtype == "float32") and not enc.output_zero_copy
    mel = np.random.default_rng(0).uniform(-1.5, 1.5, (80, 3000)).astype(np.float32)
    got = enc.encode(mel)
    want = standin.linear_reference(mel, STATES, inp=inp, out=out, alpha=0.5, beta=0.1).reshape(1500, 512)
    np.testing.assert_allclose(got, want, rtol=0, atol=max(out.scale, 1e-3) * 1.01)


def test_two_models_in_two_threads(libs, control, tmp_path):
    a = standin.write_model(tmp_path / "a.dla", MEL, STATES, alpha=1.0, beta=1.0)
    b = standin.write_model(tmp_path / "b.dla", MEL, STATES, alpha=-2.0, beta=0.0)
    errors: list[str] = []

    def work(path, alpha, beta, api, seed):
        enc = _core.NeuronEncoder(BASE.to_dict(), str(path), api=api, dma_heap="", library=str(libs["full"]))
        rng = np.random.default_rng(seed)
        for _ in range(6):
            mel = rng.standard_normal((80, 3000)).astype(np.float32)
            got = enc.encode(mel)  # releases the GIL
            want = (alpha * mel.ravel()[np.arange(STATES) % MEL] + beta).reshape(1500, 512)
            if not np.allclose(got, want, atol=1e-5):
                errors.append(f"{path.name}: wrong states")

    threads = [threading.Thread(target=work, args=(a, 1.0, 1.0, "v1", 1)),
               threading.Thread(target=work, args=(b, -2.0, 0.0, "v2", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert errors == []
    assert control.live() == 0


def _laid_out_bundle(folder: pathlib.Path, control: standin.Control, clips, inp: Io, out: Io,
                     record: bool) -> pathlib.Path:
    """A bundle whose stand-in DLA has padded and/or float16-native I/O (neuron_standin.cc "Device
    layout"), computing the real states by lookup on the input as the device receives it."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [p for c in clips for p in c["pairs"]]
    entries = [(control.hash(standin.quantize(mel, inp)), standin.quantize(states, out).tobytes())
               for mel, states in pairs]
    standin.write_model(folder / "encoder.dla", MEL, STATES, inp=inp, out=out, alpha=0.01, entries=entries)

    def tensor(name, shape, io):
        padded = shape[:-1] + (io.padded_cols,) if record and io.padded_cols else None
        return TensorInfo(name, shape, io.dtype, layout="nct" if name == "mel" else "ntc", padded_shape=padded)

    write_manifest(folder, make_manifest(BASE, model="base", dla={
        "file": "encoder.dla", "input": tensor("mel", (1, 80, 3000), inp),
        "output": tensor("states", (1, 1500, 512), out), "compiler": {"tool": "stand-in"}}))
    return folder


# Padded rows (a test alignment of 96 elements pads both the mel's 3000 frames and the states'
# 512 channels; 64 pads only the mel) and float16 native I/O (--suppress-input/--suppress-output:
# the runtime reports the float32 logical size and converts nothing).
@pytest.mark.parametrize("case,api", [("padded", "v2"), ("fp16_native_padded", "v1"), ("fp16_native", "v2")])
def test_padded_and_fp16_native_io_give_the_cpu_tokens(case, api, neuron_env, control, clips, tmp_path):
    if case == "padded":
        inp = Io(cols=3000, padded_cols=standin.round_up(3000, 96))
        out = Io(cols=512, padded_cols=standin.round_up(512, 96))
    elif case == "fp16_native_padded":
        inp = Io("float16", cols=3000, padded_cols=standin.round_up(3000, 64), fp16_native=True)
        out = Io("float16", cols=512, fp16_native=True)
    else:
        inp = Io("float16", cols=3000, fp16_native=True)
        out = Io("float16", cols=512, fp16_native=True)
    record = case == "fp16_native_padded"  # the manifest records the padded shape; else read from the runtime
    bundle = _laid_out_bundle(tmp_path / case, control, clips, inp, out, record)
    model = whisper_genio.load_model("base", threads=TEST_THREADS,
                                     encoder_options=EncoderOptions(encoder_model=str(bundle), neuron_api=api))
    enc = model.pipeline.encoder
    assert model.backend == "neuron" and enc.api == api
    assert enc.input_padded_shape == ([1, 80, inp.padded_cols] if inp.padded_cols else [])
    assert enc.output_padded_shape == ([1, 1500, out.padded_cols] if out.padded_cols else [])
    # the buffers bound are the padded ones: the stand-in refuses any other length
    device_in = 80 * (inp.padded_cols or 3000) * (2 if inp.dtype == "float16" else 4)
    if inp.padded_cols:
        assert f"padded to [1, 80, {inp.padded_cols}]" in model.backend_info
    if inp.fp16_native:
        assert "float16 native I/O" in model.backend_info
    control.clear_log()
    for clip in clips:
        result = model.transcribe(clip["samples"], language="en")
        assert [s["tokens"] for s in result["segments"]] == [s["tokens"] for s in clip["reference"]["segments"]], \
            (case, clip["id"], result["text"])
        assert result["text"] == clip["reference"]["text"]
    assert control.misses() == 0 and control.hits() == sum(len(c["pairs"]) for c in clips)
    if api == "v2":
        runs = [standin.fields(l) for l in control.log() if l.startswith("NeuronRuntimeV2_run ")]
        assert {int(r["in_len"]) for r in runs} == {device_in}
    del model, enc
    gc.collect()
    assert control.live() == 0


def test_padding_that_disagrees_is_refused(neuron_env, control, clips, tmp_path):
    """A recorded padded shape the runtime does not report, and a DLA whose padding the manifest
    cannot hold, are load errors naming both shapes."""
    inp = Io(cols=3000, padded_cols=3008)
    out = Io()
    folder = _laid_out_bundle(tmp_path / "b", control, clips[:1], inp, out, record=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["encoder"]["dla"]["input"]["padded_shape"] = [1, 80, 3072]
    write_manifest(folder, manifest)
    with pytest.raises(ModelLoadError, match=r"padded to \[1, 80, 3072\] but the runtime pads it to \[1, 80, 3008\]"):
        whisper_genio.load_model("base", backend="neuron", threads=TEST_THREADS, encoder_model=folder)
    manifest["encoder"]["dla"]["output"]["padded_shape"] = [1, 1500, 576]
    del manifest["encoder"]["dla"]["input"]["padded_shape"]
    write_manifest(folder, manifest)
    with pytest.raises(ModelLoadError, match="the runtime's buffer is not padded"):
        whisper_genio.load_model("base", backend="neuron", threads=TEST_THREADS, encoder_model=folder)
    manifest["encoder"]["dla"]["output"]["padded_shape"] = [1, 1400, 576]
    with pytest.raises(ModelLoadError, match="padded_shape"):
        write_manifest(folder, manifest)
    gc.collect()
    assert control.live() == 0


@pytest.fixture(scope="module")
def self_check_pair(base_model):
    """The shipped self-check window's mel and the CPU encoder's states for it."""
    from whisper_genio.backends import npu_check

    mel, frames = npu_check.self_check_window(BASE.n_mels)
    return mel, np.array(base_model.encode(mel), np.float32), frames


def _checked_bundle(folder, control, clips, self_check_pair, wrong: bool = False) -> pathlib.Path:
    """A bundle computing the real states of the clips and of the self-check window; `wrong`: the
    runtime gets the self-check window wrong the way the Genio 720 report's BATCH_MATMUL did (a
    block of outputs off by tens) while every other window stays right."""
    mel, states, frames = self_check_pair
    bad = states.copy()
    if wrong:
        bad[: frames // 2, :80] += 29.0 * np.sign(bad[: frames // 2, :80] + 1e-9)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [p for c in clips for p in c["pairs"]] + [(mel, bad)]
    standin.write_model(folder / "encoder.dla", MEL, STATES, alpha=0.01, entries=standin.lookup_entries(control, pairs))
    write_manifest(folder, make_manifest(BASE, model="base", dla={"file": "encoder.dla"}))
    return folder


def test_accuracy_self_check_passes_once_then_is_cached(neuron_env, control, clips, self_check_pair, tmp_path,
                                                      monkeypatch):
    monkeypatch.setenv("WHISPER_GENIO_NPU_SELF_CHECK", "1")
    bundle = _checked_bundle(tmp_path / "ok", control, clips, self_check_pair)
    control.clear_log()
    m = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=bundle)
    assert m.backend == "neuron"
    assert "self-check passed: SQNR" in m.backend_info and "(cached)" not in m.backend_info, m.backend_info
    assert control.hits() == 1  # the self-check window, computed by the NPU
    assert (tmp_path / "cache" / "npu_self_check.json").is_file()
    del m
    control.clear_log()
    m = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=bundle)
    assert "self-check passed (cached)" in m.backend_info
    assert control.hits() == 0 and control.calls("NeuronRuntimeV2_run") == 2  # the latching test only
    # another runtime version is another verdict
    control.set_version(6, 4, 0)
    control.clear_log()
    m2 = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=bundle)
    assert "(cached)" not in m2.backend_info and control.hits() == 1
    del m, m2
    gc.collect()
    assert control.live() == 0


def test_accuracy_self_check_catches_wrong_numbers_and_falls_back(neuron_env, control, clips, self_check_pair,
                                                                 tmp_path, monkeypatch):
    from whisper_genio.errors import NpuSelfCheckError

    monkeypatch.setenv("WHISPER_GENIO_NPU_SELF_CHECK", "1")
    bundle = _checked_bundle(tmp_path / "bad", control, clips, self_check_pair, wrong=True)
    with pytest.raises(NpuSelfCheckError, match=r"fails the accuracy gate: SQNR [-0-9.]+ dB") as e:
        whisper_genio.load_model("base", threads=TEST_THREADS, encoder_model=bundle)
    assert e.value.verdict["passed"] is False and e.value.verdict["sqnr_db"] < 15
    gc.collect()
    assert control.live() == 0
    # npu_fallback="cpu": the encoder runs on the CPU (the cached verdict: no NPU run), and says why
    control.clear_log()
    opts = EncoderOptions(encoder_model=str(bundle), npu_fallback="cpu")
    m = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_options=opts)
    assert m.backend == "cpu" and control.hits() == 0
    reasons = {a.name: a.reason for a in m.backend_skipped}
    assert "fails the accuracy gate" in reasons["neuron"]
    assert "npu_fallback='cpu'" in m.backend_info and "SQNR" in m.backend_info
    clip = clips[0]
    result = m.transcribe(clip["samples"], language="en")
    assert [s["tokens"] for s in result["segments"]] == [s["tokens"] for s in clip["reference"]["segments"]]
    gc.collect()
    assert control.live() == 0
    # doctor says so too
    from whisper_genio.tools.doctor import FAIL, run_doctor

    r = run_doctor(dla=str(bundle / "encoder.dla"), model="base", run_tools=False)
    assert r.round_trip["status"] == FAIL and "fails the accuracy gate" in r.round_trip["detail"]
    assert "npu_fallback='cpu'" in r.round_trip["fix"]
    from whisper_genio.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="npu_fallback"):
        EncoderOptions(npu_fallback="gpu")
