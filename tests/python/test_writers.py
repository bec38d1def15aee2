"""whisper_genio.writers against openai-whisper's writers (whisper.utils), byte for byte.

JSON is the one intended difference: we write UTF-8 (``ensure_ascii=False``) where openai-whisper
escapes non-ASCII characters, so JSON is compared by content, and by bytes for ASCII-only text.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from whisper_genio.errors import InvalidOptionError
from whisper_genio.transcription.writers import OUTPUT_FORMATS, format_timestamp, get_writer

TEXT_FORMATS = ["txt", "vtt", "srt", "tsv"]


def _openai_utils():
    return pytest.importorskip("whisper.utils", reason="openai-whisper is not installed")


def _words(text: str, start: float, end: float) -> list[dict[str, Any]]:
    parts = text.split(" ")[1:] if text.startswith(" ") else text.split(" ")
    step = (end - start) / max(len(parts), 1)
    return [
        {
            "word": " " + p,
            "start": round(start + i * step, 2),
            "end": round(start + (i + 1) * step - 0.04, 2),
            "probability": 0.9,
        }
        for i, p in enumerate(parts)
    ]


SEGMENT_TEXTS = [
    (0.0, 2.48, " Hello there, this is a test."),
    (2.48, 5.0, " Größe, naïve café — „Zitat“ and 中文字幕 with emoji 🎉."),
    (5.0, 9.3, "  Arrows --> should be escaped\tand tabs replaced.  "),
    (14.0, 18.5, " After a long pause, several more words follow here to wrap the line."),
    (3725.4567, 3727.0, " More than an hour in."),
    (7322.0005, 7330.9995, " Two hours, rounding edges."),
]


def _result(with_words: bool, texts=SEGMENT_TEXTS) -> dict[str, Any]:
    segments = []
    for i, (start, end, text) in enumerate(texts):
        seg: dict[str, Any] = {
            "id": i, "seek": 0, "start": start, "end": end, "text": text,
            "tokens": [1, 2, 3], "temperature": 0.0, "avg_logprob": -0.25,
            "compression_ratio": 1.3, "no_speech_prob": 0.01,
        }  # fmt: skip
        if with_words:
            seg["words"] = _words(text.strip(), start, end)
        segments.append(seg)
    return {"text": "".join(t for _, _, t in texts), "segments": segments, "language": "de"}


RESULTS = {
    "plain": _result(False),
    "words": _result(True),
    "empty": {"text": "", "segments": [], "language": "en"},
    "ascii": _result(False, [(0.0, 1.5, " Plain ASCII only."), (61.25, 3671.1, " Next.")]),
}

OPTION_SETS = [
    {},
    {"highlight_words": True},
    {"max_line_width": 20, "max_line_count": 2},
    {"max_line_width": 30, "max_line_count": 1, "highlight_words": True},
    {"max_line_width": 12},
    {"max_words_per_line": 3},
    {"max_words_per_line": 4, "highlight_words": True},
    {"max_line_width": 25, "max_line_count": 3, "max_words_per_line": 2},
]


def _write_both(tmp_path: Path, fmt: str, result: dict[str, Any], audio: str, **options: Any):
    ours_dir, ref_dir = tmp_path / "ours", tmp_path / "ref"
    ours_dir.mkdir(exist_ok=True)
    ref_dir.mkdir(exist_ok=True)
    original = copy.deepcopy(result)
    get_writer(fmt, ours_dir)(result, audio, **options)
    assert result == original, "writers must not modify the result"
    _openai_utils().get_writer(fmt, str(ref_dir))(result, audio, **options)
    return ours_dir, ref_dir


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("name", list(RESULTS))
def test_text_formats_match_openai(tmp_path: Path, fmt: str, name: str) -> None:
    ours, ref = _write_both(tmp_path, fmt, RESULTS[name], "/some/dir/my.clip.flac")
    expected = ref / f"my.clip.{fmt}"
    assert (ours / f"my.clip.{fmt}").read_bytes() == expected.read_bytes()


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "none")
@pytest.mark.parametrize("name", ["words", "plain"])
def test_subtitle_options_match_openai(tmp_path: Path, fmt: str, options: dict, name: str) -> None:
    ours, ref = _write_both(tmp_path, fmt, RESULTS[name], "clip.wav", **options)
    assert (ours / f"clip.{fmt}").read_text(encoding="utf-8") == (ref / f"clip.{fmt}").read_text(
        encoding="utf-8"
    )


def test_options_dict_like_openai(tmp_path: Path) -> None:
    # openai-whisper's CLI passes a dict positionally; keyword arguments take precedence.
    options = {"max_line_width": 20, "max_line_count": 2, "highlight_words": True}
    for fmt in ("srt", "vtt"):
        ours_dir, ref_dir = tmp_path / f"o{fmt}", tmp_path / f"r{fmt}"
        ours_dir.mkdir()
        ref_dir.mkdir()
        get_writer(fmt, ours_dir)(RESULTS["words"], "a.wav", options, max_line_count=1)
        _openai_utils().get_writer(fmt, str(ref_dir))(RESULTS["words"], "a.wav", options, max_line_count=1)
        assert (ours_dir / f"a.{fmt}").read_bytes() == (ref_dir / f"a.{fmt}").read_bytes()


@pytest.mark.parametrize("name", list(RESULTS))
def test_json_matches_openai_content(tmp_path: Path, name: str) -> None:
    ours, ref = _write_both(tmp_path, "json", RESULTS[name], "x.mp3")
    ours_bytes = (ours / "x.json").read_bytes()
    ref_bytes = (ref / "x.json").read_bytes()
    assert json.loads(ours_bytes) == json.loads(ref_bytes) == RESULTS[name]
    assert ours_bytes.decode("utf-8") == json.dumps(RESULTS[name], ensure_ascii=False)
    if name in ("ascii", "empty"):
        assert ours_bytes == ref_bytes
    if name == "plain":
        assert "Größe" in ours_bytes.decode("utf-8")  # real UTF-8, not \\u escapes


def test_all_writes_every_format(tmp_path: Path) -> None:
    ours, ref = _write_both(tmp_path, "all", RESULTS["words"], "talk.m4a", max_line_width=30, max_line_count=2)
    assert sorted(p.name for p in ours.iterdir()) == sorted(f"talk.{ext}" for ext in ("txt", "vtt", "srt", "tsv", "json"))
    for ext in TEXT_FORMATS:
        assert (ours / f"talk.{ext}").read_bytes() == (ref / f"talk.{ext}").read_bytes(), ext
    assert json.loads((ours / "talk.json").read_bytes()) == RESULTS["words"]


def test_segments_without_words_after_first(tmp_path: Path) -> None:
    # openai would raise KeyError here; we treat a missing "words" as no words.
    result = _result(True)
    del result["segments"][2]["words"]
    get_writer("srt", tmp_path)(result, "c.wav", max_line_width=20, max_line_count=2)
    assert (tmp_path / "c.srt").read_text(encoding="utf-8").startswith("1\n00:00:00,000 --> ")


def test_format_timestamp_matches_openai() -> None:
    ref = _openai_utils().format_timestamp
    values = [0, 0.0004, 0.0005, 0.0015, 0.001, 0.999, 0.9995, 1.5, 59.9999, 60, 61.25, 3599.9996,
              3600, 3725.4567, 7322.0005, 36000.5, 360000.123, 2.675, 1e-9]  # fmt: skip
    for v in values:
        for hours in (False, True):
            for marker in (".", ","):
                assert format_timestamp(v, hours, marker) == ref(v, hours, marker), (v, hours, marker)
    assert format_timestamp(3725.4567) == "01:02:05.457"
    assert format_timestamp(1.5, always_include_hours=True, decimal_marker=",") == "00:00:01,500"
    with pytest.raises(ValueError):
        format_timestamp(-0.5)


def test_unknown_format(tmp_path: Path) -> None:
    assert set(OUTPUT_FORMATS) == {"txt", "vtt", "srt", "tsv", "json", "all"}
    with pytest.raises(InvalidOptionError, match="docx"):
        get_writer("docx", tmp_path)


def test_output_name_replaces_the_audio_name(tmp_path: Path) -> None:
    get_writer("all", tmp_path)(RESULTS["ascii"], "/in/a/clip.wav", output_name="clip-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"clip-2.{ext}" for ext in TEXT_FORMATS + ["json"])
    ref = tmp_path / "ref"
    ref.mkdir()
    _openai_utils().get_writer("srt", str(ref))(RESULTS["ascii"], "clip-2.wav")
    assert (tmp_path / "clip-2.srt").read_bytes() == (ref / "clip-2.srt").read_bytes()


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    writer = get_writer("srt", tmp_path)
    writer(RESULTS["ascii"], "talk.wav")
    before = (tmp_path / "talk.srt").read_bytes()
    broken = {"segments": [{"start": 0.0, "end": 1.0, "text": " fine"}, {"start": 1.0}]}  # no "end"/"text"
    with pytest.raises(KeyError):
        writer(broken, "talk.wav")
    assert (tmp_path / "talk.srt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.srt"]  # no temporary file left behind


def test_an_output_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    (tmp_path / "talk.txt").mkdir()
    with pytest.raises(OSError, match=r"can't write .*talk\.txt"):
        get_writer("txt", tmp_path)(RESULTS["ascii"], "talk.wav")
    assert [p.name for p in tmp_path.iterdir()] == ["talk.txt"]
