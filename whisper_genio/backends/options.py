"""Every option of the encoder backends, validated once when a model is loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .. import _core
from ..errors import InvalidOptionError
from .neuron import parse_qos
from .npu_check import FALLBACKS
from .replay import ReplayFormat


@dataclass(frozen=True)
class EncoderOptions:
    """Everything the accelerator encoder backends take, validated in one place.

    encoder_model: an encoder artifact: ``encoder.dla`` (neuron), ``encoder.onnx``
        (onnxruntime), or a model-bundle folder / its ``manifest.json`` holding either. The
        artifact's I/O dtypes, scale, zero point and layout come from the bundle's manifest
        (also one beside a bare ``.dla``/``.onnx``), else Whisper's float32 tensors are assumed.
    encoder_output: ``output.bin`` files written by ``neuronrt`` on a board, one per 30-second
        window in order (replay backend); ``encoder_output_format`` describes their bytes.
    neuron_qos: QoS of the neuron backend, a dict or "preference=performance,priority=high,boost=100"
        (see :func:`whisper_genio.backends.neuron.parse_qos`); None leaves the runtime's defaults.
    neuron_api: "auto" (V2 ``run`` where the runtime has it, else V1), "v1" or "v2".
    neuron_library: the Neuron runtime library to load (default: $WHISPER_GENIO_NEURON_LIB, then
        the standard names).
    dma_heap: dma-heap for the neuron backend's I/O buffers (default $WHISPER_GENIO_DMA_HEAP or
        /dev/dma_heap/system; "none": ordinary memory).
    self_test: the neuron backend checks at load that a changed input changes its output, and
        that its states on a shipped speech window pass validate's gate against the CPU encoder's;
        the onnxruntime backend runs the same accuracy check when a provider other than the CPU's
        is asked for (NeuronExecutionProvider); NPU decoder subgraphs are checked against the CPU
        decoder's logits (all cached per artifact, runtime version and SoC; see
        whisper_genio/backends/npu_check.py).
    npu_fallback: what a failed accuracy self-check does: "raise" (NpuSelfCheckError with the
        numbers) or "cpu" (the encoder, or each failing decoder subgraph's op, runs on the CPU;
        Model.backend_skipped / Model.decoder_plan and Model.backend_info say why).
    neuron_rebind: with the V1 API, bind the (same) input/output buffers again before every
        inference, a guard against runtimes that latch their input (no copy either way).
    providers: ONNX Runtime execution providers, names or (name, options) pairs, in priority
        order (default: NeuronExecutionProvider when this onnxruntime has it, else CPU).
    """

    encoder_model: Optional[str] = None
    encoder_output: tuple[str, ...] = ()
    encoder_output_format: Optional[Mapping[str, Any]] = None
    neuron_qos: Any = None
    neuron_api: str = "auto"
    neuron_library: Optional[str] = None
    dma_heap: Optional[str] = None
    self_test: bool = True
    npu_fallback: str = "raise"
    neuron_rebind: bool = True
    providers: Optional[tuple[Any, ...]] = None

    def __post_init__(self) -> None:
        if self.encoder_model is not None:
            object.__setattr__(self, "encoder_model", os.fspath(self.encoder_model))
        outs = self.encoder_output
        if isinstance(outs, (str, os.PathLike)):
            outs = (outs,)
        object.__setattr__(self, "encoder_output", tuple(os.fspath(p) for p in (outs or ())))
        object.__setattr__(self, "neuron_api", _core.resolve_neuron_api(self.neuron_api))
        if self.npu_fallback not in FALLBACKS:
            raise InvalidOptionError(f"npu_fallback must be one of {', '.join(FALLBACKS)}; got {self.npu_fallback!r}")
        if self.neuron_qos is not None:
            object.__setattr__(self, "neuron_qos", parse_qos(self.neuron_qos))
        if self.encoder_output_format is not None:
            object.__setattr__(self, "encoder_output_format", ReplayFormat.parse(self.encoder_output_format))
        if self.providers is not None:
            if isinstance(self.providers, str):
                object.__setattr__(self, "providers", (self.providers,))
            else:
                object.__setattr__(self, "providers", tuple(self.providers))
