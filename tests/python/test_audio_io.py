"""whisper_genio.audio.load_audio / pad_or_trim, compared with openai-whisper.

Tolerances, for the soundfile+soxr path against openai-whisper's ffmpeg decoding:

* 16 kHz PCM (wav, flac): bit-exact; both are int16 / 32768.
* resampled or lossy material: correlation > 0.999, RMS error < 2 % of the signal RMS, max abs
  error < 0.05, length within 0.1 % + 16 samples. (Measured on speech: correlation >= 0.99999,
  relative RMS error <= 0.3 %, worst case the 8 kHz -> 16 kHz upsampling.)

The ffmpeg path must equal openai-whisper's ``load_audio`` exactly.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile", reason="soundfile is not installed")

from whisper_genio import audio as wa  # noqa: E402
from whisper_genio.audio import load_audio, pad_or_trim  # noqa: E402
from whisper_genio.errors import (  # noqa: E402
    AudioDecodeError,
    BackendUnavailableError,
    InvalidOptionError,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEECH_DIR = REPO_ROOT / ".." / "shared" / "data" / "speech"
HAVE_FFMPEG = shutil.which("ffmpeg") is not None

needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg is not on PATH")


def _openai_audio():
    return pytest.importorskip("whisper.audio", reason="openai-whisper is not installed")


def _openai_load(path: Path) -> np.ndarray:
    if not HAVE_FFMPEG:
        pytest.skip("openai-whisper's load_audio needs ffmpeg on PATH")
    return _openai_audio().load_audio(str(path))


def _signal(sr: int, seconds: float = 2.5, channels: int = 1) -> np.ndarray:
    """Deterministic speech-like test signal: gliding harmonics, AM, and a little noise, all
    kept below 3.5 kHz so every rate used here represents it without aliasing."""
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(7).standard_normal(t.size)
    kernel = np.hanning(15)
    x = 0.25 * x + 0.02 * np.convolve(noise, kernel / kernel.sum(), mode="same")
    if channels == 1:
        return x
    return np.stack([x * (1.0 - 0.3 * c) for c in range(channels)], axis=1)


def _write(path: Path, sr: int, channels: int = 1, subtype: str = "PCM_16", fmt: str | None = None) -> Path:
    sf.write(path, _signal(sr, channels=channels), sr, subtype=subtype, format=fmt)
    return path


def _ffmpeg_encode(src: Path, dst: Path, *args: str) -> Path:
    if not HAVE_FFMPEG:
        pytest.skip("ffmpeg is not on PATH")
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(src), *args, str(dst)],
        capture_output=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"ffmpeg cannot encode {dst.suffix}: {proc.stderr.decode(errors='replace')[:200]}")
    return dst


def _has_encoder(name: str) -> bool:
    if not HAVE_FFMPEG:
        return False
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


def _assert_close(ref: np.ndarray, got: np.ndarray, what: str) -> None:
    assert got.dtype == np.float32 and got.ndim == 1 and got.flags.c_contiguous, what
    assert abs(len(got) - len(ref)) <= 16 + len(ref) // 1000, (what, len(ref), len(got))
    n = min(len(ref), len(got))
    r, g = ref[:n].astype(np.float64), got[:n].astype(np.float64)
    corr = np.corrcoef(r, g)[0, 1]
    rel_rms = np.sqrt(np.mean((r - g) ** 2)) / np.sqrt(np.mean(r**2))
    max_err = np.abs(r - g).max()
    assert corr > 0.999 and rel_rms < 0.02 and max_err < 0.05, (what, corr, rel_rms, max_err)


# ------------------------------------------------------------------------------ constants


def test_constants_match_openai() -> None:
    ref = _openai_audio()
    for name in (
        "SAMPLE_RATE", "N_FFT", "HOP_LENGTH", "CHUNK_LENGTH", "N_SAMPLES", "N_FRAMES",
        "N_SAMPLES_PER_TOKEN", "FRAMES_PER_SECOND", "TOKENS_PER_SECOND",
    ):  # fmt: skip
        assert getattr(wa, name) == getattr(ref, name), name


# ------------------------------------------------------------------------------ files


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    files = {
        "wav16k_mono": _write(d / "mono16k.wav", 16000),
        "wav44k_stereo": _write(d / "stereo44k.wav", 44100, channels=2),
        "wav8k": _write(d / "low8k.wav", 8000),
        "wav16k_float": _write(d / "float16k.wav", 16000, subtype="FLOAT"),
        "flac16k": _write(d / "mono16k.flac", 16000),
        "flac22k_stereo": _write(d / "stereo22k.flac", 22050, channels=2),
        "ogg48k": _write(d / "vorbis48k.ogg", 48000, subtype="VORBIS"),
    }
    return files


EXACT = ["wav16k_mono", "flac16k"]
CLOSE = ["wav44k_stereo", "wav8k", "wav16k_float", "flac22k_stereo", "ogg48k"]


@needs_ffmpeg
@pytest.mark.parametrize("name", EXACT + CLOSE)
def test_ffmpeg_path_equals_openai(media: dict[str, Path], name: str) -> None:
    ref = _openai_load(media[name])
    got = load_audio(media[name], decoder="ffmpeg")
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(load_audio(str(media[name])), ref)  # auto picks ffmpeg


@pytest.mark.parametrize("name", EXACT)
def test_soundfile_path_exact_for_16k_pcm(media: dict[str, Path], name: str) -> None:
    got = load_audio(media[name], decoder="soundfile")
    expected, rate = sf.read(media[name], dtype="int16")
    assert rate == 16000
    np.testing.assert_array_equal(got, expected.astype(np.float32) / 32768.0)
    if HAVE_FFMPEG:
        np.testing.assert_array_equal(got, _openai_load(media[name]))


@pytest.mark.parametrize("name", CLOSE)
def test_soundfile_path_close_to_openai(media: dict[str, Path], name: str) -> None:
    got = load_audio(media[name], decoder="soundfile")
    _assert_close(_openai_load(media[name]), got, name)


@pytest.mark.skipif(not _has_encoder("libmp3lame"), reason="ffmpeg without the libmp3lame encoder")
def test_mp3_both_paths(media: dict[str, Path], tmp_path: Path) -> None:
    mp3 = _ffmpeg_encode(media["wav44k_stereo"], tmp_path / "clip.mp3", "-c:a", "libmp3lame", "-b:a", "128k")
    ref = _openai_load(mp3)
    np.testing.assert_array_equal(load_audio(mp3, decoder="ffmpeg"), ref)
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot read MP3")
    _assert_close(ref, load_audio(mp3, decoder="soundfile"), "mp3")


@pytest.mark.parametrize("decoder", ["ffmpeg", "soundfile"])
def test_bytes_and_pathlike_sources(media: dict[str, Path], decoder: str) -> None:
    if decoder == "ffmpeg" and not HAVE_FFMPEG:
        pytest.skip("ffmpeg is not on PATH")
    for name in ("wav16k_mono", "flac22k_stereo", "ogg48k"):
        from_path = load_audio(media[name], decoder=decoder)
        np.testing.assert_array_equal(load_audio(media[name].read_bytes(), decoder=decoder), from_path)
        np.testing.assert_array_equal(load_audio(str(media[name]), decoder=decoder), from_path)


@needs_ffmpeg
def test_awkward_file_names(media: dict[str, Path], tmp_path: Path) -> None:
    # A leading dash or a colon must not be taken for an ffmpeg option or protocol.
    for name in ("-starts-with-dash.wav", "has:colon.wav", "spaces and ünïcödé.wav"):
        target = tmp_path / name
        shutil.copy(media["wav16k_mono"], target)
        np.testing.assert_array_equal(
            load_audio(target, decoder="ffmpeg"), load_audio(media["wav16k_mono"], decoder="ffmpeg")
        )


def test_other_sample_rate(media: dict[str, Path]) -> None:
    got = load_audio(media["wav44k_stereo"], sr=8000, decoder="soundfile")
    assert abs(len(got) - 2.5 * 8000) <= 2
    if HAVE_FFMPEG:
        ref = _openai_audio().load_audio(str(media["wav44k_stereo"]), sr=8000)
        np.testing.assert_array_equal(load_audio(media["wav44k_stereo"], sr=8000, decoder="ffmpeg"), ref)
        _assert_close(ref, got, "44.1k->8k")


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("decoder", ["ffmpeg", "soundfile"])
def test_corrupt_file_raises_audio_decode_error(tmp_path: Path, decoder: str) -> None:
    if decoder == "ffmpeg" and not HAVE_FFMPEG:
        pytest.skip("ffmpeg is not on PATH")
    bad = tmp_path / "corrupt_clip.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(AudioDecodeError, match="corrupt_clip.wav") as info:
        load_audio(bad, decoder=decoder)
    assert decoder in str(info.value)
    assert isinstance(info.value, ValueError)
    # Same for a RIFF header followed by garbage, and for bytes input.
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + np.random.default_rng(1).bytes(64))
    with pytest.raises(AudioDecodeError, match="corrupt_clip.wav"):
        load_audio(bad, decoder=decoder)
    with pytest.raises(AudioDecodeError, match="<bytes>"):
        load_audio(np.random.default_rng(2).bytes(4096), decoder=decoder)


@pytest.mark.parametrize("decoder", ["auto", "ffmpeg", "soundfile"])
def test_missing_file(tmp_path: Path, decoder: str) -> None:
    missing = tmp_path / "does_not_exist.wav"
    with pytest.raises(FileNotFoundError, match="does_not_exist.wav") as info:
        load_audio(missing, decoder=decoder)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)


@pytest.mark.parametrize("decoder", ["ffmpeg", "soundfile"])
def test_empty_audio_gives_empty_array(tmp_path: Path, decoder: str) -> None:
    if decoder == "ffmpeg" and not HAVE_FFMPEG:
        pytest.skip("ffmpeg is not on PATH")
    for rate in (16000, 44100):
        empty = tmp_path / f"empty{rate}.wav"
        sf.write(empty, np.zeros((0, 1)), rate, subtype="PCM_16")
        got = load_audio(empty, decoder=decoder)
        assert got.dtype == np.float32 and got.shape == (0,)


def test_decoder_selection(monkeypatch: pytest.MonkeyPatch, media: dict[str, Path]) -> None:
    with pytest.raises(InvalidOptionError, match="decoder"):
        load_audio(media["wav16k_mono"], decoder="gstreamer")
    with pytest.raises(InvalidOptionError):
        load_audio(media["wav16k_mono"], sr=0)
    with pytest.raises(InvalidOptionError):
        load_audio(12345)  # type: ignore[arg-type]
    # Without ffmpeg: "auto" falls back to soundfile, "ffmpeg" is refused.
    monkeypatch.setattr(wa, "ffmpeg_available", lambda: False)
    expected = load_audio(media["wav44k_stereo"], decoder="soundfile")
    np.testing.assert_array_equal(load_audio(media["wav44k_stereo"]), expected)
    with pytest.raises(BackendUnavailableError, match="ffmpeg"):
        load_audio(media["wav16k_mono"], decoder="ffmpeg")


# ------------------------------------------------------------------------------ arrays


def test_numpy_inputs() -> None:
    rng = np.random.default_rng(3)
    stereo = rng.integers(-32768, 32767, size=(1000, 2), dtype=np.int16)
    mono = load_audio(stereo)
    assert mono.dtype == np.float32 and mono.shape == (1000,) and mono.flags.c_contiguous
    np.testing.assert_allclose(mono, stereo.astype(np.float64).mean(axis=1) / 32768.0, atol=1e-7)

    ints = stereo[:, 0].copy()
    np.testing.assert_array_equal(load_audio(ints), ints.astype(np.float32) / 32768.0)
    np.testing.assert_array_equal(load_audio(ints[:, None]), ints.astype(np.float32) / 32768.0)

    floats = rng.standard_normal(500)
    out = load_audio(floats)
    assert out.dtype == np.float32 and np.allclose(out, floats, atol=1e-6)
    already = np.ascontiguousarray(floats, dtype=np.float32)
    assert load_audio(already) is already  # no needless copy
    strided = load_audio(np.asarray(floats, dtype=np.float32)[::2])
    assert strided.flags.c_contiguous and strided.shape == (250,)
    assert load_audio(np.zeros(0, dtype=np.float32)).shape == (0,)

    with pytest.raises(InvalidOptionError, match="shape"):
        load_audio(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(InvalidOptionError, match="dtype"):
        load_audio(np.zeros(10, dtype=np.uint8))


@pytest.mark.parametrize("shape, length, axis", [
    ((1000,), 480000, -1), ((500_000,), 480000, -1), ((480000,), 480000, -1),
    ((80, 3100), 3000, -1), ((80, 2000), 3000, -1), ((10, 7), 4, 0), ((3, 5), 9, 0), ((0,), 16, -1),
])  # fmt: skip
def test_pad_or_trim_matches_openai(shape: tuple[int, ...], length: int, axis: int) -> None:
    ref_mod = _openai_audio()
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    ours = pad_or_trim(x, length, axis=axis)
    ref = ref_mod.pad_or_trim(x, length, axis=axis)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)
    assert ours.flags.c_contiguous


# ------------------------------------------------------------------------------ real speech


def _speech_files() -> list[Path]:
    return sorted(SPEECH_DIR.glob("*.wav")) if SPEECH_DIR.is_dir() else []


@pytest.mark.slow  # ~100 clips, three ffmpeg runs each
@pytest.mark.skipif(not _speech_files(), reason=f"no speech clips in {SPEECH_DIR}")
def test_real_speech_matches_openai() -> None:
    mismatches = []
    for path in _speech_files():
        ref = _openai_load(path)
        if HAVE_FFMPEG and not np.array_equal(load_audio(path, decoder="ffmpeg"), ref):
            mismatches.append(("ffmpeg", path.name))
        info = sf.info(path)
        got = load_audio(path, decoder="soundfile")
        if info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16":
            if not np.array_equal(got, ref):
                mismatches.append(("soundfile", path.name))
        else:
            _assert_close(ref, got, path.name)
    assert not mismatches, mismatches


@pytest.mark.skipif(not _speech_files(), reason=f"no speech clips in {SPEECH_DIR}")
def test_real_speech_transcoded(tmp_path: Path) -> None:
    src = _speech_files()[0]
    variants = [
        _ffmpeg_encode(src, tmp_path / "s44.wav", "-ar", "44100", "-ac", "2"),
        _ffmpeg_encode(src, tmp_path / "s8.wav", "-ar", "8000"),
        _ffmpeg_encode(src, tmp_path / "s22.flac", "-ar", "22050"),
        _ffmpeg_encode(src, tmp_path / "s.ogg", "-c:a", "libvorbis"),
    ]
    if _has_encoder("libmp3lame") and "MP3" in sf.available_formats():
        variants.append(_ffmpeg_encode(src, tmp_path / "s.mp3", "-ar", "44100", "-c:a", "libmp3lame"))
    for path in variants:
        ref = _openai_load(path)
        np.testing.assert_array_equal(load_audio(path, decoder="ffmpeg"), ref)
        _assert_close(ref, load_audio(path, decoder="soundfile"), path.name)


# ------------------------------------------------------------------------------ memory

_MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from whisper_genio.audio import load_audio
    load_audio(np.zeros(16, np.float32))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = load_audio(sys.argv[1], decoder=sys.argv[2])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(out.nbytes, (peak - base) * 1024)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux-specific")
@pytest.mark.parametrize("decoder", ["ffmpeg", "soundfile"])
def test_peak_memory_is_about_the_output(tmp_path_factory: pytest.TempPathFactory, decoder: str) -> None:
    """20 minutes of 22.05 kHz stereo: the peak may exceed the float32 output (77 MB) by 10 %
    plus 12 MB, which rules out a float64 copy (+154 MB) or a whole int16 copy (+38 MB)."""
    if decoder == "ffmpeg" and not HAVE_FFMPEG:
        pytest.skip("ffmpeg is not on PATH")
    path = tmp_path_factory.getbasetemp() / "long_22k_stereo.flac"
    if not path.exists():
        rate, block = 22050, 22050 * 30
        with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
            for start in range(0, 20 * 60 * rate, block):
                t = np.arange(start, start + block) / rate
                x = 0.3 * np.sin(2 * np.pi * 440 * t)
                f.write(np.stack([x, 0.5 * x], axis=1))
    # The child must import the same whisper_genio as this process.
    package_root = str(Path(wa.__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path), decoder],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": python_path},
        cwd=tmp_path_factory.getbasetemp(),  # not the repo root: `-c` puts the cwd first on sys.path
    )
    assert proc.returncode == 0, proc.stderr
    nbytes, grown = map(int, proc.stdout.split())
    assert nbytes == 20 * 60 * 16000 * 4
    assert grown < nbytes * 1.10 + 12e6, (nbytes, grown)
