"""Live transcription (model.stream()): the commit policy on a scripted stand-in model (fast,
exact), then whisper-base on real speech fed in chunks."""

from __future__ import annotations

import numpy as np
import pytest

import whisper_genio
from whisper_genio.errors import InvalidOptionError
from whisper_genio.transcription.streaming import TRIM_SECONDS, StreamOptions, StreamSession

from testdata import SPEECH, speech_manifest

SR = 16000


# -- a scripted stand-in model -----------------------------------------------------------------
# The "audio" carries its words: word k is a run of samples of value (k + 1) / 1000, words are
# separated by zeros. The stand-in reads the buffer it is given and returns those words with their
# times, as transcribe() would; a word still running at the buffer's end comes back garbled (the
# unstable tail a real model guesses at), so only agreement can commit it.

def scripted_audio(n_words: int, word: float = 0.4, gap: float = 0.2) -> tuple[np.ndarray, list[tuple]]:
    parts, script, t = [], [], 0.0
    for k in range(n_words):
        parts += [np.full(int(word * SR), (k + 1) / 1000, np.float32), np.zeros(int(gap * SR), np.float32)]
        script.append((f" w{k}", t, t + word))
        t += word + gap
    return np.concatenate(parts), script


class ScriptedModel:
    def __init__(self) -> None:
        self.calls = 0
        self.longest = 0

    def transcribe(self, audio: np.ndarray, **kwargs) -> dict:
        self.calls += 1
        self.kwargs = kwargs
        self.longest = max(self.longest, len(audio))
        assert kwargs["word_timestamps"] is True and kwargs["condition_on_previous_text"] is False
        words = []
        edges = np.flatnonzero(np.diff(audio, prepend=0.0, append=0.0))  # where a run of one value starts/ends
        for i, j in zip(edges[:-1], edges[1:]):
            if audio[i] == 0:
                continue
            k = int(round(audio[i] * 1000)) - 1
            text = f" w{k}" if j < len(audio) else f" w{k}?"  # cut by the buffer's end: unstable
            words.append({"word": text, "start": i / SR, "end": j / SR, "probability": 0.9})
        segments = [{"text": "".join(w["word"] for w in words), "words": words}] if words else []
        return {"text": "", "segments": segments, "language": "en"}


def run(session: StreamSession, audio: np.ndarray, chunk: float = 0.25) -> list:
    events = []
    n = int(chunk * SR)
    for i in range(0, len(audio), n):
        events += session.feed(audio[i:i + n])
    return events + session.flush()


def committed_words(events) -> list[str]:
    return [w for e in events if e.type == "committed" for w in e.text.split()]



def test_stream_decodes_greedily_and_trims_where_it_can_unless_told():
    audio, _ = scripted_audio(6)
    model = ScriptedModel()
    run(StreamSession(model, StreamOptions(vad=False), {}), audio)
    assert model.kwargs["temperature"] == 0.0  # no fallback schedule in the latency path
    assert model.kwargs["repetition_cutoff"] == 3  # so a greedy loop is cut, not agreed on
    assert "trim_window" not in model.kwargs  # this model has no pipeline that can trim
    run(StreamSession(model, StreamOptions(vad=False), {"temperature": (0.0, 0.4), "trim_window": None}), audio)
    assert model.kwargs["temperature"] == (0.0, 0.4) and model.kwargs["trim_window"] is None

@pytest.mark.parametrize("agreement", [1, 2, 3])
def test_every_word_committed_once_in_order(agreement):
    audio, script = scripted_audio(40)
    model = ScriptedModel()
    events = run(StreamSession(model, StreamOptions(vad=False, agreement=agreement), {}), audio)
    words = committed_words(events)
    if agreement == 1:  # each hypothesis is committed whole, its garbled tail too (once)
        words = [w.rstrip("?") for w in words]
    assert words == [w.strip() for w, _, _ in script]
    starts = [e.start for e in events if e.type == "committed"]
    ends = [e.end for e in events if e.type == "committed"]
    assert starts == sorted(starts) and all(s <= e for s, e in zip(starts, ends))
    assert all(b >= a for a, b in zip(ends, starts[1:]))  # committed times never go back
    assert events[-1].type == "endpoint"


