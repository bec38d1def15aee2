"""Long-form transcription: openai-whisper's transcribe() algorithm, one loop for every backend.

The audio is cut into 30-second windows by a seek pointer that advances to the last
complete timestamp the decoder produced; each window is encoded once (through the model's
:class:`~whisper_genio.transcription.pipeline.Pipeline`) and decoded with the temperature
fallback; segments carry openai-whisper's fields. A window is encoded once however many
temperatures it needs.

Backends whose windows cannot start anywhere (replay: one device output file per 30 s window,
``Pipeline.window_stride``) get the same loop with the seek pointer held to their window
starts: each window is decoded whole, the text after its last complete timestamp pair is kept
as a segment ending at the window's end, and with ``clip_timestamps`` the segments that overlap
a clip are kept.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional

import numpy as np

from ..audio import HOP_LENGTH, N_FRAMES, SAMPLE_RATE, load_audio
from ..errors import InvalidOptionError, TranscriptionInterrupted
from ..tokenizer import LANGUAGES, Tokenizer
from ..vad import SpeechMap, get_speech_timestamps
from .decoding import DecodingResult
from .options import DecodingOptions, TranscribeOptions
from .pipeline import STAGES, Pipeline, Recording
from .timing import add_word_timestamps, first_with_words, is_anomalous, last_word_end
from .writers import segment_line

ProgressCallback = Callable[[int, int], None]  # (frames done, total frames)
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # mel frames: 100


def needs_fallback(result: DecodingResult, opts: TranscribeOptions) -> bool:
    """openai-whisper's retry rule: too repetitive or too improbable, unless it is silence; and a
    window the loop cut-off stopped (repetition_cutoff) is retried like a too repetitive one."""
    failed = result.looped
    if opts.compression_ratio_threshold is not None and result.compression_ratio > opts.compression_ratio_threshold:
        failed = True  # too repetitive
    if opts.logprob_threshold is not None and result.avg_logprob < opts.logprob_threshold:
        failed = True  # average log probability too low
    if (
        opts.no_speech_threshold is not None
        and result.no_speech_prob > opts.no_speech_threshold
        and opts.logprob_threshold is not None
        and result.avg_logprob < opts.logprob_threshold
    ):
        failed = False  # silence: accept
    return failed


def is_silence(result: DecodingResult, opts: TranscribeOptions) -> bool:
    """A window to skip: probably no speech, and not confidently decoded text."""
    if opts.no_speech_threshold is None:
        return False
    skip = result.no_speech_prob > opts.no_speech_threshold
    if opts.logprob_threshold is not None and result.avg_logprob > opts.logprob_threshold:
        skip = False  # confident text despite the no-speech probability
    return skip


def decode_with_fallback(pipeline: Pipeline, decode_opts: DecodingOptions, opts: TranscribeOptions,
                         tokenizer: Tokenizer, seek: int, timings: dict) -> DecodingResult:
    """Decodes the window in the decoder at each temperature until the result passes
    (openai-whisper's decode_with_fallback; the window is encoded once for all of them)."""
    result = None
    decoder = pipeline.decoder
    for t in opts.temperatures:
        if t > 0:
            # sampling: no beams; best_of candidates; a seed per window and temperature
            options = decode_opts.replace(temperature=t, beam_size=None, patience=None, best_of=opts.best_of,
                                          seed=decode_opts.seed + seek * 31 + int(t * 1000))
        else:
            options = decode_opts.replace(temperature=t, best_of=None)
        start, cpu, steps = time.perf_counter(), time.process_time(), decoder.forward_calls
        result = pipeline.decode(options, tokenizer)
        timings["decoder"] += time.perf_counter() - start
        timings["decoder_cpu"] += time.process_time() - cpu
        timings["decoder_steps"] += decoder.forward_calls - steps
        timings["tokens"] += len(result.tokens) + 1
        timings["decode_calls"] += 1
        if not needs_fallback(result, opts):
            break
    assert result is not None
    return result


def split_segments(tokens: list[int], timestamp_begin: int, segment_frames: int, input_stride: int = 2,
                   keep_tail: bool = False) -> tuple[list[tuple[int, int, list[int]]], int]:
    """Cuts one window's tokens at timestamp pairs.

    Returns the segments as (start position, end position or -1 for the window's end, tokens)
    in audio positions relative to the window, and how many mel frames to advance the seek
    pointer. keep_tail: the tokens after the last complete pair become a segment ending at the
    window's end, and the pointer moves past the whole window (windows that cannot be re-cut).
    """
    is_ts = [t >= timestamp_begin for t in tokens]
    single_timestamp_ending = is_ts[-2:] == [False, True]
    consecutive = [i + 1 for i in range(len(tokens) - 1) if is_ts[i] and is_ts[i + 1]]
    segments: list[tuple[int, int, list[int]]] = []
    if consecutive:
        slices = consecutive + ([len(tokens)] if single_timestamp_ending else [])
        last = 0
        for cut in slices:
            part = tokens[last:cut]
            segments.append((part[0] - timestamp_begin, part[-1] - timestamp_begin, part))
            last = cut
        if keep_tail and last < len(tokens):
            tail = tokens[last:]
            start = tail[0] - timestamp_begin if is_ts[last] else segments[-1][1]
            segments.append((start, -1, tail))
        if single_timestamp_ending or keep_tail:
            return segments, segment_frames  # no speech after the last timestamp (or a fixed window)
        # the unfinished segment is dropped: resume at the last complete timestamp
        return segments, (tokens[last - 1] - timestamp_begin) * input_stride
    # No pair: one segment for the whole window, ending at its last timestamp if it has one.
    end_pos = None
    timestamps = [t for t in tokens if t >= timestamp_begin]
    if timestamps and timestamps[-1] != timestamp_begin:
        end_pos = timestamps[-1] - timestamp_begin
    segments.append((0, end_pos if end_pos is not None else -1, tokens))
    return segments, segment_frames


def new_timings(audio_seconds: float) -> dict[str, Any]:
    """Per stage: wall seconds, and CPU seconds of the whole process ("*_cpu"), for `bench`."""
    t: dict[str, Any] = {"audio_seconds": audio_seconds, "windows": 0, "decode_calls": 0, "decoder_steps": 0,
                         "tokens": 0}
    for stage in STAGES + ("decoder",):
        t[stage] = t[stage + "_cpu"] = 0.0
    return t


def transcribe(pipeline: Pipeline, tokenizer: Tokenizer, opts: TranscribeOptions, audio: Any = None, *,
               progress: Optional[ProgressCallback] = None) -> tuple[dict, dict]:
    """Transcribes audio of any length; the result is openai-whisper's transcribe():
    {"text", "segments": [{id, seek, start, end, text, tokens, temperature, avg_logprob,
    compression_ratio, no_speech_prob}], "language"}; also returns the stage timings.

    `audio` may be None only for backends that read no mel (replay): their windows say how long
    the recording is. `progress(done_frames, total_frames)` is called after every window."""
    samples = None if audio is None else load_audio(audio)
    speech = None
    if opts.vad_filter:
        samples, speech, vad_seconds = _speech_only(pipeline, samples, opts)
    with pipeline.lock:
        t0, c0 = time.perf_counter(), time.process_time()
        recording = pipeline.recording(samples)
        timings = new_timings(recording.seconds)
        timings["mel"] += time.perf_counter() - t0
        timings["mel_cpu"] += time.process_time() - c0
        _check_window_count(pipeline, recording, samples is not None)
        loop = _SeekLoop(pipeline, tokenizer, opts, recording, timings, progress)
        try:
            result = loop.run()
        except KeyboardInterrupt:  # the windows that finished are kept (the CLI writes them)
            partial = loop.result()
            if speech is not None:
                speech.restore(partial["segments"])
            raise TranscriptionInterrupted(partial) from None
    if speech is not None:
        speech.restore(result["segments"])
        timings["vad"] = vad_seconds
        timings["audio_seconds"] = speech.recording_seconds
        timings["speech_seconds"] = recording.seconds
    return result, timings


def _speech_only(pipeline: Pipeline, samples: Any, opts: TranscribeOptions) -> tuple[Any, SpeechMap, float]:
    """The speech chunks of the recording back to back, and the map back to its clock."""
    if samples is None or not pipeline.reads_mel:
        raise InvalidOptionError(f"vad_filter needs the audio and a backend that encodes it; the "
                                 f"{pipeline.encoder.name} backend's windows are fixed")
    t0 = time.perf_counter()
    chunks = get_speech_timestamps(samples, opts.vad_parameters)
    speech = SpeechMap(chunks, len(samples))
    kept = [samples[c["start"]:c["end"]] for c in chunks]
    return (np.concatenate(kept) if kept else np.zeros(0, np.float32)), speech, time.perf_counter() - t0


def _check_window_count(pipeline: Pipeline, recording: Recording, have_audio: bool) -> None:
    held = pipeline.window_count
    if held < 0 or not have_audio:
        return
    needed = max(1, -(-recording.content_frames // N_FRAMES))
    if needed != held:
        raise InvalidOptionError(
            f"the audio is {recording.seconds:.1f} s long: {needed} window(s) of 30 s, but the "
            f"{pipeline.encoder.name} backend holds {held} (one encoder output file per window, in order)")


class _SeekLoop:
    """The seek loop of one transcription; its state is openai-whisper's local variables."""

    def __init__(self, pipeline: Pipeline, tokenizer: Tokenizer, opts: TranscribeOptions, recording: Recording,
                 timings: dict, progress: Optional[ProgressCallback]) -> None:
        self.pipeline = pipeline
        self.opts = opts
        self.recording = recording
        self.timings = timings
        self.progress = progress
        self.stride = pipeline.window_stride  # 0: windows start anywhere
        self.input_stride = N_FRAMES // pipeline.dims.n_audio_ctx  # mel frames per audio position: 2
        self.time_precision = self.input_stride * HOP_LENGTH / SAMPLE_RATE  # seconds per audio position
        self.current: Optional[tuple[int, int]] = None  # the window in the decoder
        decode_opts = opts.decode
        if recording.content_frames == 0 and decode_opts.language is None:
            decode_opts = decode_opts.replace(language="en")  # nothing to detect from
        self.tokenizer, self.decode_opts = self._resolve_language(tokenizer, decode_opts)
        self.language = self.decode_opts.language  # the recording's; multilingual=True may switch per window
        self.all_tokens: list[int] = []
        self.all_segments: list[dict] = []
        self.prompt_reset_since = 0
        self.initial_prompt_tokens: list[int] = []
        if opts.initial_prompt is not None:
            self.initial_prompt_tokens = self.tokenizer.encode(" " + opts.initial_prompt.strip())
            self.all_tokens.extend(self.initial_prompt_tokens)
        self.remaining_prompt_length = pipeline.dims.n_text_ctx // 2 - 1 - len(self.initial_prompt_tokens)
        self.last_speech_timestamp = 0.0

    def _resolve_language(self, tokenizer: Tokenizer, decode_opts: DecodingOptions) -> tuple[Tokenizer, DecodingOptions]:
        """The language to decode in: given, English for English-only models, or detected on the
        first window."""
        language = decode_opts.language
        if language is None:
            if not tokenizer.multilingual:
                language = "en"
            else:
                language = self._detect_language(tokenizer)
                if self.opts.verbose is not None:
                    print(f"Detected language: {LANGUAGES[language].title()}")
        tokenizer = tokenizer.with_options(language=language, task=decode_opts.task)
        return tokenizer, decode_opts.replace(language=tokenizer.language or "en")

    def _detect_language(self, tokenizer: Tokenizer, first: int = 0, size: int = N_FRAMES) -> str:
        """The language of the window (first, size); when it is no surer than
        language_detection_threshold, of up to language_detection_segments windows from there
        (the most probable over them all)."""
        threshold = self.opts.language_detection_threshold
        total: dict[str, float] = {}
        for i in range(self.opts.language_detection_segments):
            seek = first + i * N_FRAMES
            if i > 0 and seek >= self.recording.content_frames:
                break
            self._set_window(seek, size if i == 0 else N_FRAMES)
            probs = self.pipeline.language_probs(tokenizer)
            best = max(probs, key=probs.get)
            if threshold is None or probs[best] > threshold:
                return best
            for code, p in probs.items():
                total[code] = total.get(code, 0.0) + p
        return max(total, key=total.get)

    def _set_window(self, seek: int, size: int) -> None:
        if self.current != (seek, size):  # e.g. language detection already encoded this window
            self.pipeline.set_window(self.recording.windows, seek, size, self.timings, self.opts.trim_min_frames)
            self.current = (seek, size)

    def run(self) -> dict:
        content_frames = self.recording.content_frames
        clips = self.opts.clip_frames(content_frames)
        bar = None
        if self.opts.verbose is False or self.opts.log_progress:
            import tqdm

            bar = tqdm.tqdm(total=content_frames, unit="frames", file=sys.stderr)
        try:
            for clip_start, clip_end in clips:
                seek = clip_start
                while seek < clip_end:
                    previous = seek
                    seek = self._window(seek, clip_start, clip_end)
                    done = min(content_frames, seek)
                    if bar is not None:
                        bar.update(done - min(content_frames, previous))
                    if self.progress is not None:
                        self.progress(done, content_frames)
        finally:
            if bar is not None:
                bar.close()
        return self.result()

    def result(self) -> dict:
        """transcribe()'s result for the windows kept so far."""
        text = self.tokenizer.decode(self.all_tokens[len(self.initial_prompt_tokens):])
        return {"text": text, "segments": list(self.all_segments), "language": self.language}

    def _window(self, seek: int, clip_start: int, clip_end: int) -> int:
        """Decodes the window at `seek`, keeps its segments; returns the next seek."""
        start = seek - seek % self.stride if self.stride else seek
        if self.stride:
            size = min(N_FRAMES, self.recording.content_frames - start)
        else:
            size = min(N_FRAMES, self.recording.content_frames - start, clip_end - start)
        if self.opts.multilingual and self.opts.decode.language is None and self.tokenizer.multilingual:
            self._switch_language(start, size)
        self._set_window(start, size)
        result = decode_with_fallback(self.pipeline, self._decode_options(), self.opts, self.tokenizer, start,
                                      self.timings)
        if is_silence(result, self.opts):
            return start + size  # fast-forward to the next window
        pieces, advance = split_segments(result.tokens, self.tokenizer.timestamp_begin, size, self.input_stride,
                                         keep_tail=bool(self.stride))
        segments = self._segments(pieces, result, start, size)
        if self.stride:
            clip = (clip_start * HOP_LENGTH / SAMPLE_RATE, clip_end * HOP_LENGTH / SAMPLE_RATE)
            segments = [s for s in segments if s["end"] > clip[0] and s["start"] < clip[1]]
        next_seek, keep = start + advance, True
        if self.opts.word_timestamps:
            single_ending = [t >= self.tokenizer.timestamp_begin for t in result.tokens[-2:]] == [False, True]
            next_seek, keep = self._time_words(segments, start, size, next_seek, single_ending)
        if keep:
            self._keep(segments, result)
        return max(next_seek, start + 1)  # always forward, whatever the words say

    def _switch_language(self, start: int, size: int) -> None:
        """multilingual=True: each window is decoded in the language detected on it."""
        language = self._detect_language(self.tokenizer, start, size)
        if language != self.tokenizer.language:
            self.tokenizer = self.tokenizer.with_options(language=language)
            self.decode_opts = self.decode_opts.replace(language=language)

    def _time_words(self, segments: list[dict], start: int, size: int, next_seek: int,
                    single_ending: bool) -> tuple[int, bool]:
        """Adds each segment's words; returns the next seek as the words place it, and whether to keep
        the window's segments. Fixed windows keep their next window."""
        add_word_timestamps(segments, self.pipeline.decoder, self.tokenizer, self.pipeline.alignment_heads, size,
                            prepend_punctuations=self.opts.prepend_punctuations,
                            append_punctuations=self.opts.append_punctuations,
                            last_speech_timestamp=self.last_speech_timestamp)
        time_offset = start * HOP_LENGTH / SAMPLE_RATE
        end = last_word_end(segments)
        if not self.stride and not single_ending and end is not None and end > time_offset:
            next_seek = round(end * FRAMES_PER_SECOND)  # resume after the last word, not the last timestamp
        if self.opts.hallucination_silence_threshold is not None and not self.stride:
            next_seek, keep = self._skip_hallucinations(segments, start, size, next_seek, single_ending)
            if not keep:
                return next_seek, False
        end = last_word_end(segments)
        if end is not None:
            self.last_speech_timestamp = end
        return next_seek, True

    def _skip_hallucinations(self, segments: list[dict], start: int, size: int, next_seek: int,
                             single_ending: bool) -> tuple[int, bool]:
        """openai-whisper's hallucination_silence_threshold: resume after the last word only when a
        long silence follows it; skip the window when it opens with an anomalous segment after a long
        silence; drop an anomalous segment that silence surrounds, and everything after it."""
        threshold = self.opts.hallucination_silence_threshold
        time_offset = start * HOP_LENGTH / SAMPLE_RATE
        window_end = (start + N_FRAMES) * HOP_LENGTH / SAMPLE_RATE
        end = last_word_end(segments)
        if not single_ending and end is not None and end > time_offset:
            next_seek = round(end * FRAMES_PER_SECOND) if window_end - end > threshold else start + size
        first = first_with_words(segments)
        if is_anomalous(first) and first["start"] - time_offset > threshold:
            return start + round((first["start"] - time_offset) * FRAMES_PER_SECOND), False
        previous_end = self.last_speech_timestamp
        for i, segment in enumerate(segments):
            if not segment["words"]:
                continue
            if is_anomalous(segment):
                following = first_with_words(segments[i + 1:])
                next_start = following["words"][0]["start"] if following else time_offset + size * HOP_LENGTH / SAMPLE_RATE
                silence_before = (segment["start"] - previous_end > threshold or segment["start"] < threshold
                                  or segment["start"] - time_offset < 2.0)
                silence_after = (next_start - segment["end"] > threshold or is_anomalous(following)
                                 or window_end - segment["end"] < 2.0)
                if silence_before and silence_after:
                    next_seek = round(max(time_offset + 1, segment["start"]) * FRAMES_PER_SECOND)
                    if self.recording.seconds - segment["end"] < threshold:
                        next_seek = self.recording.content_frames
                    del segments[i:]
                    break
            previous_end = segment["end"]
        return next_seek, True

    def _decode_options(self) -> DecodingOptions:
        if self.opts.carry_initial_prompt:
            ignored = max(len(self.initial_prompt_tokens), self.prompt_reset_since)
            tail = self.all_tokens[ignored:][-self.remaining_prompt_length:]  # openai-whisper's slice, as it is
            return self.decode_opts.replace(prompt=self.initial_prompt_tokens + tail)
        return self.decode_opts.replace(prompt=self.all_tokens[self.prompt_reset_since:])

    def _segments(self, pieces: list[tuple[int, int, list[int]]], result: DecodingResult, seek: int,
                  size: int) -> list[dict]:
        time_offset = seek * HOP_LENGTH / SAMPLE_RATE
        duration = size * HOP_LENGTH / SAMPLE_RATE
        out = []
        for start_pos, end_pos, part in pieces:
            start = time_offset + start_pos * self.time_precision
            end = time_offset + (end_pos * self.time_precision if end_pos >= 0 else duration)
            out.append({
                "seek": seek, "start": start, "end": max(start, end) if self.stride else end,
                "text": self.tokenizer.decode([t for t in part if t < self.tokenizer.eot]), "tokens": list(part),
                "temperature": result.temperature, "avg_logprob": result.avg_logprob,
                "compression_ratio": result.compression_ratio, "no_speech_prob": result.no_speech_prob,
                **({"language": self.tokenizer.language} if self.opts.multilingual else {}),
            })
        return out

    def _keep(self, segments: list[dict], result: DecodingResult) -> None:
        if self.opts.verbose:
            for s in segments:
                print(segment_line(s, strip=False))
        # an instantaneous or empty segment keeps its place but loses its content
        for s in segments:
            if s["start"] == s["end"] or s["text"].strip() == "":
                s["text"] = ""
                s["tokens"] = []
                if "words" in s:
                    s["words"] = []
        self.all_segments.extend({"id": i, **s} for i, s in enumerate(segments, start=len(self.all_segments)))
        self.all_tokens.extend(t for s in segments for t in s["tokens"])
        if not self.opts.condition_on_previous_text or result.temperature > 0.5:
            self.prompt_reset_since = len(self.all_tokens)  # high temperature: don't feed this text on
