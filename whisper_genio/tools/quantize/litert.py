"""The LiteRT (TFLite) interpreter, imported lazily, quietly."""

from __future__ import annotations

import os
from typing import Any

from ...errors import WhisperGenioError


def _module() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from ai_edge_litert import interpreter as tfl  # type: ignore
    except ImportError:
        try:
            import tflite_runtime.interpreter as tfl  # type: ignore
        except ImportError as e:
            raise WhisperGenioError(f"running TFLite models needs ai-edge-litert ({e}): "
                                    "pip install 'whisper_genio[quantize]'") from None
    return tfl


def interpreter(path: Any, *, threads: int = 2, preserve_all_tensors: bool = False) -> Any:
    import warnings

    tfl = _module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = tfl.Interpreter(model_path=os.fspath(path), num_threads=threads,
                             experimental_preserve_all_tensors=preserve_all_tensors)
    it.allocate_tensors()
    return it
