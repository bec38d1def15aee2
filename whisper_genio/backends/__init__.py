"""Where the encoder runs (cpu, neuron, onnxruntime, replay) and where the decoder's ops run
(``decoder_offload``), plus the model-bundle format that describes NPU artifacts.

The registry (``registry.py``) knows no backend; this package registers the built-in ones in
"auto"'s preference order: accelerators first, the CPU last (replay only when given its files).
"""

from __future__ import annotations

from . import cpu, neuron, onnxruntime, replay
from .options import EncoderOptions
from .registry import (Availability, BackendSource, BackendSpec, backend_names, describe, probe, register,
                       select)

for _plugin in (neuron, onnxruntime, replay, cpu):
    register(_plugin.SPEC)

__all__ = ["Availability", "BackendSource", "BackendSpec", "EncoderOptions", "backend_names", "describe", "probe",
           "register", "select"]
