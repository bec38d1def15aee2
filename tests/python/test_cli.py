"""`whisper-genio transcribe` as a drop-in for openai-whisper's `whisper` command: its options in
both spellings, its defaults and output files, batches with bad inputs, one-line option errors.

main() runs in-process. Tests that only check what reaches the model use a stand-in model that
records the call; the ones that transcribe use the session's base model (conftest.py) on short
clips from ../shared/data/speech.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

import whisper_genio
from whisper_genio import cli
from whisper_genio.cli import main, output_stems
from whisper_genio.transcription.writers import OUTPUT_FORMATS, get_writer

from testdata import SPEECH

SHORT_CLIPS = ["en_cathy_arctic_a0038.wav", "en_cathy_arctic_a0112.wav"]  # about 2 s each
FORMATS = ("txt", "vtt", "srt", "tsv", "json")


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors and --help
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def _transcribe_parser() -> argparse.ArgumentParser:
    parser = cli._build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["transcribe"]


def _openai_parser() -> argparse.ArgumentParser:
    """openai-whisper's own `whisper` parser, as its cli() builds it."""
    transcribe = pytest.importorskip("whisper.transcribe", reason="openai-whisper is not installed")

    class Built(Exception):
        pass

    def capture(self, *args, **kwargs):
        raise Built(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture
    try:
        transcribe.cli()
    except Built as built:
        return built.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError("openai-whisper's cli() did not build a parser")


class FakeModel:
    """Records transcribe() calls; returns a one-segment result with word timings."""

    class pipeline:
        window_count = -1

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict]] = []

    def transcribe(self, audio, **options):
        self.calls.append((audio, options))
        words = [{"word": " Hello", "start": 0.0, "end": 0.5, "probability": 0.9},
                 {"word": " there.", "start": 0.6, "end": 1.0, "probability": 0.8}]
        return {"text": " Hello there.", "language": "en",
                "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 1.0, "text": " Hello there.", "words": words}]}


@pytest.fixture
def fake_model(monkeypatch):
    model = FakeModel()
    loads: list[tuple[Any, dict]] = []

    def load_model(name, **kwargs):
        loads.append((name, kwargs))
        return model

    monkeypatch.setattr(whisper_genio, "load_model", load_model)
    model.loads = loads
    return model


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    paths = [SPEECH / name for name in SHORT_CLIPS]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"speech clips {SHORT_CLIPS} not in {SPEECH}")
    return paths


@pytest.fixture
def base_cli(monkeypatch, base_model):
    """main() gets the session's base model instead of loading its own."""
    loads = []

    def load_model(name, **kwargs):
        loads.append(name)
        assert name == "base"
        return base_model

    monkeypatch.setattr(whisper_genio, "load_model", load_model)
    return loads


# --- openai-whisper's options -------------------------------------------------------------------


def test_every_openai_option_is_accepted_with_its_default():
    ours = _transcribe_parser()
    theirs = _openai_parser()
    ours_by_string = ours._option_string_actions
    # Defaults that differ on purpose: the model we ship, the CPU we run on, what threads=0 means.
    different = {"model": ("turbo", "base"), "device": (None, "cpu"), "fp16": (True, None), "threads": (0, None)}
    checked = 0
    for action in theirs._actions:
        for option in action.option_strings:
            assert option in ours_by_string, f"openai-whisper's {option} is not accepted"
            mine = ours_by_string[option]
            assert mine.dest == action.dest, option
            hyphenated = "--" + option[2:].replace("_", "-") if option.startswith("--") else option
            assert hyphenated in ours_by_string and ours_by_string[hyphenated] is mine, option
        if action.dest in ("help", "audio"):
            continue
        mine = ours_by_string[action.option_strings[0]]
        if action.dest in different:
            assert mine.default == different[action.dest][1], action.dest
        else:
            assert mine.default == action.default, action.dest
            if action.choices is not None and action.dest != "language":  # our --language takes any alias
                assert list(mine.choices) == list(action.choices), action.dest
        checked += 1
    assert checked >= 30  # openai-whisper 20250625 has 32


