"""Word-level timestamps: each piece against openai-whisper's (whisper.timing), then whole
transcriptions against openai-whisper on the same weights and alignment heads."""

from __future__ import annotations

import numpy as np
import pytest

import whisper_genio
from whisper_genio import _core
from whisper_genio.audio import load_audio
from whisper_genio.errors import InvalidOptionError
from whisper_genio.transcription import timing
from whisper_genio.transcription.timing import WordTiming, merge_punctuations

from testdata import TEST_THREADS, openai_model, report_metric, require_speech

TOLERANCE = 0.02  # seconds: one audio position


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 9), (30, 400), (64, 1500)])
def test_dtw_is_openai_whispers(shape):
    wt = pytest.importorskip("whisper.timing")
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    for x in (rng.standard_normal(shape).astype(np.float32), np.round(rng.standard_normal(shape) * 2).astype(np.float32)):
        rows, cols = _core.dtw(x)  # the second matrix has many ties: the tie-breaking must match too
        want = wt.dtw_cpu(x.astype(np.float64))
        np.testing.assert_array_equal(rows, want[0])
        np.testing.assert_array_equal(cols, want[1])


def test_dtw_path_is_monotonic_and_complete():
    rows, cols = _core.dtw(np.zeros((4, 10), np.float32))
    assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (3, 9)
    assert np.all(np.diff(rows) >= 0) and np.all(np.diff(cols) >= 0)
    assert np.all(np.diff(rows) + np.diff(cols) >= 1)


@pytest.mark.parametrize("frames", [2, 3, 4, 50, 301])
def test_median_filter_is_openai_whispers(frames):
    wt = pytest.importorskip("whisper.timing")
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(frames).standard_normal((3, 5, frames)).astype(np.float32)
    want = wt.median_filter(torch.from_numpy(x), 7).numpy()
    np.testing.assert_array_equal(timing.median_filter(x, 7), want)


def test_punctuation_joins_its_word():
    words = [WordTiming(w, [i]) for i, w in enumerate([" (", "hello", ",", " world", ".", " \"", "again", "\""])]
    merge_punctuations(words, timing.PREPEND_PUNCTUATIONS, timing.APPEND_PUNCTUATIONS)
    assert [w.word for w in words] == ["", " (hello,", "", " world.", "", "", " \"again\"", ""]
    assert words[1].tokens == [0, 1, 2] and words[6].tokens == [5, 6, 7]


def test_options_are_checked():
    with pytest.raises(InvalidOptionError, match="hallucination_silence_threshold"):
        whisper_genio.TranscribeOptions(hallucination_silence_threshold=-1)
    with pytest.raises(InvalidOptionError, match="word_timestamps"):
        whisper_genio.TranscribeOptions(word_timestamps="yes")


@pytest.fixture(scope="module")
def openai_base_aligned(base_checkpoint):
    whisper = pytest.importorskip("whisper")
    model = openai_model(base_checkpoint)
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["base"])
    return model


def _words(result):
    return [w for s in result["segments"] for w in s["words"]]


def test_alignment_heads_are_base_s(base_model):
    assert base_model.alignment_heads == whisper_genio.dims.ALIGNMENT_HEADS["base"]


def test_words_match_openai_whisper(base_model, openai_base_aligned, english_items):
    """Every 6th English item: the same words, and >= 95 % of boundaries within one audio position
    (20 ms) of openai-whisper's; segment times agree with the words."""
    whisper = pytest.importorskip("whisper")
    close = total = 0
    for row in english_items[::6]:
        audio = load_audio(str(row["path"]))
        ours = base_model.transcribe(audio, word_timestamps=True, temperature=0.0, language="en")
        ref = whisper.transcribe(openai_base_aligned, audio, word_timestamps=True, temperature=0.0, fp16=False,
                                 language="en")
        assert [w["word"] for w in _words(ours)] == [w["word"] for w in _words(ref)], row["id"]
        for a, b in zip(_words(ours), _words(ref)):
            total += 1
            close += abs(a["start"] - b["start"]) <= TOLERANCE + 1e-9 and abs(a["end"] - b["end"]) <= TOLERANCE + 1e-9
        for seg in ours["segments"]:
            if seg["words"]:
                assert seg["start"] <= seg["words"][0]["start"] + 1e-9 and seg["end"] >= seg["words"][-1]["end"] - 1e-9
    report_metric(f"word timestamps vs openai-whisper: {close}/{total} words within 20 ms ({len(english_items[::6])} items)")
    assert total > 100 and close >= 0.95 * total


def test_hallucination_threshold_skips_silence_like_openai(base_model, openai_base_aligned):
    """Speech, 40 s of silence, speech: with hallucination_silence_threshold the segments are
    openai-whisper's, and nothing is transcribed in the silence."""
    whisper = pytest.importorskip("whisper")
    jfk = [r for r in require_speech() if r["id"] == "en_jfk_inaugural_1961"]
    if not jfk:
        pytest.skip("JFK clip missing from ../shared/data/speech")
    speech = load_audio(str(jfk[0]["path"]))
    audio = np.concatenate([speech, np.zeros(16000 * 40, np.float32), speech])
    kw = dict(word_timestamps=True, hallucination_silence_threshold=2.0, temperature=0.0, language="en")
    ours = base_model.transcribe(audio, **kw)
    ref = whisper.transcribe(openai_base_aligned, audio, fp16=False, **kw)
    assert [s["text"] for s in ours["segments"]] == [s["text"] for s in ref["segments"]]
    words = _words(ours)
    assert not [w for w in words if 11.5 < w["start"] < 50.5], "no words in the silence"
    assert ours["text"].lower().count("ask not") >= 2  # both speeches (openai-whisper repeats one line too)


def test_replayed_windows_get_words_too(base_model, tmp_path):
    jfk = [r for r in require_speech() if r["id"] == "en_jfk_inaugural_1961"]
    if not jfk:
        pytest.skip("JFK clip missing from ../shared/data/speech")
    audio = load_audio(str(jfk[0]["path"]))
    states = base_model.encode(base_model.pipeline.recording(audio).windows.window(0, 1100))
    path = tmp_path / "output.bin"
    states.tofile(path)
    replay = whisper_genio.load_model("base", threads=TEST_THREADS, encoder_output=[path])
    ours = replay.transcribe(audio, word_timestamps=True, temperature=0.0, language="en")
    cpu = base_model.transcribe(audio, word_timestamps=True, temperature=0.0, language="en")
    assert [(w["word"], w["start"], w["end"]) for w in _words(ours)] == \
        [(w["word"], w["start"], w["end"]) for w in _words(cpu)]


def test_a_frame_every_token_attends_to_alike_carries_no_alignment():
    """openai-whisper divides by a zero std there (NaN, then a DTW over NaN): it stays 0 here."""
    from whisper_genio.transcription.timing import _attention_matrix

    qk = np.zeros((2, 6, 1), np.float32)  # one frame: every token's softmax is 1
    m = _attention_matrix(qk, 3, 7, 1.0)
    assert m.shape == (2, 1) and np.isfinite(m).all() and not m.any()
    qk = np.random.default_rng(0).normal(size=(2, 6, 40)).astype(np.float32)
    qk[:, :, 5] = 0.0
    assert np.isfinite(_attention_matrix(qk, 3, 7, 1.0)).all()
