"""Loop guards: Whisper's greedy decoder falls into loops on non-speech (here a 1 kHz beep once a
second, on which whisper-base repeats one sentence until the window's token budget runs out).
repetition_cutoff stops such a window after a few repeats, no_repeat_ngram_size and
repetition_penalty (faster-whisper's) keep it from looping at all. Off by default: openai-whisper's
results stay token for token."""

from __future__ import annotations

import numpy as np
import pytest

SR = 16000


def _beeps(seconds: float = 30.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * 1000 * t) * ((t % 1.0) < 0.2)).astype(np.float32)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in text.split(".") if s.strip()]


@pytest.fixture(scope="module")
def looping(base_model):
    """The window decoded without a guard: the precondition that makes the other tests mean something."""
    result = base_model.decode(_beeps(), temperature=0.0)
    sentences = _sentences(result.text)
    assert len(sentences) >= 5 and len(set(sentences)) == 1, f"no loop to guard against: {result.text!r}"
    assert not result.looped
    return result


@pytest.mark.parametrize("repeats", [2, 3])
def test_cutoff_stops_the_loop_and_keeps_one_copy(base_model, looping, repeats):
    result = base_model.decode(_beeps(), temperature=0.0, repetition_cutoff=repeats)
    assert result.looped
    assert _sentences(result.text) == _sentences(looping.text)[:1]
    # It stopped after `repeats` copies instead of running to the token budget.
    assert len(result.tokens) < len(looping.tokens) / 2


def test_cutoff_leaves_speech_alone(base_model):
    from testdata import require_speech
    rows = [r for r in require_speech() if r["id"] == "en_jfk_inaugural_1961"]
    if not rows:
        pytest.skip("JFK clip missing from ../shared/data/speech")
    plain = base_model.decode(str(rows[0]["path"]), temperature=0.0)
    guarded = base_model.decode(str(rows[0]["path"]), temperature=0.0, repetition_cutoff=3)
    assert guarded.tokens == plain.tokens and not guarded.looped


def test_ngram_and_penalty_prevent_the_loop(base_model, looping):
    for kwargs in (dict(no_repeat_ngram_size=4), dict(repetition_penalty=1.3)):
        result = base_model.decode(_beeps(), temperature=0.0, **kwargs)
        sentences = _sentences(result.text)
        assert len(sentences) == len(set(sentences)), (kwargs, result.text)  # no sentence twice
        assert len(result.tokens) < len(looping.tokens), kwargs


def test_transcribe_treats_a_cut_window_as_failed(base_model, looping):
    """A looped window counts as failed (like a too-repetitive one): with no_speech_threshold it is
    then judged as silence and dropped, without it the single copy is kept."""
    kept = base_model.transcribe(_beeps(), temperature=0.0, repetition_cutoff=3, no_speech_threshold=None)
    assert [_sentences(s["text"]) for s in kept["segments"]] == [_sentences(looping.text)[:1]]
    plain = base_model.transcribe(_beeps(), temperature=0.0)
    assert len(_sentences(plain["text"])) >= 5  # what users get without a guard
