"""The "replay" backend: transcribing from raw encoder output files (what `neuronrt` writes on a
board), with real whisper-base encoder states of real speech standing in for the device's."""

from __future__ import annotations

import numpy as np
import pytest

import whisper_genio
from whisper_genio import _core
from whisper_genio.audio import load_audio
from whisper_genio.cli import main
from whisper_genio.errors import InvalidOptionError
from whisper_genio.tools.device_files import compare_windows, window_mel, write_mel_files

import standin
from standin import Io
from testdata import TEST_THREADS, require_speech


def _row(row_id):
    rows = [r for r in require_speech() if r["id"] == row_id]
    if not rows:
        pytest.skip(f"{row_id} missing from ../shared/data/speech")
    return rows[0]


@pytest.fixture(scope="module")
def jfk(base_model, tmp_path_factory):
    """The JFK clip, its CPU encoder states (transcribe's window) written as a float32 output.bin,
    and the CPU transcript."""
    row = _row("en_jfk_inaugural_1961")
    samples = load_audio(str(row["path"]))
    windows = _core.MelWindows(samples, 80)
    states = base_model.encode(window_mel(samples, windows, 0, "transcribe", 80))
    d = tmp_path_factory.mktemp("replay")
    path = d / "output.bin"
    states.tofile(path)
    return {"path": row["path"], "samples": samples, "states": states, "bin": path, "dir": d,
            "reference": base_model.transcribe(samples, language="en")}


def test_float32_output_bin_transcribes_like_the_cpu(jfk):
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_output=jfk["bin"])
    assert model.backend == "replay" and model.backend_skipped == []
    result = model.transcribe(language="en")  # no audio needed
    assert result["text"] == jfk["reference"]["text"]
    assert [s["tokens"] for s in result["segments"]] == [s["tokens"] for s in jfk["reference"]["segments"]]
    assert compare_windows(model)[0]["file"] == str(jfk["bin"])
    # with the audio: the last window's length is known and each window is compared with the CPU
    result = model.transcribe(jfk["samples"], language="en")
    w = compare_windows(model, jfk["samples"], model_cpu())[0]
    assert w["cosine"] > 0.999999 and w["mel_convention"] == "transcribe"
    assert w["end"] == pytest.approx(11.0, abs=0.05)
    assert result["segments"][-1]["end"] <= 11.05
    # a device's output holds whole windows: a trimmed window is refused, naming what can trim
    assert not model.pipeline.variable_positions
    with pytest.raises(InvalidOptionError, match="replay encoder runs whole 30 s windows .* needs the cpu encoder"):
        model.transcribe(jfk["samples"], language="en", trim_window=10.0)
    assert model.transcribe(jfk["samples"], language="en")["text"] == jfk["reference"]["text"]  # still usable


_CPU = {}


def model_cpu():
    if "m" not in _CPU:
        _CPU["m"] = whisper_genio.load_model("base", backend="cpu", threads=TEST_THREADS)
    return _CPU["m"]


@pytest.mark.parametrize("dtype,layout", [("int16", "ntc"), ("int8", "nct"), ("float16", "ntc")])
def test_quantized_and_transposed_outputs(jfk, dtype, layout):
    states = jfk["states"]
    io = Io(dtype)
    if dtype in ("int8", "int16"):
        peak = float(np.abs(states).max())
        io = Io(dtype, scale=peak / (127 if dtype == "int8" else 32767), zero_point=-3 if dtype == "int8" else 0)
    device = states.T if layout == "nct" else states
    raw = standin.quantize(np.ascontiguousarray(device), io)
    path = jfk["dir"] / f"out_{dtype}_{layout}.bin"
    raw.tofile(path)
    fmt = {"dtype": dtype, "scale": io.scale if dtype != "float16" else None,
           "zero_point": io.zero_point if dtype != "float16" else None, "layout": layout}
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_output=[path], encoder_output_format=fmt)
    got = model.encode(np.zeros((80, 3000), np.float32))  # the replayed window's states
    want = raw.astype(np.float32) if dtype == "float16" else (raw.astype(np.float32) - io.zero_point) * np.float32(io.scale)
    np.testing.assert_allclose(got, want.T if layout == "nct" else want, rtol=0, atol=1e-6)
    text = model.transcribe(language="en")["text"].lower()
    assert "ask not what your country can do for you" in text.replace(",", "")


