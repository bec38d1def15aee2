"""Hostile input (issue 16): every bad audio file, array, path, device output and model name ends
in a WhisperGenioError subclass that names the problem: never a hang, a raw traceback, a memory
explosion or a silent empty transcript. The hostile files are made in tmp_path."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile", reason="soundfile is not installed")

import whisper_genio  # noqa: E402
from whisper_genio import audio as wa  # noqa: E402
from whisper_genio.audio import load_audio  # noqa: E402
from whisper_genio.errors import (  # noqa: E402
    AudioDecodeError,
    AudioNotFoundError,
    InferenceError,
    InvalidOptionError,
    ModelNotFoundError,
    WhisperGenioError,
)

from testdata import TEST_THREADS  # noqa: E402

HAVE_FFMPEG = wa.ffmpeg_available()
DECODERS = ["auto", "soundfile"] + (["ffmpeg"] if HAVE_FFMPEG else [])


def _tone(n: int, sr: int = 16000) -> np.ndarray:
    return (0.1 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32)


def _wav_with_rate(path: Path, rate: int) -> Path:
    """A 16 kHz PCM WAV whose header then claims `rate` Hz (sample rate and byte rate patched)."""
    sf.write(path, _tone(150_000), 16000, subtype="PCM_16")
    b = bytearray(path.read_bytes())
    assert b[:4] == b"RIFF" and b[12:16] == b"fmt "
    b[24:28] = rate.to_bytes(4, "little")
    b[28:32] = (2 * rate).to_bytes(4, "little")
    path.write_bytes(bytes(b))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random-weight model with a small encoder (validate encodes its reference twice per call),
    written as a CTranslate2 folder: no torch needed (the aarch64 wheel's emulated run has none)."""
    from model_factory import make_random_state_dict, write_ct2_folder

    from whisper_genio.dims import ModelDims

    dims = ModelDims(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1, n_vocab=51865,
                     n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
    folder = write_ct2_folder(tmp_path_factory.mktemp("tiny") / "ct2", dims, make_random_state_dict(dims, seed=3))
    return whisper_genio.load_model(folder, threads=TEST_THREADS, backend="cpu")


# ------------------------------------------------------------------------------ files


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("rate", [8, 999, 2_000_000])
def test_lying_sample_rate_is_refused_up_front(tmp_path, decoder, rate):
    """A 300 KB WAV claiming 8 Hz once decoded to 5.4 h of samples (GBs, minutes)."""
    path = _wav_with_rate(tmp_path / f"lying_{rate}.wav", rate)
    t0 = time.perf_counter()
    with pytest.raises(AudioDecodeError, match=f"{rate} Hz") as e:
        load_audio(path, decoder=decoder)
    assert path.name in str(e.value)
    with pytest.raises(AudioDecodeError, match=f"{rate} Hz"):
        load_audio(path.read_bytes(), decoder=decoder)
    assert time.perf_counter() - t0 < 30  # refused, not decoded (a generous bound: only a hang fails it)


@pytest.mark.skipif(not (HAVE_FFMPEG and shutil.which("ffprobe")), reason="needs ffmpeg and ffprobe")
def test_lying_sample_rate_in_a_container_only_ffmpeg_reads(tmp_path):
    """PCM in a MOV that claims 8 Hz: libsndfile cannot read the header, ffprobe can."""
    raw = tmp_path / "raw.s16"
    raw.write_bytes(np.random.default_rng(0).integers(-3000, 3000, 150_000, dtype=np.int16).tobytes())
    mov = tmp_path / "lying8.mov"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "s16le", "-ar", "8", "-ac", "1", "-i",
                    str(raw), "-c:a", "pcm_s16le", str(mov)], check=True)
    with pytest.raises(AudioDecodeError, match="8 Hz"):
        load_audio(mov)


@pytest.mark.parametrize("decoder", DECODERS)
def test_header_claiming_a_huge_sample_count_reads_what_is_there(tmp_path, decoder):
    path = tmp_path / "huge_count.wav"
    sf.write(path, _tone(16000), 16000, subtype="PCM_16")
    b = bytearray(path.read_bytes())
    b[4:8] = (0xFFFFFFF8).to_bytes(4, "little")  # RIFF size
    b[40:44] = (0xFFFFFFF0).to_bytes(4, "little")  # data size: 4 GB claimed, 32 KB there
    path.write_bytes(bytes(b))
    got = load_audio(path, decoder=decoder)
    assert abs(len(got) - 16000) <= 16