class RepeatingTailModel(ScriptedModel):
    """Whisper's failure at a buffer's end: after the heard words it runs on with a phrase it
    already said, every word of it squeezed into the last position (no duration), and the next
    step decoding the same audio says it again."""

    def transcribe(self, audio: np.ndarray, **kwargs) -> dict:
        result = super().transcribe(audio, **kwargs)
        end = len(audio) / SR
        ghost = [{"word": f" again{i}", "start": end - 0.1, "end": end - 0.1, "probability": 0.9} for i in range(3)]
        heard = [w for s in result["segments"] for w in s["words"] if not w["word"].endswith("?")]
        words = heard + ghost
        return {"text": "", "segments": [{"text": "", "words": words}], "language": "en"}


def test_words_squeezed_into_the_buffers_end_are_never_agreed_on():
    audio, script = scripted_audio(6, gap=2.5)  # pauses longer than a step: consecutive steps hear the same words
    session = StreamSession(RepeatingTailModel(), StreamOptions(vad=False, agreement=2), {})
    events = []
    n = int(0.25 * SR)
    for i in range(0, len(audio), n):
        events += session.feed(audio[i:i + n])
    before_flush = committed_words(events)
    assert not any(w.startswith("again") for w in before_flush), before_flush
    assert [w for w in before_flush] == [w.strip() for w, _, _ in script][:len(before_flush)]
    assert len(before_flush) >= 5


def test_agreement_commits_later_but_never_an_unstable_word():
    audio, _ = scripted_audio(20)
    first_commit = {}
    for agreement in (1, 2):
        session = StreamSession(ScriptedModel(), StreamOptions(vad=False, agreement=agreement), {})
        n = int(0.25 * SR)
        for i in range(0, len(audio), n):
            for e in session.feed(audio[i:i + n]):
                if e.type == "committed":
                    assert "?" not in e.text or agreement == 1
                    for w in e.text.split():
                        first_commit.setdefault((agreement, w.strip("?")), session.now)
    # LocalAgreement-2 waits for a second hypothesis: later than committing each hypothesis at once.
    later = [first_commit[(2, f"w{k}")] - first_commit[(1, f"w{k}")] for k in range(15)]
    assert min(later) >= 0 and max(later) > 0


class UnsureModel(ScriptedModel):
    """Hears word 3 as the same word in every hypothesis, but unsure of it (probability 0.2)."""

    def transcribe(self, audio: np.ndarray, **kwargs) -> dict:
        result = super().transcribe(audio, **kwargs)
        for s in result["segments"]:
            s["words"] = [dict(w, probability=0.2) if w["word"].strip(" ?") == "w3" else w for w in s["words"]]
        return result


def test_an_unsure_agreed_word_waits_for_audio_after_it():
    audio, script = scripted_audio(10)
    w3_end = script[3][2]
    n = int(0.25 * SR)
    for min_probability, wait in ((0.0, 2.0), (0.5, 2.0), (0.5, 30.0)):
        session = StreamSession(UnsureModel(), StreamOptions(vad=False, min_word_probability=min_probability,
                                                             unsure_word_wait=wait), {})
        before_flush, w3_committed_at = [], None
        for i in range(0, len(audio), n):
            words = committed_words(session.feed(audio[i:i + n]))
            if "w3" in words:
                w3_committed_at = session.now
            before_flush += words
        if min_probability == 0:  # agreement alone: w3 goes out like any other word
            assert w3_committed_at is not None and w3_committed_at - w3_end < 2.0
        elif wait == 2.0:  # unsure: committed once two seconds of audio follow it, not before
            assert w3_committed_at is not None and w3_committed_at - w3_end >= 2.0
        else:  # it waits for the end, and the prefix stops before it: nothing after it goes out either
            assert before_flush == ["w0", "w1", "w2"]
        assert before_flush + committed_words(session.flush()) == [w.strip() for w, _, _ in script]


class RecordingModel(ScriptedModel):
    def __init__(self) -> None:
        super().__init__()
        self.trims: list = []

    def transcribe(self, audio: np.ndarray, **kwargs) -> dict:
        self.trims.append(kwargs.get("trim_window", "absent"))
        return super().transcribe(audio, **kwargs)


