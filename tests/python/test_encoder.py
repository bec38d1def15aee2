"""The native CPU encoder against openai-whisper's fp32 encoder, same weights, real speech."""

from __future__ import annotations

import numpy as np
import pytest

from testdata import require_speech, report_metric

MIN_COSINE = 0.9999


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_encoder_matches_openai(base_model, openai_base):
    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    rows = [r for r in require_speech() if r["id"].startswith(("en_jfk", "de_fleurs_test_000", "zh_", "en_ljspeech"))][:4]
    for row in rows:
        samples = whisper.load_audio(str(row["path"]))
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(samples))
        with torch.no_grad():
            ref = openai_base.encoder(mel[None])[0].numpy()
        ours = base_model.encode(mel.numpy())
        assert ours.shape == ref.shape == (1500, 512)
        assert ours.dtype == np.float32
        c = cosine(ours, ref)
        report_metric(f"encoder {row['id']}: cosine {c:.7f}, max abs {np.abs(ours - ref).max():.2e}")
        assert c >= MIN_COSINE, row["id"]
        # encode(file) builds the same window itself
        np.testing.assert_allclose(base_model.encode(str(row["path"])), ours, atol=2e-3)


def test_encode_rejects_a_wrong_mel_shape(base_model):
    from whisper_genio.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError):
        base_model.pipeline.encoder.encode(np.zeros((80, 2999), np.float32))
    with pytest.raises(InvalidOptionError):
        base_model.pipeline.decoder.set_audio(np.zeros((1500, 384), np.float32))


MIN_INT8_COSINE = 0.999


def test_int8_encoder_stays_close_to_float32_on_speech(base_model):
    """compute_type="int8" runs the encoder's products as int8-weight GEMMs with per-row
    quantised activations (up to 15 bits: int16 on AVX2, two int8 passes elsewhere)."""
    import whisper_genio
    from whisper_genio import _core

    rows = [r for r in require_speech() if r["id"].startswith(("en_jfk", "de_fleurs_test_000", "zh_", "en_ljspeech"))][:4]
    m8 = whisper_genio.load_model("base", threads=base_model.threads, compute_type="int8")
    for row in rows:
        ref = base_model.encode(str(row["path"]))
        got = m8.encode(str(row["path"]))
        c = cosine(got, ref)
        report_metric(f"int8 encoder ({_core.isa()}) {row['id']}: cosine vs float32 {c:.6f}")
        assert c >= MIN_INT8_COSINE, row["id"]


def _openai_encoder_on_first_positions(encoder, mel, positions: int):
    """openai-whisper's encoder math on the first `positions` positions only (whisper.cpp's
    audio_ctx): the conv stem sees the real frame after them, attention only the positions."""
    import torch
    import torch.nn.functional as F

    x = F.gelu(encoder.conv1(mel[None, :, : 2 * positions + 1]))[:, :, : 2 * positions]
    x = F.gelu(encoder.conv2(x)).permute(0, 2, 1)
    x = x + encoder.positional_embedding[:positions]
    for block in encoder.blocks:
        x = block(x)
    with torch.no_grad():
        return encoder.ln_post(x)[0].numpy()


def test_trimmed_window_is_the_encoder_on_its_first_positions(base_model, openai_base):
    """trim_min_frames encodes only the window's audio and a second of padding, at least that many
    frames, in whole seconds (50 positions), and each position is openai-whisper's math restricted
    to them."""
    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    from whisper_genio import _core

    row = [r for r in require_speech() if r["id"].startswith("en_jfk")]
    if not row:
        pytest.skip("en_jfk missing from ../shared/data/speech")
    samples = whisper.load_audio(str(row[0]["path"]))
    windows = _core.MelWindows(samples, 80, base_model.pipeline.pool)
    size = windows.content_frames  # 11 s: 1100 frames
    encoder = base_model.pipeline.encoder
    assert encoder.variable_positions
    trimmed = encoder.encode(windows, 0, size, base_model.pipeline.pool, trim_min_frames=100)
    assert size == 1100
    assert trimmed.shape == (600, 512)  # (1100 + 100) / 2 positions: whole seconds already
    assert encoder.encode(windows, 0, size, base_model.pipeline.pool, trim_min_frames=1250).shape == (650, 512)
    # transcribe()'s window: the recording's mel (with 30 s of padding), cut, zero-padded to 3000.
    mel = whisper.log_mel_spectrogram(samples, padding=whisper.audio.N_SAMPLES)
    mel = whisper.pad_or_trim(mel[:, :size], whisper.audio.N_FRAMES)
    with torch.no_grad():
        ref = _openai_encoder_on_first_positions(openai_base.encoder, mel, 600)
    c = cosine(trimmed, ref)
    report_metric(f"trimmed encoder (600 of 1500 positions): cosine {c:.7f} to openai-whisper's math")
    assert c >= MIN_COSINE
    # Trimming never cuts into the audio or its second of padding; 30 s is the whole window.
    assert encoder.encode(windows, 0, size, base_model.pipeline.pool, trim_min_frames=0).shape == (600, 512)
    np.testing.assert_array_equal(encoder.encode(windows, 0, size, base_model.pipeline.pool, trim_min_frames=3000),
                                  encoder.encode(windows, 0, size, base_model.pipeline.pool))
    # The decoder takes the fewer positions; fewer than one or more than a window are refused.
    base_model.pipeline.decoder.set_audio(trimmed)
    from whisper_genio.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="encoder states have shape"):
        base_model.pipeline.decoder.set_audio(np.zeros((1501, 512), np.float32))
