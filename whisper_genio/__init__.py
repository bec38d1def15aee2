"""whisper_genio: OpenAI Whisper for MediaTek Genio boards.

    import whisper_genio
    model = whisper_genio.load_model("base")          # threads=, backend=, compute_type=
    result = model.transcribe("audio.wav")            # openai-whisper's result shape
    states = model.encode("audio.wav")                # float32 [1500, d]: the validation reference

openai-whisper's module-level functions are here too (load_audio, pad_or_trim,
log_mel_spectrogram, get_tokenizer, decode, detect_language), on numpy arrays.
"""

from __future__ import annotations

from . import errors
from .api import decode, detect_language, get_tokenizer, log_mel_spectrogram
from .audio import load_audio, pad_or_trim
from .dims import ModelDims
from .errors import (
    AudioDecodeError,
    AudioNotFoundError,
    BackendUnavailableError,
    InferenceError,
    InvalidOptionError,
    ModelLoadError,
    ModelNotFoundError,
    RuntimeVersionError,
    TokenizerNotFoundError,
    TranscriptionInterrupted,
    WhisperGenioError,
)
from .model import Model, load_model
from .transcription.decoding import DecodingResult
from .transcription.options import DecodingOptions, TranscribeOptions

try:
    from ._core import __version__
except ImportError:  # pragma: no cover - a build without the version define
    __version__ = "0.0.0"


def transcribe(model: Model, audio, **options) -> dict:
    """``whisper_genio.transcribe(model, audio, ...)``, the same as ``model.transcribe(audio, ...)``."""
    return model.transcribe(audio, **options)


def available_models() -> list[str]:
    """Names load_model understands (weights must still be installed or cached)."""
    from .dims import KNOWN_SIZES

    return list(KNOWN_SIZES) + ["large", "turbo"]


__all__ = [
    "AudioDecodeError",
    "AudioNotFoundError",
    "BackendUnavailableError",
    "DecodingOptions",
    "DecodingResult",
    "InferenceError",
    "InvalidOptionError",
    "Model",
    "ModelDims",
    "ModelLoadError",
    "ModelNotFoundError",
    "RuntimeVersionError",
    "TokenizerNotFoundError",
    "TranscribeOptions",
    "TranscriptionInterrupted",
    "WhisperGenioError",
    "available_models",
    "decode",
    "detect_language",
    "get_tokenizer",
    "load_audio",
    "log_mel_spectrogram",
    "pad_or_trim",
    "errors",
    "load_model",
    "transcribe",
    "__version__",
]
