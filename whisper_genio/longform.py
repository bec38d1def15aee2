"""Long-form transcription: openai-whisper's transcribe() algorithm over the native core.

The audio is cut into 30-second windows by a seek pointer that advances to the last
complete timestamp the decoder produced; each window is encoded once and decoded with the
temperature fallback; segments carry openai-whisper's fields. What differs is only where
the work happens: the mel, encoder and decode loop are native, and a window is encoded
once however many temperatures it needs.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Optional


from . import _core
from .audio import HOP_LENGTH, N_FRAMES, SAMPLE_RATE, load_audio
from .decoding import DecodingResult, decode_window, language_probabilities
from .options import DecodingOptions, TranscribeOptions, split_transcribe_kwargs
from .tokenizer import LANGUAGES, Tokenizer

if TYPE_CHECKING:
    from .model import Model

ProgressCallback = Callable[[int, int], None]  # (frames done, total frames)


def needs_fallback(result: DecodingResult, opts: TranscribeOptions) -> bool:
    """openai-whisper's retry rule: too repetitive or too improbable, unless it is silence."""
    failed = False
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


def decode_with_fallback(decoder: "_core.Decoder", decode_opts: DecodingOptions, opts: TranscribeOptions,
                         tokenizer: Tokenizer, dims: Any, seek: int, timings: dict) -> DecodingResult:
    """Decodes the window set in the decoder at each temperature until the result passes
    (openai-whisper's decode_with_fallback; the window is encoded once for all of them)."""
    result = None
    for t in opts.temperatures:
        if t > 0:
            # sampling: no beams; best_of candidates; a seed per window and temperature
            options = decode_opts.replace(temperature=t, beam_size=None, patience=None, best_of=opts.best_of,
                                          seed=decode_opts.seed + seek * 31 + int(t * 1000))
        else:
            options = decode_opts.replace(temperature=t, best_of=None)
        start, cpu, steps = time.perf_counter(), time.process_time(), decoder.forward_calls
        result = decode_window(decoder, options, tokenizer, dims)
        timings["decoder"] = timings.get("decoder", 0.0) + time.perf_counter() - start
        timings["decoder_cpu"] = timings.get("decoder_cpu", 0.0) + time.process_time() - cpu
        timings["decoder_steps"] = timings.get("decoder_steps", 0) + decoder.forward_calls - steps
        timings["tokens"] = timings.get("tokens", 0) + len(result.tokens) + 1
        timings["decode_calls"] = timings.get("decode_calls", 0) + 1
        if not needs_fallback(result, opts):
            break
    assert result is not None
    return result


def resolve_language(model: "Model", decode_opts: DecodingOptions, opts: TranscribeOptions,
                     detect_window: Callable[[], None]) -> tuple[Tokenizer, DecodingOptions]:
    """The language to decode in: given, English for English-only models, or detected on the
    window `detect_window()` puts in the decoder. Returns the tokenizer and options for it."""
    language = decode_opts.language
    if language is None:
        if not model.is_multilingual:
            language = "en"
        else:
            detect_window()
            probs = language_probabilities(model._decoder, model.tokenizer)
            language = max(probs, key=probs.get)
            if opts.verbose is not None:
                print(f"Detected language: {LANGUAGES[language].title()}")
    tokenizer = model.tokenizer.with_options(language=language, task=decode_opts.task)
    return tokenizer, decode_opts.replace(language=tokenizer.language or "en")