def test_wrong_sizes_say_what_the_bytes_would_be(jfk, tmp_path):
    half = tmp_path / "half.bin"
    jfk["states"].astype(np.float16).tofile(half)
    with pytest.raises(InvalidOptionError) as e:
        whisper_genio.load_model("base", threads=TEST_THREADS, encoder_output=[half])
    msg = str(e.value)
    assert "expected 3072000 bytes ([1, 1500, 512] float32), got 1536000 bytes" in msg
    assert "float16 or int16" in msg and "half.bin" in msg
    with pytest.raises(InvalidOptionError, match="scale"):
        whisper_genio.load_model("base", encoder_output=[half], encoder_output_format={"dtype": "int16"})
    with pytest.raises(InvalidOptionError, match="replay"):
        whisper_genio.load_model("base", backend="cpu", encoder_output=[half])
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_output=[jfk["bin"]])
    with pytest.raises(InvalidOptionError, match="2 window"):
        model.transcribe(np.zeros(16000 * 45, np.float32), language="en")  # 45 s of audio, one file


def test_two_windows_in_order(base_model, tmp_path):
    """A 53 s recording: two files, one per 30-second window, each compared with the CPU encoder."""
    row = _row("en_librivox_shakespeare_sonnet001")
    samples = load_audio(str(row["path"]))
    paths = write_mel_files(row["path"], tmp_path / "mel")
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["mel_000.bin", "mel_001.bin"]
    outs = []
    for i, p in enumerate(paths):  # what the device does: mel_00i.bin -> output_00i.bin
        mel = np.fromfile(p, dtype=np.float32).reshape(80, 3000)
        out = tmp_path / f"output_{i:03d}.bin"
        base_model.encode(mel).tofile(out)
        outs.append(out)
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_output=outs)
    result = model.transcribe(samples, language="en")
    windows = compare_windows(model, samples, base_model)
    assert [w["window"] for w in windows] == [0, 1]
    assert all(w["cosine"] > 0.999999 for w in windows)
    assert windows[1]["start"] == 30.0
    text = result["text"].lower()
    assert "fairest creatures" in text and "tender churl" in text.replace(",", ""), text
    starts = [s["start"] for s in result["segments"]]
    assert starts == sorted(starts) and any(s >= 30.0 for s in starts)


def test_cli_replay_turns_the_workflow_into_a_check(jfk, capsys, tmp_path):
    rc = main(["transcribe", str(jfk["path"]), "--encoder-output", str(jfk["bin"]), "--model", "base",
               "--language", "en", "--threads", str(TEST_THREADS), "-o", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 0
    assert "ask not what your country can do for you" in out.out.lower()
    assert "cosine 1.00000 vs the CPU encoder (matches it" in out.err
    rc = main(["transcribe", "--encoder-output", str(jfk["bin"]), "--encoder-output-dtype", "int16", "--scale",
               "0.01", "--model", "base", "-o", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 2 and "float32" in out.err and "got 3072000 bytes" in out.err


def test_mel_files_are_what_transcribe_encodes(jfk, tmp_path):
    paths = write_mel_files(jfk["path"], tmp_path, dtype="int8", scale=1 / 64, zero_point=10, layout="ntc")
    raw = np.fromfile(paths[0], dtype=np.int8).reshape(3000, 80)
    windows = _core.MelWindows(jfk["samples"], 80)
    mel = window_mel(jfk["samples"], windows, 0, "transcribe", 80)
    np.testing.assert_allclose((raw.astype(np.float32) - 10) / 64, mel.T, atol=1 / 128 + 1e-6)
    with pytest.raises(InvalidOptionError, match="scale"):
        write_mel_files(jfk["path"], tmp_path, dtype="int8")