def test_both_spellings_parse_the_same():
    parser = _transcribe_parser()
    openai_style = ["a.wav", "--output_format", "srt", "--word_timestamps", "True", "--max_line_width", "30",
                    "--beam_size", "None", "--temperature_increment_on_fallback", "0.3", "--model_dir", "/m",
                    "--vad_filter", "True", "--no_repeat_ngram_size", "3"]
    ours = [a.replace("_", "-") if a.startswith("--") else a for a in openai_style]
    assert vars(parser.parse_args(openai_style)) == vars(parser.parse_args(ours))
    assert vars(parser.parse_args(["a.wav", "--beam", "3"]))["beam_size"] == 3  # abbreviations still work


def test_help_shows_each_choice_and_default_once(capsys):
    rc, out, _ = _run(["transcribe", "--help"], capsys)
    assert rc == 0
    assert "{txt,vtt,srt,tsv,json,all}" in out and "all,all" not in out
    text = " ".join(out.split())
    assert not re.search(r"\(default: [^)]*\)\s*\(default:", text), text
    assert "(default: base)" in text and text.count("(default: base)") == 1
    assert "current directory" in text and "--output_format" in text and "--word_timestamps" in text


def test_every_flag_reaches_transcribe_and_the_writers(fake_model, tmp_path, capsys, monkeypatch):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    monkeypatch.setattr("whisper_genio.audio.load_audio", lambda path: f"samples of {path}")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "large-v3-turbo.pt").write_bytes(b"")  # openai-whisper's file name for turbo
    argv = ["transcribe", str(audio), "-o", str(tmp_path / "out"), "-f", "srt", "--model", "turbo",
            "--model_dir", str(tmp_path / "models"), "--device", "cuda", "--fp16", "True", "--threads", "0",
            "--verbose", "False", "--task", "translate", "--language", "German", "--temperature", "0.2",
            "--best_of", "3", "--beam_size", "4", "--patience", "2", "--length_penalty", "0.5",
            "--suppress_tokens=-1,50", "--initial_prompt", "Hi.", "--carry_initial_prompt", "True",
            "--condition_on_previous_text", "False", "--temperature_increment_on_fallback", "0.4",
            "--compression_ratio_threshold", "2.0", "--logprob_threshold", "None", "--no_speech_threshold", "0.5",
            "--word_timestamps", "True", "--prepend_punctuations", "'", "--append_punctuations", ".",
            "--highlight_words", "True", "--max_line_width", "8", "--max_line_count", "1",
            "--clip_timestamps", "1,3", "--hallucination_silence_threshold", "2",
            "--vad-filter", "False", "--vad-parameters", "threshold=0.6,min_silence_duration_ms=500",
            "--repetition-cutoff", "4", "--no-repeat-ngram-size", "3", "--repetition-penalty", "1.1",
            "--trim-window", "1.5"]
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    assert "--device cuda does not apply" in err and "--fp16 does not apply" in err
    [(name, load)] = fake_model.loads
    assert name == str(tmp_path / "models" / "large-v3-turbo.pt") and load["threads"] is None
    [(audio_in, options)] = fake_model.calls
    assert audio_in == f"samples of {audio}"
    assert options == dict(
        verbose=False, language="German", task="translate", temperature=(0.2, 0.6, 1.0), best_of=3, beam_size=4,
        patience=2.0, length_penalty=0.5, suppress_tokens="-1,50", initial_prompt="Hi.", carry_initial_prompt=True,
        condition_on_previous_text=False, compression_ratio_threshold=2.0, logprob_threshold=None,
        no_speech_threshold=0.5, clip_timestamps="1,3", word_timestamps=True, prepend_punctuations="'",
        append_punctuations=".", hallucination_silence_threshold=2.0, vad_filter=False,
        vad_parameters={"threshold": 0.6, "min_silence_duration_ms": 500}, repetition_cutoff=4,
        no_repeat_ngram_size=3, repetition_penalty=1.1, trim_window=1.5)
    # One word a cue (8 characters a line, one line), each underlined as it is spoken.
    assert (tmp_path / "out" / "a.srt").read_text(encoding="utf-8") == (
        "1\n00:00:00,000 --> 00:00:00,500\n<u>Hello</u>\n\n2\n00:00:00,600 --> 00:00:01,000\n<u>there.</u>\n\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.srt"]


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,fragment", [
    (["--clip-timestamps", "nan"], "clip_timestamps"),
    (["--clip_timestamps", "1,x"], "clip_timestamps"),
    (["--suppress-tokens", "abc"], "suppress_tokens"),
    (["--beam_size", "x"], "--beam_size"),
    (["--best_of", "0"], "best_of"),
    (["--temperature", "nan"], "temperature"),
    (["--temperature", "hot"], "--temperature"),
    (["--temperature_increment_on_fallback", "0"], "--temperature_increment_on_fallback"),
    (["--patience", "inf"], "patience"),
    (["--compression_ratio_threshold", "nan"], "compression_ratio_threshold"),
    (["--word_timestamps", "maybe"], "--word_timestamps"),
    (["--highlight_words", "True"], "--highlight_words requires --word_timestamps True"),
    (["--max_line_width", "20"], "--max_line_width requires --word_timestamps True"),
    (["--word_timestamps", "True", "--max_line_width", "0"], "--max_line_width"),
    (["--output_format", "docx"], "--output_format"),
    (["--task", "summarise"], "--task"),
    (["--language", "klingon"], "--language"),
    (["--vad-parameters", "threshold=2"], "vad_parameters threshold"),
    (["--vad-parameters", "speed=1"], "vad_parameters"),
    (["--vad-parameters", "threshold"], "--vad-parameters"),
    (["--vad_filter", "True", "--clip_timestamps", "1,2"], "clip_timestamps"),
    (["--model_dir", "/nonexistent/models"], "--model_dir"),
    (["--hallucination_silence_threshold", "-1", "--word_timestamps", "True"], "hallucination_silence_threshold"),
    (["--no-repeat-ngram-size", "-1"], "no_repeat_ngram_size"),
])
def test_option_errors_are_one_line_naming_the_option(argv, fragment, tmp_path, capsys, fake_model):
    rc, out, err = _run(["transcribe", str(tmp_path / "never-read.wav"), "-o", str(tmp_path)] + argv, capsys)
    assert rc == 2, err
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not fake_model.calls and not fake_model.loads  # checked before any audio or model


