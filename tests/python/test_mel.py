"""Log-mel parity with openai-whisper's log_mel_spectrogram on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_genio import _core
from whisper_genio.audio import N_SAMPLES, load_audio

from testdata import require_speech, report_metric

TOLERANCE = 1e-3  # absolute, in openai-whisper's normalised log-mel units


@pytest.fixture(scope="module")
def clips():
    rows = require_speech()
    # a spread of sources: quiet FLEURS, LibriSpeech, ARCTIC, JFK, Mandarin
    picked = [r for r in rows if r["id"].startswith(("en_jfk", "en_cathy", "de_fleurs", "zh_", "en_libri"))][:8]
    return [(r["id"], load_audio(r["path"])) for r in picked]


@pytest.mark.parametrize("n_mels", [80, 128])
def test_filters_match_openai(n_mels):
    audio = pytest.importorskip("whisper.audio")
    ref = audio.mel_filters("cpu", n_mels).numpy()
    ours = _core.mel_filters(n_mels)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-7


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("padding", [0, N_SAMPLES])
def test_log_mel_matches_openai_on_speech(clips, n_mels, padding):
    audio = pytest.importorskip("whisper.audio")
    worst = 0.0
    for name, samples in clips:
        ref = audio.log_mel_spectrogram(samples, n_mels, padding=padding).numpy()
        ours = _core.log_mel_spectrogram(samples, n_mels, padding)
        assert ours.shape == ref.shape, name
        err = float(np.abs(ours - ref).max())
        worst = max(worst, err)
        assert err < TOLERANCE, f"{name}: max abs error {err}"
    report_metric(f"log-mel n_mels={n_mels} padding={padding}: worst max-abs error {worst:.2e}")


def test_silent_frames_match_openai(clips):
    """Frames of exact zeros skip the FFT: a silent stretch inside speech, one faint sample in it
    (its frames must not be skipped) and the trailing padding all still equal openai-whisper's."""
    audio = pytest.importorskip("whisper.audio")
    _, speech = clips[0]
    silence = np.zeros(16000, np.float32)
    faint = silence.copy()
    faint[8000] = 0.05
    samples = np.concatenate([speech[:32000], silence, faint, speech[32000:48000]])
    ref = audio.log_mel_spectrogram(samples, 80, padding=N_SAMPLES).numpy()
    ours = _core.log_mel_spectrogram(samples, 80, N_SAMPLES)
    assert np.abs(ours - ref).max() < TOLERANCE
    faint_frame = (32000 + 16000 + 8000) // 160
    assert ours[:, faint_frame].max() > ours[:, faint_frame - 10].max(), "the faint sample's frames were skipped"


def test_windows_equal_slices_of_the_full_spectrogram(clips):
    """MelWindows (bounded memory) == openai's slice-and-pad of the padded spectrogram."""
    audio = pytest.importorskip("whisper.audio")
    torch = pytest.importorskip("torch")
    samples = np.concatenate([s for _, s in clips])  # > 30 s: several windows
    full = audio.log_mel_spectrogram(samples, 80, padding=N_SAMPLES)
    content = full.shape[-1] - 3000
    windows = _core.MelWindows(samples, 80)
    assert windows.content_frames == content
    for seek in (0, 1234, content - 3000, content - 10):
        size = min(3000, content - seek)
        ref = audio.pad_or_trim(full[:, seek:seek + size], 3000).numpy()
        ours = windows.window(seek, size)
        assert np.abs(ours - ref).max() < TOLERANCE, seek
    # language detection uses the first 3000 frames of the padded spectrogram, not a zero-padded slice
    np.testing.assert_allclose(windows.window(0, 3000), full[:, :3000].numpy(), atol=TOLERANCE)
    del torch


def test_one_window_is_what_decode_takes(clips):
    """MelWindows(one_window=True) == log_mel_spectrogram(pad_or_trim(x)): decode()'s window, normalised
    by its own 3000 frames, for a short clip (padded) and a long one (trimmed), bit for bit."""
    from whisper_genio.audio import pad_or_trim

    long = np.concatenate([s for _, s in clips])
    for samples in (clips[0][1], long):
        one = _core.MelWindows(samples, 80, one_window=True)
        assert one.content_frames == 3000
        want = _core.log_mel_spectrogram(pad_or_trim(samples, N_SAMPLES), 80)
        np.testing.assert_array_equal(one.window(0, 3000), want)


def test_window_arguments_are_checked():
    from whisper_genio.errors import InvalidOptionError

    w = _core.MelWindows(np.zeros(16000, np.float32), 80)
    with pytest.raises(InvalidOptionError):
        w.window(-1, 100)
    with pytest.raises(InvalidOptionError):
        w.window(0, 3001)
    with pytest.raises(InvalidOptionError):
        _core.MelWindows(np.zeros(10, np.float32), 81)
