"""Transcript writers: txt, vtt, srt, tsv and json files in openai-whisper's formats.

A result is ``{"text": str, "segments": [{"id", "start", "end", "text", ["words"]...}],
"language": str}``; word entries are ``{"word", "start", "end", ...}``. Subtitle line splitting
(``max_line_width``, ``max_line_count``, ``max_words_per_line``) and ``highlight_words`` apply
only when the segments carry ``words``; otherwise each segment is one cue.

One deliberate difference from openai-whisper: JSON is written with ``ensure_ascii=False`` (UTF-8
text instead of ``\\uXXXX`` escapes); the parsed content is the same.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Iterator, Optional, TextIO

from ..errors import InvalidOptionError

Result = dict[str, Any]
Writer = Callable[..., None]


def format_timestamp(
    seconds: float, always_include_hours: bool = False, decimal_marker: str = "."
) -> str:
    """``[HH:]MM:SS.mmm``; hours appear when non-zero or when ``always_include_hours``."""
    if seconds < 0:
        raise InvalidOptionError(f"non-negative timestamp expected, got {seconds}")
    total_ms = round(seconds * 1000.0)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1_000)
    prefix = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{prefix}{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


def segment_line(segment: dict[str, Any], strip: bool = True) -> str:
    """``[MM:SS.mmm --> MM:SS.mmm] text``: how a segment is printed (the CLI strips the text;
    ``verbose=True`` prints it as openai-whisper does, unstripped)."""
    text = segment["text"].strip() if strip else segment["text"]
    return f"[{format_timestamp(segment['start'])} --> {format_timestamp(segment['end'])}] {text}"


def _words(segment: dict[str, Any]) -> list[dict[str, Any]]:
    return segment.get("words") or []


class ResultWriter:
    """Writes ``<output_dir>/<audio basename without extension>.<extension>`` (or
    ``<output_dir>/<output_name>.<extension>``), whole or not at all: the text goes to a temporary
    file in the same folder that then replaces the output, so an interrupted run never leaves a
    half-written transcript."""

    extension: str = ""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.output_dir = os.fspath(output_dir)

    def output_path(self, audio_path: str | os.PathLike[str], output_name: Optional[str] = None) -> str:
        stem = output_name if output_name is not None else os.path.splitext(os.path.basename(os.fspath(audio_path)))[0]
        return os.path.join(self.output_dir, f"{stem}.{self.extension}")

    def __call__(
        self,
        result: Result,
        audio_path: str | os.PathLike[str],
        options: Optional[dict[str, Any]] = None,
        *,
        output_name: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        path = self.output_path(audio_path, output_name)
        partial = f"{path}.partial"
        try:
            # Same open() defaults as openai-whisper so the bytes match on every platform.
            with open(partial, "w", encoding="utf-8") as f:
                self.write_result(result, f, options, **kwargs)
            os.replace(partial, path)
        except BaseException as e:
            if os.path.lexists(partial) and not os.path.isdir(partial):
                os.remove(partial)
            if isinstance(e, OSError) and e.strerror:  # name the output, not its temporary name
                raise type(e)(e.errno, f"can't write {path}: {e.strerror}") from e
            raise

    def write_result(
        self, result: Result, file: TextIO, options: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> None:
        raise NotImplementedError


class WriteTXT(ResultWriter):
    extension = "txt"

    def write_result(
        self, result: Result, file: TextIO, options: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> None:
        for segment in result["segments"]:
            file.write(segment["text"].strip() + "\n")


class SubtitlesWriter(ResultWriter):
    always_include_hours: bool = False
    decimal_marker: str = "."

    def format_timestamp(self, seconds: float) -> str:
        return format_timestamp(seconds, self.always_include_hours, self.decimal_marker)

    def iterate_result(
        self,
        result: Result,
        options: Optional[dict[str, Any]] = None,
        *,
        max_line_width: Optional[int] = None,
        max_line_count: Optional[int] = None,
        highlight_words: bool = False,
        max_words_per_line: Optional[int] = None,
    ) -> Iterator[tuple[str, str, str]]:
        """Yield ``(start, end, text)`` cues."""
        options = options or {}
        # Keyword arguments win over the options dict, falsy values fall through (as openai).
        max_line_width = max_line_width or options.get("max_line_width")
        max_line_count = max_line_count or options.get("max_line_count")
        highlight_words = highlight_words or options.get("highlight_words", False)
        max_words_per_line = max_words_per_line or options.get("max_words_per_line")

        segments = result["segments"]
        if not segments or "words" not in segments[0]:
            for segment in segments:
                text = segment["text"].strip().replace("-->", "->")
                yield self.format_timestamp(segment["start"]), self.format_timestamp(segment["end"]), text
            return

        for cue in _group_words(segments, max_line_width, max_line_count, max_words_per_line):
            cue_start = self.format_timestamp(cue[0]["start"])
            cue_end = self.format_timestamp(cue[-1]["end"])
            cue_text = "".join(w["word"] for w in cue)
            if not highlight_words:
                yield cue_start, cue_end, cue_text
                continue
            # One cue per word with that word underlined, plus the plain text over any gap.
            words = [w["word"] for w in cue]
            previous_end = cue_start
            for i, timing in enumerate(cue):
                start = self.format_timestamp(timing["start"])
                end = self.format_timestamp(timing["end"])
                if previous_end != start:
                    yield previous_end, start, cue_text
                marked = words[:i] + [_underline(words[i])] + words[i + 1 :]
                yield start, end, "".join(marked)
                previous_end = end


_UNDERLINE = re.compile(r"^(\s*)(.*)$")


def _underline(word: str) -> str:
    # Keep leading whitespace/newline outside the <u> tag.
    return _UNDERLINE.sub(r"\1<u>\2</u>", word)


def _group_words(
    segments: list[dict[str, Any]],
    max_line_width: Optional[int],
    max_line_count: Optional[int],
    max_words_per_line: Optional[int],
) -> Iterator[list[dict[str, Any]]]:
    """Group word timings into cues, inserting "\\n" line breaks, with openai-whisper's rules.

    Without both a width and a line count, every segment (or every ``max_words_per_line`` words
    of it) is its own cue. Otherwise words flow across segments: a line breaks when the next word
    would exceed ``max_line_width`` characters, and a cue ends after ``max_line_count`` lines or
    at a pause of more than 3 s.
    """
    keep_segments = max_line_count is None or max_line_width is None
    width = max_line_width or 1000
    per_chunk = max_words_per_line or 1000

    cue: list[dict[str, Any]] = []
    line_len = 0
    line_count = 1
    first_start = next((w["start"] for s in segments for w in _words(s)), segments[0]["start"])
    last_start: float = first_start or 0.0

    for segment in segments:
        words = _words(segment)
        for chunk_at in range(0, len(words), per_chunk):
            for i, original in enumerate(words[chunk_at : chunk_at + per_chunk]):
                timing = dict(original)
                long_pause = not keep_segments and timing["start"] - last_start > 3.0
                fits = line_len + len(timing["word"]) <= width
                chunk_break = i == 0 and bool(cue) and keep_segments
                if line_len > 0 and fits and not long_pause and not chunk_break:
                    line_len += len(timing["word"])  # same line
                else:
                    timing["word"] = timing["word"].strip()
                    new_cue = (
                        bool(cue)
                        and max_line_count is not None
                        and (long_pause or line_count >= max_line_count)
                    ) or chunk_break
                    if new_cue:
                        yield cue
                        cue = []
                        line_count = 1
                    elif line_len > 0:
                        line_count += 1
                        timing["word"] = "\n" + timing["word"]
                    line_len = len(timing["word"].strip())
                cue.append(timing)
                last_start = timing["start"]
    if cue:
        yield cue


class WriteVTT(SubtitlesWriter):
    extension = "vtt"
    always_include_hours = False
    decimal_marker = "."

    def write_result(
        self, result: Result, file: TextIO, options: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> None:
        file.write("WEBVTT\n\n")
        for start, end, text in self.iterate_result(result, options, **kwargs):
            file.write(f"{start} --> {end}\n{text}\n\n")


class WriteSRT(SubtitlesWriter):
    extension = "srt"
    always_include_hours = True
    decimal_marker = ","

    def write_result(
        self, result: Result, file: TextIO, options: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> None:
        for number, (start, end, text) in enumerate(self.iterate_result(result, options, **kwargs), 1):
            file.write(f"{number}\n{start} --> {end}\n{text}\n\n")


class WriteTSV(ResultWriter):
    """``start<TAB>end<TAB>text`` with integer milliseconds, which no locale can mangle."""

    extension = "tsv"

    def write_result(
        self, result: Result, file: TextIO, options: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> None:
        file.write("start\tend\ttext\n")
        for segment in result["segments"]:
            text = segment["text"].strip().replace("\t", " ")
            file.write(f"{round(1000 * segment['start'])}\t{round(1000 * segment['end'])}\t{text}\n")


class WriteJSON(ResultWriter):
    extension = "json"

    def write_result(
        self, result: Result, file: TextIO, options: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> None:
        json.dump(result, file, ensure_ascii=False)


WRITERS: dict[str, type[ResultWriter]] = {
    "txt": WriteTXT,
    "vtt": WriteVTT,
    "srt": WriteSRT,
    "tsv": WriteTSV,
    "json": WriteJSON,
}

OUTPUT_FORMATS: tuple[str, ...] = (*WRITERS, "all")


def get_writer(output_format: str, output_dir: str | os.PathLike[str]) -> Writer:
    """Writer for one format, or for all five with ``"all"``.

    The returned callable is ``writer(result, audio_path, options=None, *, output_name=None,
    **kwargs)``: ``output_name`` replaces the audio's base name in the file name, and the other
    keyword arguments are ``max_line_width``, ``max_line_count``, ``highlight_words`` and
    ``max_words_per_line`` (used by vtt/srt only).
    """
    if output_format == "all":
        writers = [cls(output_dir) for cls in WRITERS.values()]

        def write_all(
            result: Result,
            audio_path: str | os.PathLike[str],
            options: Optional[dict[str, Any]] = None,
            *,
            output_name: Optional[str] = None,
            **kwargs: Any,
        ) -> None:
            for writer in writers:
                writer(result, audio_path, options, output_name=output_name, **kwargs)

        return write_all
    try:
        return WRITERS[output_format](output_dir)
    except KeyError:
        raise InvalidOptionError(
            f"unknown output format {output_format!r}; expected one of {', '.join(OUTPUT_FORMATS)}"
        ) from None


__all__ = [
    "format_timestamp",
    "get_writer",
    "OUTPUT_FORMATS",
    "ResultWriter",
    "WriteTXT",
    "WriteVTT",
    "WriteSRT",
    "WriteTSV",
    "WriteJSON",
]
