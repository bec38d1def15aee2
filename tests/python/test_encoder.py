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