@pytest.mark.parametrize("sr", [0, -1, 999, 10**12, 16000.0, True])
def test_output_rate_is_bounded(tmp_path, sr):
    path = tmp_path / "clip.wav"
    sf.write(path, _tone(1600), 16000, subtype="PCM_16")
    with pytest.raises(InvalidOptionError, match="sample rate"):
        load_audio(path, sr=sr)


def test_many_channels_decode_in_small_blocks(tmp_path):
    """libsndfile allows 1024 channels: blocks are sized in samples (a 1 GB block before), and
    "auto" falls back to soundfile where ffmpeg refuses the channel count."""
    x = np.zeros((1000, 1024), np.float32)
    x[:, 0] = 0.5
    path = tmp_path / "c1024.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    for decoder in ("auto", "soundfile"):
        got = load_audio(path, decoder=decoder)
        np.testing.assert_allclose(got, 0.5 / 1024, rtol=1e-6)


def test_lowest_accepted_rate_still_decodes(tmp_path):
    path = tmp_path / "r1000.wav"
    sf.write(path, _tone(1000, 1000), 1000, subtype="PCM_16")
    assert abs(len(load_audio(path, decoder="soundfile")) - 16000) <= 16


@pytest.mark.parametrize("decoder", DECODERS)
def test_paths_that_are_not_regular_files_are_never_opened(tmp_path, decoder):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes: never opened
    for path, kind in [(fifo, "FIFO"), (tmp_path, "directory"), (Path("/dev/null"), "device")]:
        with pytest.raises(AudioDecodeError, match=kind) as e:
            load_audio(path, decoder=decoder)
        assert str(path) in str(e.value)


@pytest.mark.parametrize("decoder", DECODERS)
def test_missing_file_is_a_whisper_genio_error(tmp_path, decoder):
    missing = tmp_path / "nowhere.wav"
    with pytest.raises(AudioNotFoundError) as e:
        load_audio(missing, decoder=decoder)
    err = e.value
    assert isinstance(err, WhisperGenioError) and isinstance(err, FileNotFoundError)
    assert isinstance(err, AudioDecodeError)
    assert err.errno == errno.ENOENT and err.filename == str(missing)
    assert str(err) == f"audio file not found: {missing}"  # once, not "...: 'path'" again


def _fake_ffmpeg(folder: Path, body: str) -> Path:
    folder.mkdir()
    exe = folder / "ffmpeg"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


@pytest.mark.parametrize("body", [
    "echo 'ffmpeg: error while loading shared libraries: libavdevice.so.59' >&2; exit 127",
    "head -c 1000 /dev/urandom >&2; exit 1",
    "exec /nonexistent/interpreter",
], ids=["missing-library", "garbage", "cannot-exec"])
def test_broken_ffmpeg_falls_back_to_soundfile(tmp_path, monkeypatch, body):
    wav = tmp_path / "clip.wav"
    sf.write(wav, _tone(8000), 16000, subtype="PCM_16")
    expected = load_audio(wav, decoder="soundfile")
    monkeypatch.setenv("PATH", f"{_fake_ffmpeg(tmp_path / 'bin', body)}{os.pathsep}{os.environ['PATH']}")
    assert wa.ffmpeg_available()
    np.testing.assert_array_equal(load_audio(wav), expected)
    np.testing.assert_array_equal(load_audio(wav.read_bytes()), expected)
    with pytest.raises(AudioDecodeError, match="ffmpeg"):
        load_audio(wav, decoder="ffmpeg")  # asked for by name: its failure is the answer
    # Neither can decode it: one error naming both.
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"\x01" * 4096)
    with pytest.raises(AudioDecodeError, match="ffmpeg.*soundfile"):
        load_audio(junk)


