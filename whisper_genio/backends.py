"""Encoder backends: which exist, which can run here and why not, and how "auto" chooses.

A backend is a small contract (see csrc/include/whisper_genio/encoder_backend.h for the
native side): ``availability()`` says honestly whether it can run and, if not, why and what
to do; ``create()`` builds it for one model. ``auto`` takes the first usable backend in
preference order and records why each better one was skipped.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from . import _core
from .errors import BackendUnavailableError, InvalidOptionError, ModelLoadError


@dataclass(frozen=True)
class Availability:
    name: str
    ok: bool
    reason: str = ""  # why not, and the fix (empty when ok)


@dataclass(frozen=True)
class BackendSpec:
    name: str
    description: str
    # (model source info) -> Availability
    availability: Callable[[Any], Availability]
    # (checkpoint, pool, **options) -> native EncoderBackend; options include source=BackendSource
    create: Callable[..., Any]
    # Whether "auto" may pick it (replay only runs when asked for, with its files).
    auto: bool = True


@dataclass(frozen=True)
class EncoderOptions:
    """Everything the accelerator encoder backends take, validated in one place.

    encoder_model: an encoder artifact: ``encoder.dla`` (neuron), ``encoder.onnx``
        (onnxruntime), or a model-bundle folder / its ``manifest.json`` holding either. The
        artifact's I/O dtypes, scale, zero point and layout come from the bundle's manifest
        (also one beside a bare ``.dla``/``.onnx``), else Whisper's float32 tensors are assumed.
    encoder_output: ``output.bin`` files written by ``neuronrt`` on a board, one per 30-second
        window in order (replay backend); ``encoder_output_format`` describes their bytes.
    neuron_qos: QoS of the neuron backend (a :class:`whisper_genio.neuron.NeuronQoS`, a dict or
        "preference=performance,priority=high,boost=100"); None leaves the runtime's defaults.
    neuron_api: "auto" (V2 ``run`` where the runtime has it, else V1), "v1" or "v2".
    neuron_library: the Neuron runtime library to load (default: $WHISPER_GENIO_NEURON_LIB, then
        the standard names).
    dma_heap: dma-heap for the neuron backend's I/O buffers (default $WHISPER_GENIO_DMA_HEAP or
        /dev/dma_heap/system; "none": ordinary memory).
    self_test: the neuron backend checks at load that a changed input changes its output.
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
    neuron_rebind: bool = True
    providers: Optional[tuple[Any, ...]] = None

    def __post_init__(self) -> None:
        if self.encoder_model is not None:
            object.__setattr__(self, "encoder_model", os.fspath(self.encoder_model))
        outs = self.encoder_output
        if isinstance(outs, (str, os.PathLike)):
            outs = (outs,)
        object.__setattr__(self, "encoder_output", tuple(os.fspath(p) for p in (outs or ())))
        if self.neuron_api not in ("auto", "v1", "v2"):
            raise InvalidOptionError(f"neuron_api must be 'auto', 'v1' or 'v2', got {self.neuron_api!r}")
        if self.neuron_qos is not None:
            from .neuron import NeuronQoS

            object.__setattr__(self, "neuron_qos", NeuronQoS.parse(self.neuron_qos))
        if self.encoder_output_format is not None:
            from .replay import ReplayFormat

            object.__setattr__(self, "encoder_output_format", ReplayFormat.parse(self.encoder_output_format))
        if self.providers is not None:
            if isinstance(self.providers, str):
                object.__setattr__(self, "providers", (self.providers,))
            else:
                object.__setattr__(self, "providers", tuple(self.providers))


