"""The LiteRT (TFLite) interpreter, imported lazily, quietly; float in and out of its integer tensors."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ... import _core
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


# -- float in, float out ------------------------------------------------------------------------
# An integer input or output tensor is quantized / dequantized with its own scale and zero point by
# the native quantization the device backends use (_core.quantize / _core.dequantize; the rounding
# rule is stated at quantize_from_float in csrc/src/backends/tensor_io.h), never by a copy here.

def device_spec(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The native tensor spec ({"dtype", "scale", "zero_point"}) of an interpreter tensor."""
    dtype = np.dtype(detail["dtype"]).name
    if dtype in ("float32", "float16"):
        return {"dtype": dtype}
    scale, zero_point = detail["quantization"]
    return {"dtype": dtype, "scale": float(scale), "zero_point": int(zero_point)}


def _rows_cols(shape: Sequence[int]) -> tuple[int, int]:
    """The [rows, cols] the native (2-D) quantizers see: the leading dimensions flattened."""
    return int(np.prod(shape[:-1], dtype=np.int64)), int(shape[-1]) if len(shape) else 1


def to_tensor(x: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """Float x (any shape) in the dtype of the interpreter tensor `detail`: unchanged when that is
    float32, else quantized natively."""
    x = np.ascontiguousarray(x, np.float32)
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x
    raw = _core.quantize(x.reshape(_rows_cols(x.shape)), device_spec(detail))
    return np.frombuffer(raw, dtype).reshape(x.shape)


def from_tensor(y: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """The value y of the interpreter tensor `detail` as float32 (dequantized natively when it is
    not float32)."""
    if np.dtype(detail["dtype"]) == np.float32:
        return y
    rows, cols = _rows_cols(y.shape)
    return _core.dequantize(np.ascontiguousarray(y), device_spec(detail), rows, cols).reshape(y.shape)


def run_float(it: Any, x: np.ndarray, i: Optional[Mapping[str, Any]] = None,
              o: Optional[Mapping[str, Any]] = None) -> np.ndarray:
    """One inference of interpreter `it` on float x (already in input `i`'s shape): the value of
    output `o` as float. i, o: tensor details (default: the first input and output)."""
    i = it.get_input_details()[0] if i is None else i
    o = it.get_output_details()[0] if o is None else o
    it.set_tensor(i["index"], to_tensor(x, i))
    it.invoke()
    return from_tensor(it.get_tensor(o["index"]), o)