@pytest.mark.parametrize("whole", [True, False])
def test_the_decode_that_ends_an_utterance_encodes_a_whole_window(whole):
    audio, _ = scripted_audio(6)
    model = RecordingModel()
    run(StreamSession(model, StreamOptions(vad=False, whole_window_at_endpoint=whole), {"trim_window": 10.0}), audio)
    assert model.trims[:-1] == [10.0] * (len(model.trims) - 1) and len(model.trims) > 3  # every step trimmed
    assert model.trims[-1] == (None if whole else 10.0)  # the flush's decode: a whole window, unless told


def test_partial_is_the_hypothesis_after_committed_text():
    audio, _ = scripted_audio(10)
    session = StreamSession(ScriptedModel(), StreamOptions(vad=False), {})
    committed = []
    for i in range(0, len(audio), SR // 4):
        for e in session.feed(audio[i:i + SR // 4]):
            if e.type == "committed":
                committed += e.text.split()
            elif e.type == "partial" and e.text:
                first = e.text.split()[0].strip("?")
                assert first not in committed  # nothing committed is shown again as partial
                assert e.start >= (session._committed_end if committed else 0.0) - 1e-9


def test_long_stream_keeps_bounded_memory():
    """Ten minutes of scripted speech: the decoded buffer never exceeds max_buffer, nor the
    session's memory its few fixed-size tails."""
    audio, script = scripted_audio(1000)  # 600 s
    model = ScriptedModel()
    options = StreamOptions(vad=False, step=2.0, trim_seconds=8.0, max_buffer=12.0)
    session = StreamSession(model, options, {})
    events = run(session, audio, chunk=1.0)
    assert committed_words(events) == [w.strip() for w, _, _ in script]
    assert model.longest <= (options.max_buffer + options.step) * SR
    assert len(session._committed) <= 64 and len(session._hypotheses) <= 1


def test_nothing_agreed_for_too_long_is_forced_out():
    """A word that never stabilises (agreement 5 on a model whose tail always changes) is still
    committed once it leaves max_buffer: the buffer stays bounded."""
    audio, _ = scripted_audio(60)
    model = ScriptedModel()
    session = StreamSession(model, StreamOptions(vad=False, agreement=5, trim_seconds=4.0, max_buffer=6.0), {})
    events = run(session, audio)
    assert len(committed_words(events)) == 60
    assert model.longest <= 7.0 * SR


@pytest.mark.parametrize("chunk,message", [
    (np.array([0.0, np.nan], np.float32), "NaN"),
    (np.array([0.0, np.inf], np.float64), "NaN"),
    (np.zeros(10, np.complex64), "complex"),
    (np.zeros((3, 3, 3), np.float32), "shape"),
    (np.zeros((20, 20), np.float32), "channels"),
    (np.array(["a"]), "U1"),
])
def test_bad_chunks_raise_and_leave_the_session_usable(chunk, message):
    audio, script = scripted_audio(10)
    session = StreamSession(ScriptedModel(), StreamOptions(vad=False), {})
    events = session.feed(audio[: len(audio) // 2])
    with pytest.raises(whisper_genio.WhisperGenioError, match=message):
        session.feed(chunk)
    events += session.feed(audio[len(audio) // 2:]) + session.flush()
    assert committed_words(events) == [w.strip() for w, _, _ in script]


def test_bad_rates_and_options():
    session = StreamSession(ScriptedModel(), StreamOptions(vad=False), {})
    session.feed(np.zeros(100, np.float32), sample_rate=16000)
    with pytest.raises(InvalidOptionError, match="sample_rate changed"):
        session.feed(np.zeros(100, np.float32), sample_rate=48000)
    for rate in (0, -1, 1.5, "16000", True):
        with pytest.raises(InvalidOptionError, match="sample_rate"):
            session.feed(np.zeros(100, np.float32), sample_rate=rate)
    session.flush()
    with pytest.raises(InvalidOptionError, match="flushed"):
        session.feed(np.zeros(100, np.float32))
    for kwargs in (dict(step=0), dict(agreement=0), dict(max_buffer=31), dict(trim_seconds=29, max_buffer=20),
                   dict(vad="yes"), dict(endpoint_silence=-1), dict(vad_threshold=1.0),
                   dict(min_word_probability=1.0), dict(min_word_probability="0.5"), dict(unsure_word_wait=-1),
                   dict(whole_window_at_endpoint=1)):
        with pytest.raises(InvalidOptionError, match=next(iter(kwargs))):
            StreamOptions(**kwargs)
    with pytest.raises(InvalidOptionError, match="word_timestamps"):
        StreamSession(ScriptedModel(), StreamOptions(vad=False), {"word_timestamps": False})


# -- whisper-base on real speech ---------------------------------------------------------------

def _clip(name: str) -> np.ndarray:
    if not (SPEECH / name).is_file():
        pytest.skip(f"{name} missing from ../shared/data/speech")
    return whisper_genio.load_audio(str(SPEECH / name))


def _words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


@pytest.mark.parametrize("vad", [False, True])
def test_streamed_jfk_matches_the_offline_transcript(base_model, vad):
    if vad:
        pytest.importorskip("onnxruntime")
        pytest.importorskip("silero_vad")
    import jiwer

    audio = _clip("en_jfk_inaugural_1961.wav")
    offline = base_model.transcribe(audio, temperature=0.0, language="en")["text"]
    session = base_model.stream(vad=vad, language="en", step=3.0, word_timestamps=True)
    assert session._kwargs["trim_window"] == TRIM_SECONDS  # the CPU encoder encodes only the buffer
    events = run(session, audio, chunk=0.5)
    streamed = "".join(e.text for e in events if e.type == "committed")
    wer = jiwer.wer(" ".join(_words(offline)), " ".join(_words(streamed)))
    assert wer <= 0.15, (offline, streamed)
    words = [w for e in events if e.type == "committed" for w in e.words]
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert all(0 <= w["start"] <= w["end"] <= len(audio) / SR + 0.5 for w in words)


def test_silence_gives_no_text_and_no_decoding(base_model):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("silero_vad")
    session = base_model.stream(vad=True)
    events = run(session, np.zeros(10 * SR, np.float32), chunk=0.5)
    assert events == [] and session.stats["steps"] == 0


def test_int16_at_another_rate(base_model):
    import soxr

    audio = _clip("en_jfk_inaugural_1961.wav")
    pcm = (soxr.resample(audio, SR, 8000) * 32767).astype(np.int16)
    session = base_model.stream(vad=False, language="en", step=3.0)
    events = []
    for i in range(0, len(pcm), 4000):
        events += session.feed(pcm[i:i + 4000], sample_rate=8000)
    events += session.flush()
    committed = "".join(e.text for e in events if e.type == "committed")
    assert "what your country can do for you" in " ".join(_words(committed))


def test_cli_stream_from_stdin_pcm(base_model, monkeypatch, capsys, tmp_path):
    """`arecord ... | whisper-genio stream -`: raw s16le on stdin, committed text on stdout, the
    committed segments written at the end."""
    import io
    import types

    from whisper_genio import cli

    pcm = (_clip("en_jfk_inaugural_1961.wav") * 32767).astype(np.int16).tobytes()
    monkeypatch.setattr(cli.sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(pcm)))
    rc = cli.main(["stream", "-", "--language", "en", "--step", "3", "--vad", "off", "-f", "srt", "-o", str(tmp_path)])
    assert rc == 0
    out = " ".join(_words(capsys.readouterr().out))
    assert "what your country can do for you" in out
    srt = (tmp_path / "stream.srt").read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:0") and "country" in srt


def test_cli_stream_without_a_microphone_library(monkeypatch, capsys):
    import builtins

    from whisper_genio import cli
    from whisper_genio.tools import stream

    real_import = builtins.__import__

    def no_sounddevice(name, *args, **kwargs):
        if name == "sounddevice":
            raise ImportError("No module named 'sounddevice'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sounddevice)
    with pytest.raises(whisper_genio.BackendUnavailableError, match="sounddevice"):
        next(stream.microphone_chunks(None, 0.1))
    assert cli.main(["stream", "--step", "0"]) == 2  # options are checked before the model loads
    assert "step" in capsys.readouterr().err