@dataclass
class BackendSource:
    """What a backend is asked to run: the checkpoint (dims, decoder weights) and the options."""

    checkpoint: Any
    options: EncoderOptions = field(default_factory=EncoderOptions)

    @property
    def dims(self) -> Any:
        return self.checkpoint.dims

    def artifact(self, kind: str) -> Optional[tuple[pathlib.Path, Any, Any]]:
        """(path, input TensorInfo, output TensorInfo) of the encoder artifact of `kind`
        ("dla" | "onnx") that encoder_model names, or None when it names none of that kind.
        Raises ModelLoadError when a manifest disagrees with itself or with the checkpoint."""
        from .bundle import MANIFEST, default_tensor, find_bundle_for, load_bundle

        model = self.options.encoder_model
        if model is None:
            return None
        p = pathlib.Path(model)
        bundle = None
        if p.is_dir() or p.name == MANIFEST:
            bundle = load_bundle(p)
            path = bundle.path_of(kind)
            if path is None:
                return None
        elif p.suffix.lower() == "." + kind:
            path = p
            bundle = find_bundle_for(p)
            if bundle is not None and (bundle.path_of(kind) is None or bundle.path_of(kind).name != p.name):
                bundle = None  # a manifest about other files
        else:
            return None
        dims = self.dims
        if bundle is not None:
            if bundle.dims != dims:
                diff = ", ".join(f"{k} {v} (bundle) vs {getattr(dims, k)} (checkpoint)"
                                 for k, v in bundle.dims.to_dict().items() if getattr(dims, k) != v)
                raise ModelLoadError(f"{bundle.root}: the bundle's dims differ from the checkpoint's: {diff}")
            art = bundle.artifacts[kind]
            return path, art.input, art.output
        return path, default_tensor(dims, "input"), default_tensor(dims, "output")


def _cpu_availability(_source: Any) -> Availability:
    return Availability("cpu", True)


def _cpu_create(checkpoint: Any, pool: Any, *, compute_type: str = "float32", **_options: Any) -> Any:
    return _core.CpuEncoder(checkpoint.dims.to_dict(), checkpoint.tensors, pool, compute_type)


# Preference order for "auto": accelerators first, the native CPU encoder last (always there).
_REGISTRY: dict[str, BackendSpec] = {
    "cpu": BackendSpec("cpu", "native float32 encoder on CPU kernels (the reference)", _cpu_availability, _cpu_create),
}


def backend_names() -> list[str]:
    return list(_REGISTRY)


def probe(source: Any = None) -> list[Availability]:
    """Availability of every registered backend, in auto's preference order (never raises)."""
    from .errors import WhisperGenioError

    out = []
    for spec in _REGISTRY.values():
        try:
            out.append(spec.availability(source))
        except (WhisperGenioError, OSError) as e:
            out.append(Availability(spec.name, False, str(e)))
    return out


def select(name: str, source: Any = None) -> tuple[BackendSpec, list[Availability]]:
    """The backend to use and, for "auto", why each preferred backend was skipped."""
    options = getattr(source, "options", None)
    if options is not None and options.encoder_output:
        if name not in ("auto", "replay"):
            raise InvalidOptionError(f"encoder_output (device output files) is replayed by the 'replay' backend, "
                                     f"not by {name!r}")
        name = "replay"  # the files say which backend runs
    if name == "auto":
        skipped: list[Availability] = []
        for spec in _REGISTRY.values():
            if not spec.auto:
                continue
            status = spec.availability(source)
            if status.ok:
                return spec, skipped
            skipped.append(status)
        raise BackendUnavailableError("no encoder backend can run here: " + "; ".join(f"{s.name}: {s.reason}" for s in skipped))
    spec = _REGISTRY.get(name)
    if spec is None:
        raise InvalidOptionError(f"unknown backend {name!r}; available: auto, {', '.join(_REGISTRY)}")
    status = spec.availability(source)
    if not status.ok:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {status.reason}")
    return spec, []


def register(spec: BackendSpec, *, before: Optional[str] = None) -> None:
    """Adds a backend (accelerator backends register ahead of "cpu")."""
    items = [(k, v) for k, v in _REGISTRY.items() if k != spec.name]
    index = next((i for i, (k, _) in enumerate(items) if k == before), len(items))
    items.insert(index, (spec.name, spec))
    _REGISTRY.clear()
    _REGISTRY.update(items)


def describe(encoder: Any) -> str:
    """One line about a native encoder backend: what runs where (for logs and reports)."""
    if hasattr(encoder, "describe"):
        return encoder.describe()
    info = getattr(encoder, "info", None)
    if info:
        return f"{encoder.name}: " + ", ".join(f"{k}={v}" for k, v in info.items())
    return encoder.name


# The accelerator backends register themselves ahead of "cpu": auto's order is
# neuron -> onnxruntime -> cpu (replay never runs unless given its files).
from . import neuron as _neuron  # noqa: E402,F401
from . import onnx_encoder as _onnx_encoder  # noqa: E402,F401
from . import replay as _replay  # noqa: E402,F401
