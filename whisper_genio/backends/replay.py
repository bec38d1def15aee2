"""The "replay" backend: transcribe from encoder outputs a board already computed.

The user's on-device workflow today is ``neuronrt -m hw -a encoder.dla -i mel.bin -o
output.bin``: the DLA's output tensor, raw. Replay answers the encoder's run() with each such
file, one 30-second window's states (files in order: window 0 = audio 0-30 s, window 1 =
30-60 s, ...), so one command says whether the device's encoder output transcribes correctly:

    whisper-genio transcribe --encoder-output output.bin --model base
    whisper-genio transcribe --encoder-output w0.bin w1.bin --encoder-output-dtype int8 \\
        --scale 0.0213 --zero-point -4 --model base audio.wav   # audio too: compares with the CPU

It is an encoder backend like any other and goes through the same long-form loop; because its
windows are fixed (``window_stride``), the loop decodes each one whole (see
whisper_genio/transcription/longform.py). The comparison with the CPU encoder is
whisper_genio/tools/device_files.py's compare_windows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .. import _core
from ..errors import InvalidOptionError, ModelLoadError
from .bundle import DTYPES, LAYOUTS, QUANTIZED, TensorInfo, check_tensor, default_tensor
from .registry import Availability, BackendSource, BackendSpec


@dataclass(frozen=True)
class ReplayFormat:
    """What the bytes of a device output file are: dtype, quantization, layout ("ntc" =
    [1, 1500, d], Whisper's own; "nct" = [1, d, 1500])."""

    dtype: str = "float32"
    scale: Optional[float] = None
    zero_point: Optional[int] = None
    layout: str = "ntc"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InvalidOptionError(f"encoder output dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.layout not in LAYOUTS:
            raise InvalidOptionError(f"encoder output layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.dtype in QUANTIZED and self.scale is None:
            raise InvalidOptionError(f"{self.dtype} encoder outputs need their scale (and zero point): the "
                                     "quantization parameters of the DLA's output tensor")

    @classmethod
    def parse(cls, value: Any) -> "ReplayFormat":
        if isinstance(value, ReplayFormat):
            return value
        if isinstance(value, TensorInfo):
            return cls(value.dtype, value.scale, value.zero_point, value.layout or "ntc")
        if isinstance(value, Mapping):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise InvalidOptionError(f"encoder_output_format: unknown field(s) {', '.join(sorted(unknown))}")
            return cls(**{k: v for k, v in value.items() if v is not None})
        raise InvalidOptionError(f"encoder_output_format must be a dict or ReplayFormat, got {value!r}")

    def tensor(self, dims: Any) -> TensorInfo:
        t = default_tensor(dims, "output", self.dtype, self.scale, self.zero_point, self.layout)
        try:
            check_tensor(t, dims, "output", "encoder output")
        except ModelLoadError as e:
            raise InvalidOptionError(str(e)) from None
        return t


def _format_of(source: BackendSource) -> ReplayFormat:
    """Arguments win; else a bundle's DLA output description; else float32 [1, 1500, d]."""
    fmt = source.options.encoder_output_format
    if fmt is not None:
        return fmt
    art = source.artifact("dla")
    if art is not None:
        return ReplayFormat.parse(art[2])
    return ReplayFormat()


def _availability(source: Any) -> Availability:
    files = getattr(getattr(source, "options", None), "encoder_output", ())
    if not files:
        return Availability("replay", False, "no encoder output files given (encoder_output=['output.bin', ...])")
    missing = [os.fspath(f) for f in files if not os.path.exists(f)]
    if missing:
        return Availability("replay", False, f"encoder output file(s) not found: {', '.join(missing)}")
    # Checked before the native reader opens them: a FIFO would block it, a directory or device is no output file.
    odd = [os.fspath(f) for f in files if not os.path.isfile(f)]
    if odd:
        return Availability("replay", False, f"encoder output path(s) not regular files: {', '.join(odd)}")
    return Availability("replay", True)


def _create(checkpoint: Any, pool: Any, *, source: BackendSource, **_options: Any) -> Any:
    t = _format_of(source).tensor(checkpoint.dims)
    return _core.ReplayEncoder(checkpoint.dims.to_dict(), list(source.options.encoder_output), t.native("output"))


SPEC = BackendSpec("replay", "encoder states from a device's output.bin files (one per 30 s window)",
                   _availability, _create, auto=False)
