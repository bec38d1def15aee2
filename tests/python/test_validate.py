"""whisper-genio validate: a device-like int16 output.bin (the raw output of the A16W8 TFLite
encoder, what neuronrt writes for that DLA) passes; the same bytes dequantized wrongly, truncated
or transposed fail; the three-way check separates quantization from device error."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from whisper_genio.tools.validate import Gate, calibrate_gate, validate


@pytest.fixture(scope="module")
def device_output(workspace, tflite_qsvs, heldout_window, tmp_path_factory):
    """(raw int16 [1, 1500, 512], scale, zero point, the a16w8 .tflite, folder)."""
    from whisper_genio.tools.quantize import tflite_quant
    from whisper_genio.tools.quantize.litert import interpreter, to_tensor
    from whisper_genio.tools.quantize.schemes import parse_scheme

    folder = tmp_path_factory.mktemp("device")
    path = tflite_quant.quantize(workspace.path("tflite"), folder / "encoder.tflite", parse_scheme("a16w8"), tflite_qsvs)
    it = interpreter(path)
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    w, _ = heldout_window
    it.set_tensor(i["index"], to_tensor(w.mels[0][None], i))  # int16, quantized as the host does
    it.invoke()
    raw = it.get_tensor(o["index"]).copy()
    assert raw.dtype == np.int16 and raw.shape == (1, 1500, 512)
    scale, zp = o["quantization"]
    return raw, float(scale), int(zp), path, folder


def _fmt(scale, zp, layout="ntc"):
    return {"dtype": "int16", "scale": scale, "zero_point": zp, "layout": layout}


def test_correct_output_passes(device_output, heldout_window, cpu_model):
    raw, scale, zp, _, folder = device_output
    _, row = heldout_window
    (folder / "output.bin").write_bytes(raw.tobytes())
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "output.bin", output_format=_fmt(scale, zp))
    assert r["passed"], r["failures"]
    assert r["sqnr_db"] > 18 and r["cosine"] > 0.99
    assert r["wer"] <= 0.1
    assert r["per_frame_relative_error"]["median"] < 0.2
    assert r["mel_convention"] in ("pad_or_trim", "transcribe")


def test_wrong_scale_fails(device_output, heldout_window, cpu_model):
    raw, scale, zp, _, folder = device_output
    _, row = heldout_window
    (folder / "output.bin").write_bytes(raw.tobytes())
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "output.bin", output_format=_fmt(2 * scale, zp),
                 transcripts=False)
    assert not r["passed"] and any("SQNR" in f for f in r["failures"])
    assert r["cosine"] > 0.99  # the direction is right, the magnitude is not: only SQNR can tell
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "output.bin", output_format=_fmt(scale, 2000),
                 transcripts=False)
    assert not r["passed"]


def test_read_as_wrong_dtype_fails(device_output, heldout_window, cpu_model):
    raw, scale, zp, _, folder = device_output
    _, row = heldout_window
    (folder / "output.bin").write_bytes(raw.tobytes())
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "output.bin",
                 output_format={"dtype": "float16", "layout": "ntc"}, transcripts=False)
    assert not r["passed"]


def test_truncated_output_fails(device_output, heldout_window, cpu_model):
    raw, scale, zp, _, folder = device_output
    _, row = heldout_window
    (folder / "short.bin").write_bytes(raw.tobytes()[: raw.nbytes // 2])
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "short.bin", output_format=_fmt(scale, zp))
    assert not r["passed"]
    assert "768000 bytes" in r["error"] and "int8" in r["error"]  # says what that size would fit
    (folder / "short.bin").write_bytes(raw.tobytes()[:-1000])
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "short.bin", output_format=_fmt(scale, zp))
    assert not r["passed"] and "truncated" in r["error"]


def test_transposed_output_fails_unless_declared(device_output, heldout_window, cpu_model):
    raw, scale, zp, _, folder = device_output
    _, row = heldout_window
    (folder / "t.bin").write_bytes(np.ascontiguousarray(raw[0].T).tobytes())  # [512, 1500]
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "t.bin", output_format=_fmt(scale, zp),
                 transcripts=False)
    assert not r["passed"] and r["cosine"] < 0.5
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "t.bin",
                 output_format=_fmt(scale, zp, layout="nct"), transcripts=False)
    assert r["passed"], r["failures"]


def test_three_way_blames_the_device(device_output, heldout_window, cpu_model):
    raw, scale, zp, tflite, folder = device_output
    _, row = heldout_window
    bad = raw.copy()
    bad[0, :, ::2] = 0  # a device that loses every other channel
    (folder / "bad.bin").write_bytes(bad.tobytes())
    r = validate(row["path"], model=cpu_model, encoder_output=folder / "bad.bin", output_format=_fmt(scale, zp),
                 host_model=tflite, transcripts=False)
    tw = r["three_way"]
    assert tw["float_vs_host"]["sqnr_db"] > 18
    assert tw["host_vs_device"]["sqnr_db"] < 10
    assert "compiler/runtime" in tw["verdict"] and not r["passed"]


def test_cli_exit_codes_and_bundle_format(device_output, heldout_window, tmp_path, capsys):
    from whisper_genio.backends.bundle import make_manifest, write_manifest
    from whisper_genio.checkpoints import resolve
    from whisper_genio.cli import main

    raw, scale, zp, tflite, folder = device_output
    _, row = heldout_window
    out = tmp_path / "output.bin"
    out.write_bytes(raw.tobytes())
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    # A hard link (not a symlink: load_bundle refuses files resolving outside the bundle folder).
    try:
        os.link(tflite, bundle / "encoder.tflite")
    except OSError:
        shutil.copyfile(tflite, bundle / "encoder.tflite")
    dims = resolve("base").dims
    t = {"name": "out", "shape": [1, 1500, 512], "dtype": "int16", "scale": scale, "zero_point": zp, "layout": "ntc"}
    write_manifest(bundle, make_manifest(dims, model="base", tflite={"file": "encoder.tflite", "output": t}))
    js = tmp_path / "r.json"
    assert main(["validate", "--audio", str(row["path"]), "--encoder-output", str(out), "--bundle", str(bundle),
                 "--json", str(js)]) == 0
    assert "PASS" in capsys.readouterr().out and json.loads(js.read_text())["passed"] is True
    assert main(["validate", "--audio", str(row["path"]), "--encoder-output", str(out), "--dtype", "int16",
                 "--scale", str(scale * 3)]) == 1
    assert "FAIL" in capsys.readouterr().out
    out.write_bytes(raw.tobytes()[:-100])
    assert main(["validate", "--audio", str(row["path"]), "--encoder-output", str(out), "--bundle", str(bundle)]) == 1


def test_gate_calibration():
    rows = [{"sqnr_db": 27, "cosine": .999, "wer": .052, "wer_float": .050},
            {"sqnr_db": 21, "cosine": .996, "wer": .055, "wer_float": .050},
            {"sqnr_db": 1, "cosine": .5, "wer": 1.2, "wer_float": .050}]
    g = calibrate_gate(rows)
    assert g["good_min_sqnr_db"] == 21 and g["bad_max_sqnr_db"] == 1 and g["suggested_min_sqnr_db"] == 11
    gate = Gate()
    assert not gate.check({"sqnr_db": 25, "cosine": 0.999, "wer": 0.0})
    assert len(gate.check({"sqnr_db": 2, "cosine": 0.5, "wer": 1.0})) == 3
