"""openai-whisper's module-level functions (``whisper.log_mel_spectrogram``, ``get_tokenizer``,
``decode``, ``detect_language``), so code written against openai-whisper runs with its import
changed. Arrays are numpy (no torch); ``device`` accepts only the CPU, where these run.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from . import _core
from .audio import N_FRAMES, AudioSource, load_audio
from .errors import InvalidOptionError, TokenizerNotFoundError
from .tokenizer import LANGUAGES, Tokenizer
from .transcription.decoding import DecodingResult
from .transcription.options import DecodingOptions

MEL_BINS = (80, 128)  # the released checkpoints' n_mels: large-v3 and turbo have 128


def _check_device(device: Any) -> None:
    if device is not None and str(device) != "cpu":
        raise InvalidOptionError(
            f"device must be 'cpu' (or None), got {device!r}: these functions run on the CPU; "
            "an NPU encoder is chosen with load_model(..., backend=)")


def log_mel_spectrogram(audio: Union[AudioSource, np.ndarray], n_mels: int = 80, padding: int = 0,
                        device: Any = None) -> np.ndarray:
    """openai-whisper's log-mel spectrogram of audio of any length, without a model:
    float32 ``[n_mels, (len(audio) + padding) // 160]``. ``audio`` is a path, encoded bytes or
    16 kHz samples, as :func:`whisper_genio.load_audio` takes them."""
    _check_device(device)
    if n_mels not in MEL_BINS:
        raise InvalidOptionError(f"n_mels must be one of {MEL_BINS}, got {n_mels!r}")
    if not isinstance(padding, (int, np.integer)) or isinstance(padding, bool) or padding < 0:
        raise InvalidOptionError(f"padding must be a number of samples >= 0, got {padding!r}")
    return _core.log_mel_spectrogram(load_audio(audio), int(n_mels), int(padding))


def get_tokenizer(multilingual: bool, *, num_languages: int = 99, language: Optional[str] = None,
                  task: Optional[str] = None) -> Tokenizer:
    """openai-whisper's ``get_tokenizer``: the vocabulary of an English-only or a multilingual
    model (``num_languages`` 99, or 100 for large-v3), from the installed files that
    :func:`load_model` would use (openai-whisper's ``.tiktoken`` assets or the base weights'
    ``tokenizer.json``)."""
    from .checkpoints.locate import tokenizer_candidates

    if not isinstance(multilingual, bool):
        raise InvalidOptionError(f"multilingual must be True or False, got {multilingual!r}")
    if not isinstance(num_languages, int) or isinstance(num_languages, bool) or not 1 <= num_languages <= len(LANGUAGES):
        raise InvalidOptionError(f"num_languages must be between 1 and {len(LANGUAGES)}, got {num_languages!r}")
    n_vocab = 51765 + 1 + num_languages if multilingual else 51864
    candidates = tokenizer_candidates([], multilingual, n_vocab)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        searched = "".join(f"\n  - {p}" for p in candidates) or " (no candidate: openai-whisper is not installed)"
        raise TokenizerNotFoundError(
            f"no {'multilingual' if multilingual else 'English-only'} vocabulary installed. Searched:{searched}\n"
            "Fix: pip install openai-whisper (its .tiktoken files), or load a model and use model.tokenizer.")
    return Tokenizer.from_file(found, multilingual=multilingual, num_languages=num_languages, language=language,
                               task=task)


def decode(model: Any, mel: Any, options: Optional[DecodingOptions] = None,
           **kwargs: Any) -> Union[DecodingResult, list[DecodingResult]]:
    """openai-whisper's ``whisper.decode(model, mel, options)``: one 30 s window (a mel
    ``[n_mels, 3000]``, audio, or encoder states), or a list of results for a batch of mels
    ``[batch, n_mels, 3000]``."""
    if isinstance(mel, np.ndarray) and mel.ndim == 3:
        if mel.shape[1:] != (model.dims.n_mels, N_FRAMES):
            raise InvalidOptionError(f"a batch of mels must be [batch, {model.dims.n_mels}, {N_FRAMES}], "
                                     f"got {list(mel.shape)}")
        return [model.decode(m, options, **kwargs) for m in mel]
    return model.decode(mel, options, **kwargs)


def detect_language(model: Any, mel: Any) -> tuple[str, dict[str, float]]:
    """The most probable language of the first 30 s window and every language's probability
    (openai-whisper's ``model.detect_language`` gives the same probabilities as tensors)."""
    return model.detect_language(mel)