def test_output_dir_naming_a_file(tmp_path, capsys, fake_model):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    rc, _, err = _run(["transcribe", str(tmp_path / "a.wav"), "--output-dir", str(existing)], capsys)
    assert rc == 2 and "--output_dir" in err and "not a directory" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and existing.read_text() == "keep me"
    with pytest.raises(whisper_genio.InvalidOptionError, match="not a directory"):  # --debug: the exception
        main(["--debug", "transcribe", str(tmp_path / "a.wav"), "--output-dir", str(existing)])


def test_output_stems_never_collide():
    assert output_stems(["a/clip.wav", "b/clip.mp3", "clip-2.wav", "C/Clip.wav", "my.talk.flac"]) == [
        "clip", "clip-3", "clip-2", "Clip-4", "my.talk"]
    assert output_stems(["x.wav", "x.wav"]) == ["x", "x-2"]


def test_an_output_that_cannot_be_written_skips_that_input(fake_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("whisper_genio.audio.load_audio", lambda path: path)
    out_dir = tmp_path / "out"
    (out_dir / "one.txt").mkdir(parents=True)  # in the way of one.wav's transcript
    rc, _, err = _run(["transcribe", "one.wav", "two.wav", "-o", str(out_dir), "-f", "txt", "--quiet"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert f"one.wav: can't write {out_dir / 'one.txt'}" in err and "1 of 2 input(s) failed" in err
    assert (out_dir / "two.txt").read_text(encoding="utf-8") == "Hello there.\n"
    assert len(fake_model.calls) == 2


def test_ctrl_c_keeps_the_finished_outputs(fake_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("whisper_genio.audio.load_audio", lambda path: path)
    transcribe = fake_model.transcribe

    def interrupted_on_the_second(audio, **options):
        if fake_model.calls:
            raise KeyboardInterrupt
        return transcribe(audio, **options)

    monkeypatch.setattr(fake_model, "transcribe", interrupted_on_the_second)
    rc, _, err = _run(["transcribe", "one.wav", "two.wav", "-o", str(tmp_path), "--quiet"], capsys)
    assert rc == 130 and "Traceback" not in err and err.strip() == "whisper-genio: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"one.{ext}" for ext in FORMATS)


# --- real transcriptions ------------------------------------------------------------------------


def test_batch_skips_bad_inputs_and_keeps_same_name_outputs(base_cli, clips, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "clip.wav", tmp_path / "b" / "clip.wav"
    shutil.copy(clips[0], first)
    shutil.copy(clips[1], second)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wave file")
    missing = tmp_path / "missing.wav"
    out_dir = tmp_path / "out"
    rc, out, err = _run(["transcribe", str(missing), str(first), str(corrupt), str(second), "-o", str(out_dir),
                         "-f", "txt", "--beam_size", "None", "--language", "en", "--threads", "2"], capsys)
    assert rc == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("whisper-genio: error:")]
    assert len(errors) == 2 and "missing.wav" in errors[0] and "corrupt.wav" in errors[1], err
    assert errors[0].count("missing.wav") == 1  # the path once
    assert "2 of 4 input(s) failed" in err and "clip-2" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["clip-2.txt", "clip.txt"]
    assert base_cli == ["base"]  # loaded once
    texts = [(out_dir / name).read_text(encoding="utf-8").lower() for name in ("clip.txt", "clip-2.txt")]
    assert texts[0] != texts[1] and all(t.strip() for t in texts)
    # verbose (the default, as openai-whisper's) prints each segment as it is decoded
    assert texts[0].strip() in out.lower() and texts[1].strip() in out.lower()


def test_default_output_is_every_format_in_the_current_directory_as_openai_writes_it(
        base_cli, tmp_path, capsys, monkeypatch):
    utils = pytest.importorskip("whisper.utils", reason="openai-whisper is not installed")
    clip = SPEECH / "en_jfk_inaugural_1961.wav"  # 11 s, two segments: cues flow across them
    if not clip.is_file():
        pytest.skip(f"{clip} is absent")
    monkeypatch.chdir(tmp_path)
    word_options = {"highlight_words": True, "max_line_width": 16, "max_line_count": 2}
    argv = ["transcribe", str(clip), "--beam_size", "None", "--language", "en", "--threads", "2",
            "--word_timestamps", "True"] + [x for k, v in word_options.items() for x in (f"--{k}", str(v))]
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    stem = clip.stem
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{stem}.{ext}" for ext in FORMATS)
    result = json.loads((tmp_path / f"{stem}.json").read_text(encoding="utf-8"))
    assert len(result["segments"]) >= 2 and all(s["words"] for s in result["segments"])
    # openai-whisper's writers on the very result we wrote: the same bytes.
    reference = tmp_path / "openai"
    reference.mkdir()
    utils.get_writer("all", str(reference))(result, str(clip), **word_options)
    for ext in ("txt", "vtt", "srt", "tsv"):
        assert (tmp_path / f"{stem}.{ext}").read_bytes() == (reference / f"{stem}.{ext}").read_bytes(), ext
    assert "<u>" in (tmp_path / f"{stem}.srt").read_text(encoding="utf-8")
    # The other subtitle options on the same real word timings.
    for i, options in enumerate([{}, {"max_words_per_line": 2}, {"max_line_width": 10},
                                 {"max_line_width": 12, "max_line_count": 1, "highlight_words": True},
                                 {"max_words_per_line": 3, "highlight_words": True}]):
        ours_dir, ref_dir = tmp_path / f"ours{i}", tmp_path / f"ref{i}"
        ours_dir.mkdir()
        ref_dir.mkdir()
        for fmt in ("srt", "vtt"):
            get_writer(fmt, ours_dir)(result, str(clip), **options)
            utils.get_writer(fmt, str(ref_dir))(result, str(clip), **options)
            assert (ours_dir / f"{stem}.{fmt}").read_bytes() == (ref_dir / f"{stem}.{fmt}").read_bytes(), (fmt, options)
    assert set(OUTPUT_FORMATS) - {"all"} == set(FORMATS)
