"""faster-whisper's transcribe options that openai-whisper lacks: multilingual (a language per
window), language_detection_threshold / language_detection_segments, max_new_tokens, log_progress.
Their defaults leave openai-whisper's results unchanged (test_oracle.py checks that)."""

from __future__ import annotations

import numpy as np
import pytest

import whisper_genio
from whisper_genio.errors import InvalidOptionError

from testdata import SPEECH


def _clip(name: str) -> np.ndarray:
    path = SPEECH / name
    if not path.is_file():
        pytest.skip(f"{name} missing from ../shared/data/speech")
    return whisper_genio.load_audio(str(path))


@pytest.fixture(scope="module")
def german_then_english():
    """A German clip padded to one 30 s window, then the JFK clip."""
    de = _clip("de_fleurs_test_000.wav")
    en = _clip("en_jfk_inaugural_1961.wav")
    return np.concatenate([whisper_genio.pad_or_trim(de), en]).astype(np.float32)


def test_multilingual_decodes_each_window_in_its_language(base_model, german_then_english):
    one = base_model.transcribe(german_then_english, temperature=0.0)
    assert one["language"] == "de"
    assert "ask not" not in one["text"].lower()  # the English part comes out German
    each = base_model.transcribe(german_then_english, temperature=0.0, multilingual=True)
    assert each["language"] == "de"  # the recording's language is the first window's
    languages = [s["language"] for s in each["segments"]]
    assert languages[0] == "de" and languages[-1] == "en"
    english = " ".join(s["text"] for s in each["segments"] if s["language"] == "en").lower()
    assert "ask not what your country can do for you" in english.replace(",", "")


def test_detection_over_more_windows(base_model):
    """30 s of silence, then German: the silent window is no evidence (below the threshold), so
    with two windows to look at the German one decides."""
    audio = np.concatenate([np.zeros(30 * 16000, np.float32), _clip("de_fleurs_test_000.wav")])
    assert base_model.transcribe(audio, temperature=0.0)["language"] != "de"
    assert base_model.transcribe(audio, temperature=0.0, language_detection_segments=2)["language"] == "de"


def test_max_new_tokens_is_sample_len(base_model):
    audio = _clip("en_jfk_inaugural_1961.wav")
    short = base_model.transcribe(audio, temperature=0.0, max_new_tokens=5, condition_on_previous_text=False)
    assert 0 < len(short["segments"][0]["tokens"]) <= 5
    with pytest.raises(InvalidOptionError, match="max_new_tokens and sample_len"):
        base_model.transcribe(audio, max_new_tokens=5, sample_len=5)


def test_log_progress_draws_a_bar(base_model, capsys):
    base_model.transcribe(_clip("en_jfk_inaugural_1961.wav"), temperature=0.0, log_progress=True)
    assert "frames" in capsys.readouterr().err


@pytest.mark.parametrize("name,value", [
    ("language_detection_threshold", 1.5), ("language_detection_threshold", "x"),
    ("language_detection_segments", 0), ("language_detection_segments", 10**6), ("language_detection_segments", 1.5),
    ("multilingual", "yes"), ("log_progress", 1), ("max_new_tokens", 0),
])
def test_bad_values(base_model, name, value):
    with pytest.raises(InvalidOptionError) as e:
        base_model.transcribe("/nonexistent/never-read.wav", **{name: value})
    assert name in str(e.value)


def test_clips_past_the_end_give_no_segments(base_model):
    """A clip past the audio's end is empty (it once failed with 'mel window out of range')."""
    audio = _clip("en_jfk_inaugural_1961.wav")  # 11 s
    assert base_model.transcribe(audio, clip_timestamps="20,30")["segments"] == []
    assert base_model.transcribe(audio, clip_timestamps="20")["segments"] == []
    inside = base_model.transcribe(audio, clip_timestamps="5,30", temperature=0.0)["segments"]
    assert inside and inside[0]["start"] >= 5.0
