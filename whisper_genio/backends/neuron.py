"""The "neuron" encoder backend: a Whisper encoder DLA on the MDLA via the Neuron runtime.

The work is native (csrc/src/backends/neuron/): the runtime is dlopen'ed at run time (no
build-time dependency on MediaTek's SDK), its version picks the struct layouts, the DLA's byte
sizes are checked against the manifest, the I/O buffers are allocated once (dma-heap where the
board has one) and the decoder reads the states in place. This module only checks
availability honestly and translates options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Union

from .. import _core
from ..errors import InvalidOptionError
from .registry import Availability, BackendSource, BackendSpec

PREFERENCES = {"performance": 0, "power": 1, "turbo": 2}
PRIORITIES = {"low": 0, "medium": 1, "med": 1, "high": 2}
POWER_POLICIES = {"default": 0, "sustainable": 1, "performance": 2, "power_saving": 3}
LIBRARY_ENV = "WHISPER_GENIO_NEURON_LIB"


@dataclass(frozen=True)
class NeuronQoS:
    """Quality-of-service hints for the MDLA (NeuronRuntime_setQoSOption).

    preference: "performance", "power" or "turbo"; priority: "low", "medium" or "high";
    boost: 0..100 (with "performance" the scheduler never goes below it, with "power" it stays
    at or below it) or "profiled"; deadline_ms (non-zero marks a real-time job), abort_time_ms
    (0 = never), delayed_power_off_ms (-1 = the runtime's default), power_policy: "default",
    "sustainable", "performance" or "power_saving".
    """

    preference: str = "performance"
    priority: str = "high"
    boost: Union[int, str] = 100
    deadline_ms: int = 0
    abort_time_ms: int = 0
    delayed_power_off_ms: int = -1
    power_policy: str = "default"

    def __post_init__(self) -> None:
        if self.preference not in PREFERENCES:
            raise InvalidOptionError(f"neuron_qos preference must be one of {', '.join(PREFERENCES)}, got {self.preference!r}")
        if self.priority not in PRIORITIES:
            raise InvalidOptionError(f"neuron_qos priority must be one of low, medium, high, got {self.priority!r}")
        if self.power_policy not in POWER_POLICIES:
            raise InvalidOptionError(
                f"neuron_qos power_policy must be one of {', '.join(POWER_POLICIES)}, got {self.power_policy!r}")
        boost = self.boost
        if isinstance(boost, str):
            if boost == "profiled":
                pass
            elif boost.isdigit():
                object.__setattr__(self, "boost", int(boost))
            else:
                raise InvalidOptionError(f"neuron_qos boost must be 0..100 or 'profiled', got {boost!r}")
        if isinstance(self.boost, int) and not 0 <= self.boost <= 100:
            raise InvalidOptionError(f"neuron_qos boost must be 0..100 or 'profiled', got {self.boost!r}")
        for name in ("deadline_ms", "abort_time_ms"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v <= 65535:
                raise InvalidOptionError(f"neuron_qos {name} must be 0..65535, got {v!r}")
        if not isinstance(self.delayed_power_off_ms, int) or self.delayed_power_off_ms < -1:
            raise InvalidOptionError(f"neuron_qos delayed_power_off_ms must be >= -1, got {self.delayed_power_off_ms!r}")

    @classmethod
    def parse(cls, value: Any) -> "NeuronQoS":
        """A NeuronQoS, a dict of its fields, or "preference=performance,priority=high,boost=100"."""
        if isinstance(value, NeuronQoS):
            return value
        if isinstance(value, str):
            items = {}
            for part in value.split(","):
                if not part.strip():
                    continue
                if "=" not in part:
                    raise InvalidOptionError(f"neuron_qos: expected key=value pairs, got {part!r}")
                k, v = (x.strip() for x in part.split("=", 1))
                items[k] = int(v) if v.lstrip("-").isdigit() and k != "boost" else v
            value = items
        if isinstance(value, Mapping):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise InvalidOptionError(f"neuron_qos: unknown field(s) {', '.join(sorted(unknown))}; "
                                         f"known: {', '.join(cls.__dataclass_fields__)}")
            return cls(**value)
        raise InvalidOptionError(f"neuron_qos must be a NeuronQoS, a dict or 'key=value,...', got {value!r}")

    def to_native(self) -> dict[str, int]:
        return {
            "preference": PREFERENCES[self.preference],
            "priority": PRIORITIES[self.priority],
            "boost": 101 if self.boost == "profiled" else int(self.boost),
            "deadline_ms": self.deadline_ms,
            "abort_time_ms": self.abort_time_ms,
            "delayed_power_off_ms": self.delayed_power_off_ms,
            "power_policy": POWER_POLICIES[self.power_policy],
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    return _core.NeuronEncoder(
        checkpoint.dims.to_dict(), str(path), inp.native("input"), out.native("output"), api=o.neuron_api,
        qos=None if o.neuron_qos is None else o.neuron_qos.to_native(), dma_heap=o.dma_heap, rebind=o.neuron_rebind,
        self_test=o.self_test, library=o.neuron_library)


SPEC = BackendSpec("neuron", "encoder DLA on the MDLA NPU through the Neuron runtime", _availability, _create)
