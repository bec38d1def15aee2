"""openai-whisper's module-level API: the same functions, the same results, on numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest

import whisper_genio
from whisper_genio.errors import InvalidOptionError

from testdata import require_speech


def _jfk_path() -> str:
    rows = [r for r in require_speech() if r["id"] == "en_jfk_inaugural_1961"]
    if not rows:
        pytest.skip("JFK clip missing from ../shared/data/speech")
    return str(rows[0]["path"])


def test_log_mel_spectrogram_any_length_matches_openai():
    whisper = pytest.importorskip("whisper")
    audio = whisper_genio.load_audio(_jfk_path())
    assert np.array_equal(audio, whisper.load_audio(_jfk_path()))  # both through ffmpeg
    for n_mels, padding in ((80, 0), (128, 0), (80, whisper.audio.N_SAMPLES)):
        ours = whisper_genio.log_mel_spectrogram(audio, n_mels=n_mels, padding=padding)
        theirs = whisper.log_mel_spectrogram(audio, n_mels=n_mels, padding=padding).numpy()
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 1e-4
    # A path works like samples; pad_or_trim is openai-whisper's on numpy.
    assert whisper_genio.log_mel_spectrogram(_jfk_path()).shape == (80, len(audio) // 160)
    assert whisper_genio.pad_or_trim(audio).shape == (whisper.audio.N_SAMPLES,)


@pytest.mark.parametrize("kwargs", [dict(n_mels=64), dict(padding=-1), dict(padding=1.5), dict(device="cuda")])
def test_log_mel_spectrogram_rejects(kwargs):
    with pytest.raises(InvalidOptionError) as e:
        whisper_genio.log_mel_spectrogram(np.zeros(1600, np.float32), **kwargs)
    assert next(iter(kwargs)) in str(e.value)


def test_get_tokenizer_matches_openai():
    whisper = pytest.importorskip("whisper")
    text = " And so, my fellow Americans: ask not what your country can do for you."
    for multilingual, kwargs in ((True, dict(language="de", task="translate")), (False, {}),
                                 (True, dict(num_languages=100))):
        ours = whisper_genio.get_tokenizer(multilingual, **kwargs)
        theirs = whisper.tokenizer.get_tokenizer(multilingual, **kwargs)
        assert ours.encode(text) == theirs.encode(text)
        assert tuple(ours.sot_sequence) == tuple(theirs.sot_sequence)
        assert ours.eot == theirs.eot and ours.timestamp_begin == theirs.timestamp_begin
    with pytest.raises(InvalidOptionError):
        whisper_genio.get_tokenizer("yes")


def test_decode_and_detect_language_on_a_mel(base_model):
    audio = whisper_genio.pad_or_trim(whisper_genio.load_audio(_jfk_path()))
    mel = whisper_genio.log_mel_spectrogram(audio)
    language, probs = whisper_genio.detect_language(base_model, mel)
    assert language == "en" and probs["en"] > 0.9
    one = whisper_genio.decode(base_model, mel, whisper_genio.DecodingOptions(temperature=0.0))
    assert "ask not what your country can do for you" in one.text.lower()
    batch = whisper_genio.decode(base_model, np.stack([mel, mel]), temperature=0.0)
    assert [r.tokens for r in batch] == [one.tokens, one.tokens]
    assert base_model.device == "cpu"
    assert (base_model.is_multilingual, base_model.num_languages) == (True, 99)


def test_file_objects_are_audio(base_model):
    """faster-whisper takes an open binary file (or BytesIO) as audio: so do we."""
    import io

    path = _jfk_path()
    with open(path, "rb") as f:
        from_file = whisper_genio.load_audio(f)
    assert np.array_equal(from_file, whisper_genio.load_audio(path))
    with open(path, "rb") as f:
        text = base_model.transcribe(io.BytesIO(f.read()), temperature=0.0)["text"]
    assert "ask not what your country can do for you" in text.lower()
    with open(path, "r", encoding="latin-1") as f, pytest.raises(InvalidOptionError, match="binary"):
        whisper_genio.load_audio(f)