def split_segments(tokens: list[int], timestamp_begin: int, segment_frames: int,
                   time_precision: float = 0.02, input_stride: int = 2) -> tuple[list[tuple[int, int, list[int]]], int]:
    """Cuts one window's tokens at timestamp pairs.

    Returns the segments as (start position, end position, tokens) in audio positions of
    `time_precision` seconds (relative to the window, end None-free), and how many mel frames
    to advance the seek pointer.
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
        if single_timestamp_ending:
            advance = segment_frames  # no speech after the last timestamp
        else:
            # the unfinished segment is dropped: resume at the last complete timestamp
            advance = (tokens[last - 1] - timestamp_begin) * input_stride
        return segments, advance
    # No pair: one segment for the whole window, ending at its last timestamp if it has one.
    end_pos = None
    timestamps = [t for t in tokens if t >= timestamp_begin]
    if timestamps and timestamps[-1] != timestamp_begin:
        end_pos = timestamps[-1] - timestamp_begin
    segments.append((0, end_pos if end_pos is not None else -1, tokens))
    return segments, segment_frames


def transcribe(model: "Model", audio: Any, *, progress: Optional[ProgressCallback] = None, **kwargs: Any) -> dict:
    """Transcribes audio of any length; same options and result as openai-whisper's transcribe().

    Returns {"text", "segments": [{id, seek, start, end, text, tokens, temperature,
    avg_logprob, compression_ratio, no_speech_prob}], "language"}.
    `progress(done_frames, total_frames)` is called after every window.
    """
    opts = split_transcribe_kwargs(kwargs)
    dims = model.dims
    samples = load_audio(audio)
    # Per stage: wall seconds, and CPU seconds of the whole process ("*_cpu"), for `bench`.
    timings = {"audio_seconds": len(samples) / SAMPLE_RATE, "windows": 0, "decode_calls": 0, "decoder_steps": 0,
               "tokens": 0}
    for stage in ("mel", "encoder", "cross_kv", "decoder"):
        timings[stage] = timings[stage + "_cpu"] = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    windows = _core.MelWindows(samples, dims.n_mels, model._pool)
    timings["mel"] += time.perf_counter() - t0
    timings["mel_cpu"] += time.process_time() - c0
    content_frames = windows.content_frames
    decode_opts = opts.decode

    with model._lock:
        encoder, decoder = model._encoder, model._decoder

        current = [None]  # the window now in the decoder

        def set_window(seek: int, size: int) -> None:
            if current[0] == (seek, size):
                return  # e.g. language detection already encoded this window
            current[0] = (seek, size)
            t = _core.prepare_window(windows, seek, size, encoder, decoder, model._pool)
            for key in ("mel", "encoder", "cross_kv", "mel_cpu", "encoder_cpu", "cross_kv_cpu"):
                timings[key] += t[key]
            timings["windows"] += 1

        if content_frames == 0 and decode_opts.language is None:
            decode_opts = decode_opts.replace(language="en")  # nothing to detect from
        tokenizer, decode_opts = resolve_language(model, decode_opts, opts, lambda: set_window(0, N_FRAMES))
        language = decode_opts.language

        result = _seek_loop(model, tokenizer, decode_opts, opts, content_frames, set_window, timings, progress)
    result["language"] = language
    model.last_timings = timings
    return result


def _seek_loop(model: "Model", tokenizer: Tokenizer, decode_opts: DecodingOptions, opts: TranscribeOptions,
               content_frames: int, set_window: Callable[[int, int], None], timings: dict,
               progress: Optional[ProgressCallback]) -> dict:
    dims = model.dims
    decoder = model._decoder
    input_stride = N_FRAMES // dims.n_audio_ctx  # mel frames per audio position: 2
    time_precision = input_stride * HOP_LENGTH / SAMPLE_RATE  # seconds per audio position: 0.02
    clips = opts.clip_frames(content_frames)

    all_tokens: list[int] = []
    all_segments: list[dict] = []
    prompt_reset_since = 0
    remaining_prompt_length = dims.n_text_ctx // 2 - 1
    initial_prompt_tokens: list[int] = []
    if opts.initial_prompt is not None:
        initial_prompt_tokens = tokenizer.encode(" " + opts.initial_prompt.strip())
        all_tokens.extend(initial_prompt_tokens)
        remaining_prompt_length -= len(initial_prompt_tokens)

    bar = None
    if opts.verbose is False:
        import tqdm

        bar = tqdm.tqdm(total=content_frames, unit="frames", file=sys.stderr)

    clip_idx = 0
    seek = clips[0][0]
    try:
        while clip_idx < len(clips):
            clip_start, clip_end = clips[clip_idx]
            if seek < clip_start:
                seek = clip_start
            if seek >= clip_end:
                clip_idx += 1
                if clip_idx < len(clips):
                    seek = clips[clip_idx][0]
                continue
            time_offset = float(seek * HOP_LENGTH / SAMPLE_RATE)
            segment_size = min(N_FRAMES, content_frames - seek, clip_end - seek)
            segment_duration = segment_size * HOP_LENGTH / SAMPLE_RATE

            if opts.carry_initial_prompt:
                ignored = max(len(initial_prompt_tokens), prompt_reset_since)
                decode_opts = decode_opts.replace(
                    prompt=initial_prompt_tokens + all_tokens[ignored:][-remaining_prompt_length:])
            else:
                decode_opts = decode_opts.replace(prompt=all_tokens[prompt_reset_since:])

            set_window(seek, segment_size)
            result = decode_with_fallback(decoder, decode_opts, opts, tokenizer, dims, seek, timings)
            previous_seek = seek
            if is_silence(result, opts):
                seek += segment_size  # fast-forward to the next window
            else:
                pieces, advance = split_segments(result.tokens, tokenizer.timestamp_begin, segment_size,
                                                 time_precision, input_stride)
                current = []
                for start_pos, end_pos, part in pieces:
                    start = time_offset + start_pos * time_precision
                    end = time_offset + (end_pos * time_precision if end_pos >= 0 else segment_duration)
                    text_tokens = [t for t in part if t < tokenizer.eot]
                    current.append({
                        "seek": previous_seek,
                        "start": start,
                        "end": end,
                        "text": tokenizer.decode(text_tokens),
                        "tokens": list(part),
                        "temperature": result.temperature,
                        "avg_logprob": result.avg_logprob,
                        "compression_ratio": result.compression_ratio,
                        "no_speech_prob": result.no_speech_prob,
                    })
                seek += advance
                if opts.verbose:
                    from .writers import format_timestamp

                    for s in current:
                        print(f"[{format_timestamp(s['start'])} --> {format_timestamp(s['end'])}] {s['text']}")
                # an instantaneous or empty segment keeps its place but loses its content
                for s in current:
                    if s["start"] == s["end"] or s["text"].strip() == "":
                        s["text"] = ""
                        s["tokens"] = []
                all_segments.extend({"id": i, **s} for i, s in enumerate(current, start=len(all_segments)))
                all_tokens.extend(t for s in current for t in s["tokens"])
                if not opts.condition_on_previous_text or result.temperature > 0.5:
                    prompt_reset_since = len(all_tokens)  # high temperature: don't feed this text on
            done = min(content_frames, seek)
            if bar is not None:
                bar.update(done - min(content_frames, previous_seek))
            if progress is not None:
                progress(done, content_frames)
    finally:
        if bar is not None:
            bar.close()

    return {
        "text": tokenizer.decode(all_tokens[len(initial_prompt_tokens):]),
        "segments": all_segments,
    }
