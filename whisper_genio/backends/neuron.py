"""The "neuron" encoder backend: a Whisper encoder DLA on the MDLA via the Neuron runtime.

The work is native (csrc/src/backends/neuron/): the runtime is dlopen'ed at run time (no
build-time dependency on MediaTek's SDK), its version picks the struct layouts, the DLA's byte
sizes are checked against the manifest, the I/O buffers are allocated once (dma-heap where the
board has one) and the decoder reads the states in place. This module only checks
availability honestly and translates options.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .. import _core
from . import npu_check
from ..errors import InvalidOptionError, NpuSelfCheckError
from .registry import Availability, BackendSource, BackendSpec

def parse_qos(value: Any) -> dict[str, str]:
    """The MDLA's quality-of-service hints (NeuronRuntime_setQoSOption) from a dict or
    "preference=performance,priority=high,boost=100", validated natively and returned whole
    (defaults filled in). Fields: preference "performance" | "power" | "turbo"; priority "low" |
    "medium" | "high"; boost 0..100 (with "performance" the scheduler never goes below it, with
    "power" it stays at or below it) or "profiled"; deadline_ms (non-zero marks a real-time job),
    abort_time_ms (0 = never), delayed_power_off_ms (-1 = the runtime's default), power_policy
    "default" | "sustainable" | "performance" | "power_saving"."""
    if isinstance(value, str):
        items = {}
        for part in value.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise InvalidOptionError(f"neuron_qos: expected key=value pairs, got {part!r}")
            k, v = (x.strip() for x in part.split("=", 1))
            items[k] = v
        value = items
    if not isinstance(value, Mapping):
        raise InvalidOptionError(f"neuron_qos must be a dict or 'key=value,...', got {value!r}")
    return dict(_core.neuron_qos({str(k): str(v) for k, v in value.items()}))


def probe_library(path: Optional[str] = None) -> dict[str, Any]:
    """What loading the Neuron runtime finds here (never raises): ok, version, path, layout,
    v2, attempts, missing_optional; or ok=False and the reason with its fix."""
    return _core.neuron_probe(path)


def _availability(source: Any) -> Availability:
    if not isinstance(source, BackendSource):
        lib = probe_library()
        return Availability("neuron", False, "no encoder DLA given" if lib["ok"] else lib["reason"])
    art = source.artifact("dla")
    lib = probe_library(source.options.neuron_library)
    if not lib["ok"]:
        return Availability("neuron", False, lib["reason"])
    if art is None:
        return Availability("neuron", False, f"Neuron runtime {lib['version']} found at {lib['resolved_path']}, but no "
                            "encoder DLA was given (encoder_model='encoder.dla' or a bundle folder with one)")
    if not art[0].is_file():
        return Availability("neuron", False, f"encoder DLA not found: {art[0]}")
    return Availability("neuron", True)


def _create(checkpoint: Any, pool: Any, *, source: BackendSource, **_options: Any) -> Any:
    art = source.artifact("dla")
    assert art is not None, "availability() checked it"
    path, inp, out = art
    o = source.options
    enc = _core.NeuronEncoder(
        checkpoint.dims.to_dict(), str(path), inp.native("input"), out.native("output"), api=o.neuron_api,
        qos=o.neuron_qos, dma_heap=o.dma_heap, rebind=o.neuron_rebind,
        self_test=o.self_test, library=o.neuron_library)
    if o.self_test and npu_check.enabled():
        try:
            verdict = npu_check.check_encoder(
                f"neuron encoder {path}", enc, checkpoint, pool, artifact=path,
                io={"input": inp.native("input"), "output": out.native("output")}, runtime_version=enc.runtime_version)
        except NpuSelfCheckError as err:
            # Release the runtime now, not when the caller drops the exception: the traceback
            # would hold the encoder through the checking frames.
            del enc
            err.__traceback__ = None
            raise err
        source.notes.append(f"self-check passed{' (cached)' if verdict['cached'] else ''}: {npu_check.describe(verdict)}")
    return enc


SPEC = BackendSpec("neuron", "encoder DLA on the MDLA NPU through the Neuron runtime", _availability, _create)
