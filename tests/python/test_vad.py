"""Voice activity detection (vad_filter=True): the Silero model against Silero's own code, the
speech-chunk rules against Silero's (faster-whisper's), the map back to the recording's clock, and
real speech with long silences inserted."""

from __future__ import annotations

import re

import numpy as np
import pytest

import whisper_genio
from whisper_genio import vad
from whisper_genio.audio import SAMPLE_RATE, load_audio
from whisper_genio.errors import InvalidOptionError

from testdata import SPEECH, report_metric


def _model_or_skip(path=None) -> vad.SileroVad:
    pytest.importorskip("onnxruntime")
    try:
        return vad.SileroVad(path)
    except whisper_genio.WhisperGenioError as e:
        pytest.skip(f"no Silero VAD model: {e}")


def _speech(name: str) -> np.ndarray:
    path = SPEECH / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/data)")
    return load_audio(str(path))


@pytest.mark.parametrize("kind", ["sequence", "streaming"])
def test_probabilities_are_silero_s_own(kind):
    """Bit for bit what Silero's ONNX wrapper gives, frame by frame, whichever model file we run."""
    silero = pytest.importorskip("silero_vad")
    torch = pytest.importorskip("torch")
    base = vad.model_path().parent
    path = base / ("silero_vad_16k_sequence.onnx" if kind == "sequence" else "silero_vad.onnx")
    if not path.is_file():
        pytest.skip(f"{path.name} is not in the installed silero-vad")
    ours = _model_or_skip(path)
    assert ours.sequence == (kind == "sequence")
    x = _speech("en_ljspeech_LJ001-0001.wav")[: 3 * SAMPLE_RATE + 100]
    reference = silero.load_silero_vad(onnx=True)
    padded = np.pad(x, (0, (-len(x)) % vad.FRAME))
    want = [reference(torch.from_numpy(padded[i:i + vad.FRAME]), SAMPLE_RATE).item()
            for i in range(0, len(padded), vad.FRAME)]
    np.testing.assert_allclose(ours.probabilities(x), want, rtol=0, atol=1e-6)
    ours.reset()  # the state carries across calls: feeding the audio in pieces changes nothing
    pieces = [ours.probabilities(x[i:i + 7 * vad.FRAME]) for i in range(0, len(x), 7 * vad.FRAME)]
    np.testing.assert_allclose(np.concatenate(pieces), want, rtol=0, atol=1e-6)


