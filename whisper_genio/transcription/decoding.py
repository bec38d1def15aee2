"""One window: DecodingOptions -> the native decode loop -> DecodingResult.

What openai-whisper's DecodingTask does in Python before its loop (initial tokens, prompt
and prefix, the suppressed-token set) happens here; the loop itself runs natively.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Optional

from .. import _core
from ..dims import ModelDims
from ..tokenizer import Tokenizer
from .options import DecodingOptions, suppress_token_ids

def compression_ratio(text: str) -> float:
    """gzip-style compressibility: repetitive (hallucinated) text compresses well."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


@dataclass(frozen=True)
class DecodingResult:
    """openai-whisper's DecodingResult, without the audio features."""

    language: str
    language_probs: Optional[dict[str, float]] = None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    avg_logprob: float = float("nan")
    no_speech_prob: float = float("nan")
    temperature: float = float("nan")
    compression_ratio: float = float("nan")
    looped: bool = False  # repetition_cutoff stopped it: tokens keep the repeated block once


def _tokens_of(value, tokenizer: Tokenizer) -> list[int]:
    if isinstance(value, str):
        return tokenizer.encode(" " + value.strip())
    return [int(t) for t in value]


def initial_tokens(options: DecodingOptions, tokenizer: Tokenizer, dims: ModelDims) -> list[int]:
    """[<|startofprev|> prompt] sot-sequence [prefix], truncated as openai-whisper does."""
    sot_sequence = list(tokenizer.sot_sequence)
    if options.without_timestamps:
        sot_sequence.append(tokenizer.no_timestamps)
    n_ctx = dims.n_text_ctx
    sample_len = options.sample_len or n_ctx // 2
    tokens = sot_sequence
    if options.prefix:
        prefix = _tokens_of(options.prefix, tokenizer)
        max_prefix_len = n_ctx // 2 - sample_len
        # openai-whisper slices with [-max_prefix_len:], where 0 keeps everything.
        prefix = prefix[-max_prefix_len:] if max_prefix_len != 0 else prefix
        tokens = tokens + prefix
    if options.prompt:
        prompt = _tokens_of(options.prompt, tokenizer)
        tokens = [tokenizer.sot_prev] + prompt[-(n_ctx // 2 - 1):] + tokens
    return tokens


def suppress_tokens(options: DecodingOptions, tokenizer: Tokenizer) -> list[int]:
    """The suppressed ids: the option's ("-1" = the non-speech symbols) and the special tokens."""
    ids = suppress_token_ids(options.suppress_tokens)
    if -1 in ids:
        ids = [t for t in ids if t >= 0] + list(tokenizer.non_speech_tokens)
    ids += [tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev, tokenizer.sot_lm]
    if tokenizer.no_speech is not None:
        ids.append(tokenizer.no_speech)  # its probability is collected separately
    return sorted(set(ids))


def native_options(options: DecodingOptions, tokenizer: Tokenizer, dims: ModelDims) -> "_core.DecodingOptions":
    """The options the native decode loop runs with: the checked native ones plus the tokens."""
    o = options.native()
    tokens = initial_tokens(options, tokenizer, dims)
    o.initial_tokens = tokens
    o.sot_index = tokens.index(tokenizer.sot)
    o.suppress_tokens = suppress_tokens(options, tokenizer) if options.suppress_tokens else []
    o.blank_tokens = tokenizer.encode(" ") + [tokenizer.eot]
    o.eot = tokenizer.eot
    o.no_speech = tokenizer.no_speech if tokenizer.no_speech is not None else -1
    o.no_timestamps = tokenizer.no_timestamps
    o.timestamp_begin = tokenizer.timestamp_begin
    return o


def language_probabilities(decoder: "_core.Decoder", tokenizer: Tokenizer) -> dict[str, float]:
    """openai-whisper's detect_language on the window already set in the decoder."""
    probs = decoder.language_probs(tokenizer.sot, list(tokenizer.all_language_tokens))
    return dict(zip(tokenizer.all_language_codes, probs))


def decode_window(decoder: "_core.Decoder", options: DecodingOptions, tokenizer: Tokenizer,
                  dims: ModelDims) -> DecodingResult:
    """Decodes the window already set in the decoder (see Pipeline.set_window)."""
    language_probs = None
    if options.language is None and tokenizer.multilingual:
        language_probs = language_probabilities(decoder, tokenizer)
        language = max(language_probs, key=language_probs.get)
        tokenizer = tokenizer.with_options(language=language, task=options.task)
    else:
        language = options.language or "en"
        tokenizer = tokenizer.with_options(language=language, task=options.task)
    result = decoder.decode(native_options(options, tokenizer, dims))
    text = tokenizer.decode(result.tokens).strip()
    return DecodingResult(
        language=language,
        language_probs=language_probs,
        tokens=list(result.tokens),
        text=text,
        avg_logprob=result.avg_logprob,
        no_speech_prob=result.no_speech_prob,
        temperature=result.temperature,
        compression_ratio=compression_ratio(text),
        looped=result.looped,
    )
