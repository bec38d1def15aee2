"""Exception types raised by whisper_genio.

Every error derives from :class:`WhisperGenioError` *and* from the built-in exception a caller
would naturally catch (``FileNotFoundError``, ``ValueError``, ``RuntimeError``), so code written
against the standard library keeps working. The C++ core never raises: it returns a status whose
code the binding maps onto one of these classes (see ``csrc/python/errors.cc``).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional


class WhisperGenioError(Exception):
    """Base class of every error raised by whisper_genio."""


class ModelNotFoundError(WhisperGenioError, FileNotFoundError):
    """A model name or path could not be resolved to weights on disk."""


class TokenizerNotFoundError(ModelNotFoundError):
    """The model's weights were found but no usable tokenizer was."""


class ModelLoadError(WhisperGenioError, ValueError):
    """Weights exist but are truncated, corrupt, or do not match the declared dimensions."""


class AudioDecodeError(WhisperGenioError, ValueError):
    """An audio file could not be decoded."""


class AudioNotFoundError(FileNotFoundError, AudioDecodeError):
    """An audio path that does not exist (``errno``/``filename`` set as for the built-in error)."""

    def __str__(self) -> str:  # the message already names the file: no "[Errno 2] ...: 'path'" suffix
        return self.strerror or super().__str__()


class InvalidOptionError(WhisperGenioError, ValueError):
    """An option has an invalid value or an invalid combination with another option."""


class BackendUnavailableError(WhisperGenioError, RuntimeError):
    """A requested backend cannot run here (library missing, wrong version, shape mismatch...)."""


class RuntimeVersionError(BackendUnavailableError):
    """A runtime library was found but its version is not supported."""


class InferenceError(WhisperGenioError, RuntimeError):
    """A backend failed while running (device error, runtime error)."""


class NpuSelfCheckError(InferenceError):
    """An NPU artifact's output on the load-time self-check window fails the accuracy gate;
    ``verdict`` holds the numbers (whisper_genio/backends/npu_check.py)."""

    def __init__(self, message: str, verdict: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message)
        self.verdict = dict(verdict or {})


class TranscriptionInterrupted(KeyboardInterrupt):
    """Ctrl-C (KeyboardInterrupt) during ``transcribe()``. Still a KeyboardInterrupt, not an
    error of the input; ``partial`` is the result of the windows that finished, in
    ``transcribe()``'s shape (segments so far), so a long recording's work is not lost."""

    def __init__(self, partial: Mapping[str, Any]) -> None:
        super().__init__("interrupted")
        self.partial = dict(partial)


__all__ = [
    "WhisperGenioError",
    "ModelNotFoundError",
    "TokenizerNotFoundError",
    "ModelLoadError",
    "AudioDecodeError",
    "AudioNotFoundError",
    "InvalidOptionError",
    "BackendUnavailableError",
    "RuntimeVersionError",
    "InferenceError",
    "NpuSelfCheckError",
    "TranscriptionInterrupted",
]