def _probability_runs(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Runs of speech and silence of random lengths, with dips and flickers near the thresholds."""
    out, speaking = [], bool(rng.integers(2))
    while len(out) < frames:
        n = int(rng.integers(1, 120))
        level = rng.uniform(0.55, 1.0, n) if speaking else rng.uniform(0.0, 0.4, n)
        flicker = rng.random(n) < 0.05
        level[flicker] = rng.uniform(0.3, 0.6, int(flicker.sum()))
        out.extend(level)
        speaking = not speaking
    return np.asarray(out[:frames], np.float32)


@pytest.mark.parametrize("options", [
    {},
    {"min_silence_duration_ms": 100, "speech_pad_ms": 30, "min_speech_duration_ms": 250},
    {"max_speech_duration_s": 3.0, "min_silence_duration_ms": 500},
    {"max_speech_duration_s": 1.0, "speech_pad_ms": 0, "threshold": 0.6, "neg_threshold": 0.2},
    {"threshold": 0.9, "speech_pad_ms": 1000},
])
def test_speech_chunks_follow_silero_s_rules(options):
    """faster-whisper's rules are Silero's with the cut at the last pause of a too-long chunk."""
    utils = pytest.importorskip("silero_vad.utils_vad")
    rng = np.random.default_rng(len(str(options)))
    full = vad.VadOptions(**options)
    for trial in range(20):
        frames = int(rng.integers(1, 3000))
        probs = _probability_runs(rng, frames)
        n = frames * vad.FRAME - int(rng.integers(0, vad.FRAME))
        want = utils.get_speech_timestamps_from_probs(
            probs.tolist(), SAMPLE_RATE, threshold=full.threshold, neg_threshold=full.neg_threshold,
            min_speech_duration_ms=full.min_speech_duration_ms, max_speech_duration_s=full.max_speech_duration_s,
            min_silence_duration_ms=full.min_silence_duration_ms, speech_pad_ms=full.speech_pad_ms,
            use_max_poss_sil_at_max_speech=False, audio_length_samples=n)
        assert vad.speech_chunks(probs, n, full) == want, (options, trial)


def test_speech_chunks_rules_by_hand():
    frames = lambda *runs: np.concatenate([np.full(n, p, np.float32) for n, p in runs])  # noqa: E731
    opts = vad.VadOptions(min_silence_duration_ms=200, speech_pad_ms=0)
    # a 100 ms pause does not end the chunk; a 320 ms one does
    probs = frames((10, 0.0), (20, 0.9), (3, 0.0), (20, 0.9), (10, 0.0), (20, 0.9), (5, 0.0))
    chunks = vad.speech_chunks(probs, len(probs) * vad.FRAME, opts)
    assert chunks == [{"start": 10 * 512, "end": 53 * 512}, {"start": 63 * 512, "end": 88 * 512}]
    # speech shorter than min_speech_duration_ms is dropped
    short = vad.VadOptions(min_silence_duration_ms=100, speech_pad_ms=0, min_speech_duration_ms=500)
    probs = frames((10, 0.0), (5, 0.9), (20, 0.0), (30, 0.9), (20, 0.0))
    assert vad.speech_chunks(probs, len(probs) * vad.FRAME, short) == [{"start": 35 * 512, "end": 65 * 512}]
    # no speech, no chunks
    assert vad.speech_chunks(np.zeros(100, np.float32), 100 * 512, vad.VadOptions()) == []
    # padding never leaves the recording, and halves where chunks are close
    padded = vad.VadOptions(min_silence_duration_ms=100, speech_pad_ms=400)
    probs = frames((2, 0.0), (20, 0.9), (10, 0.0), (20, 0.9), (2, 0.0))
    n = len(probs) * vad.FRAME
    a, b = vad.speech_chunks(probs, n, padded)
    assert a["start"] == 0 and b["end"] == n and a["end"] == b["start"]


def test_speech_map_puts_times_back_on_the_recording_s_clock():
    chunks = [{"start": 16000, "end": 48000}, {"start": 160000, "end": 176000}]  # 1-3 s, 10-11 s
    m = vad.SpeechMap(chunks, 20 * SAMPLE_RATE)
    assert m.recording_seconds == 20.0
    assert m.original(0.0) == 1.0 and m.original(1.5) == 2.5
    assert m.original(2.0, is_end=True) == 3.0  # the first chunk's end stays in the first chunk
    assert m.original(2.0) == 10.0  # a start there is the second chunk's start
    assert m.original(2.5) == 10.5 and m.original(3.0, is_end=True) == 11.0
    segments = [
        {"start": 0.2, "end": 1.8, "text": "a"},
        {"start": 1.5, "end": 2.8, "text": "spans the cut"},
        {"start": 1.9, "end": 2.9, "text": "b", "words": [{"word": "x", "start": 1.9, "end": 1.98},
                                                        {"word": "y", "start": 2.02, "end": 2.9}]},
    ]
    m.restore(segments)
    assert (segments[0]["start"], segments[0]["end"]) == (1.2, 2.8)
    assert (segments[1]["start"], segments[1]["end"]) == (2.5, 10.8)
    w = segments[2]["words"]
    assert (w[0]["start"], w[0]["end"], w[1]["start"], w[1]["end"]) == (2.9, 2.98, 10.02, 10.9)
    assert (segments[2]["start"], segments[2]["end"]) == (2.9, 10.9)


def test_vad_options_are_checked():
    assert vad.VadOptions.parse({"threshold": 0.3}).threshold == 0.3
    assert whisper_genio.TranscribeOptions(vad_filter=True).vad_parameters == vad.VadOptions()
    for bad, field in [({"threshold": 1.5}, "threshold"), ({"min_silence_duration_ms": -1}, "min_silence_duration_ms"),
                       ({"max_speech_duration_s": 0}, "max_speech_duration_s"), ({"speech_pad_ms": "x"}, "speech_pad_ms"),
                       ({"window_size_samples": 512}, "window_size_samples"), ("fast", "vad_parameters")]:
        with pytest.raises(InvalidOptionError, match=field):
            whisper_genio.TranscribeOptions(vad_filter=True, vad_parameters=bad)
    with pytest.raises(InvalidOptionError, match="vad_filter"):
        whisper_genio.TranscribeOptions(vad_filter="yes")
    with pytest.raises(InvalidOptionError, match="clip_timestamps"):
        whisper_genio.TranscribeOptions(vad_filter=True, clip_timestamps="3,5")


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def test_long_silences_are_skipped_with_the_same_words(base_model):
    """Two utterances with 20-30 s of room noise around them: the same words as each alone, every
    word inside the speech, nothing in the silences, and most of the audio never decoded."""
    _model_or_skip()
    rng = np.random.default_rng(0)
    quiet = lambda seconds: (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 1e-3).astype(np.float32)  # noqa: E731
    first, second = _speech("en_ljspeech_LJ001-0002.wav"), _speech("en_cathy_arctic_a0001.wav")
    parts = [quiet(20), first, quiet(30), second, quiet(15)]
    audio = np.concatenate(parts)
    spoken = [(20.0, 20.0 + len(first) / SAMPLE_RATE)]
    spoken.append((spoken[0][1] + 30, spoken[0][1] + 30 + len(second) / SAMPLE_RATE))

    alone = [base_model.transcribe(x, temperature=0.0)["text"] for x in (first, second)]
    result = base_model.transcribe(audio, temperature=0.0, vad_filter=True, word_timestamps=True)
    assert _words(result["text"]) == _words(" ".join(alone))
    margin = 0.5  # speech_pad_ms plus a word's boundary error
    for s in result["segments"]:
        for w in s["words"]:
            assert any(a - margin <= w["start"] <= w["end"] <= b + margin for a, b in spoken), (w, spoken)
    timings = base_model.last_timings
    assert timings["audio_seconds"] == pytest.approx(len(audio) / SAMPLE_RATE)
    assert timings["speech_seconds"] < 0.3 * timings["audio_seconds"]
    report_metric(f"VAD: {timings['audio_seconds']:.1f} s of audio, {timings['speech_seconds']:.1f} s decoded, "
                  f"VAD {timings['vad']:.2f} s")


def test_no_speech_at_all_gives_no_segments(base_model):
    _model_or_skip()
    quiet = (np.random.default_rng(1).standard_normal(40 * SAMPLE_RATE) * 1e-3).astype(np.float32)
    result = base_model.transcribe(quiet, vad_filter=True)
    assert result["segments"] == [] and result["text"] == ""