# ------------------------------------------------------------------------------ NaN / Inf


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_in_a_float_file(tmp_path, decoder, bad):
    x = _tone(32000)
    x[12345] = bad
    mono = tmp_path / "mono.wav"
    sf.write(mono, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"non-finite sample .* index 12345") as e:
        load_audio(mono, decoder=decoder)
    assert "mono.wav" in str(e.value)
    stereo = tmp_path / "stereo44k.wav"  # resampled and mixed down: the index is the file's frame
    sf.write(stereo, np.stack([_tone(44100, 44100), np.where(np.arange(44100) == 777, bad, 0.0)], 1), 44100,
             subtype="DOUBLE")
    with pytest.raises(AudioDecodeError, match="index 777"):
        load_audio(stereo, decoder=decoder)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_in_an_array(bad):
    x = _tone(5_000_000)  # several check blocks: the index is global
    x[3_000_001] = bad
    with pytest.raises(AudioDecodeError, match="index 3000001"):
        load_audio(x)
    with pytest.raises(AudioDecodeError, match="non-finite"):
        load_audio(x.astype(np.float64))
    with pytest.raises(AudioDecodeError, match="non-finite"):
        load_audio(np.stack([x[:1000], x[3_000_000:3_001_000]], 1))  # (frames, channels)
    big = np.full(10, np.finfo(np.float32).max, np.float32)  # finite, however loud: not refused
    assert load_audio(big) is big


# ------------------------------------------------------------------------------ array layouts


@pytest.mark.parametrize("channels", [2, 3, 8])
def test_channel_first_arrays_are_transposed(channels):
    frames = np.random.default_rng(0).standard_normal((1000, channels)).astype(np.float32)
    # The same mix-down (up to summation order: the transposed view is not copied).
    np.testing.assert_allclose(load_audio(np.ascontiguousarray(frames.T)), load_audio(frames), rtol=0, atol=1e-6)
    ints = (frames * 1000).astype(np.int16)
    np.testing.assert_allclose(load_audio(ints.T), load_audio(ints), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(20, 3000), (9, 9), (1000, 9)])
def test_ambiguous_2d_arrays_are_refused(shape):
    with pytest.raises(InvalidOptionError, match="channels"):
        load_audio(np.zeros(shape, np.float32))


@pytest.mark.parametrize("n_mels", [80, 128])
def test_a_mel_is_not_audio(n_mels):
    with pytest.raises(InvalidOptionError, match="log-mel") as e:
        load_audio(np.zeros((n_mels, 3000), np.float32))
    assert "decode()" in str(e.value)


# ------------------------------------------------------------------------------ the model


def test_model_refuses_non_finite_input_before_work(base_model):
    audio = _tone(48000)
    audio[100] = np.nan
    for call in (base_model.transcribe, base_model.encode, base_model.detect_language, base_model.decode):
        with pytest.raises(AudioDecodeError, match="index 100"):
            call(audio)
    mel = np.zeros((80, 3000), np.float32)
    mel[3, 5] = np.inf
    for call in (base_model.encode, base_model.detect_language, base_model.decode):
        with pytest.raises(AudioDecodeError, match=r"mel .*\(3, 5\)"):
            call(mel)
    with pytest.raises(InvalidOptionError, match="log-mel"):
        base_model.transcribe(np.zeros((80, 3000), np.float32))
    with pytest.raises(AudioNotFoundError, match="never-here.wav"):
        base_model.transcribe("/nonexistent/never-here.wav")


def test_one_window_calls_take_multichannel_audio_and_refuse_other_2d_arrays(tiny_model):
    stereo = np.stack([_tone(16000), _tone(16000)], 1)
    mono_mel = tiny_model.log_mel(_tone(16000))
    np.testing.assert_array_equal(tiny_model.log_mel(stereo), mono_mel)
    np.testing.assert_array_equal(tiny_model.encode(stereo.T), tiny_model.encode(_tone(16000)))
    with pytest.raises(InvalidOptionError, match=r"mel must be \[80, 3000\]"):
        tiny_model.encode(np.zeros((80, 2999), np.float32))


def test_non_finite_encoder_states_are_refused_by_the_decoder(base_model):
    states = np.zeros((1500, 512), np.float32)
    states[7, 9] = np.nan
    for call in (base_model.decode, base_model.detect_language):
        with pytest.raises(InferenceError, match="frame 7, channel 9"):
            call(states)


def test_replaying_a_non_finite_output_file_raises(base_checkpoint, tmp_path):
    states = np.zeros((1, 1500, 512), np.float32)
    states[0, 1499, 511] = np.inf
    out = tmp_path / "output.bin"
    states.tofile(out)
    model = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_output=[out])
    assert model.backend == "replay"
    with pytest.raises(InferenceError, match=r"output.bin \(window 0\) .* frame 1499, channel 511"):
        model.transcribe(language="en")


def test_replay_refuses_paths_that_are_not_regular_files(base_checkpoint, tmp_path):
    fifo = tmp_path / "output.bin"
    os.mkfifo(fifo)
    with pytest.raises(WhisperGenioError, match="not regular files"):
        whisper_genio.load_model("base", threads=TEST_THREADS, backend="replay", encoder_output=[fifo])


@pytest.mark.parametrize("name,error,fragment", [
    (None, InvalidOptionError, "name_or_path"), (123, InvalidOptionError, "name_or_path"),
    ("", ModelNotFoundError, "empty"), ("~no_such_user_whisper_genio/x.pt", ModelNotFoundError, "no such user"),
], ids=["None", "int", "empty", "~user"])
def test_model_names(name, error, fragment):
    with pytest.raises(error, match=fragment):
        whisper_genio.load_model(name)


# ------------------------------------------------------------------------------ validate


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("validate") / "silence.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    return path


def _hostile_outputs():
    rng = np.random.default_rng(5)
    nan = np.full((1500, 64), np.nan, np.float32)
    inf = rng.standard_normal((1500, 64)).astype(np.float32)
    inf[10, 3] = np.inf
    ints = (rng.standard_normal((1500, 64)) * 8000).astype(np.int16)  # an int16 output read as float16
    return {"nan": (nan.tobytes(), "float32"), "inf": (inf.tobytes(), "float32"),
            "random": (rng.bytes(1500 * 64 * 4), "float32"), "int16-as-float16": (ints.tobytes(), "float16")}


@pytest.mark.parametrize("kind", list(_hostile_outputs()))
def test_validate_reports_hostile_outputs_as_failing(tiny_model, short_clip, tmp_path, kind):
    from whisper_genio.tools.validate import format_result, validate

    data, dtype = _hostile_outputs()[kind]
    out = tmp_path / "output.bin"
    out.write_bytes(data)
    # The decoder refuses the non-finite states: the transcript step must fail the check, not raise.
    r = validate(short_clip, model=tiny_model, encoder_output=out, output_format={"dtype": dtype}, language="en")
    assert r["passed"] is False and r["failures"]
    if kind != "random" or "non_finite" in r:  # random bytes as float32 hold NaN/Inf almost surely
        assert "non-finite" in r["failures"][0]
    if kind == "inf":
        assert r["non_finite"] == {"count": 1, "frame": 10, "channel": 3}
    if kind in ("nan", "inf"):
        assert r["transcript"] == "" and "non-finite" in r["transcript_error"] and r["wer"] == 1.0
    assert "FAIL" in format_result(r)


def test_validate_refuses_outputs_that_are_not_regular_files(tiny_model, short_clip, tmp_path):
    from whisper_genio.tools.validate import validate

    fifo = tmp_path / "fifo.bin"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path, tmp_path / "missing.bin"):
        r = validate(short_clip, model=tiny_model, encoder_output=path, transcripts=False)
        assert r["passed"] is False and str(path) in r["error"]


def test_fallback_normalizer_always_gives_text(monkeypatch):
    from whisper_genio.tools.quantize import evaluate

    monkeypatch.setitem(sys.modules, "whisper.normalizers", None)  # openai-whisper absent
    norm = evaluate.normalizer()
    assert norm("") == "" and norm("!!!") == "" and norm("Hello,  World!") == "hello world"
    assert evaluate.word_errors(["a b"], [""]) == (2, 2)
    assert evaluate.wer(["the cat"], ["!?"]) == 1.0
