"""The encoder-backend registry: the contract, and how "auto" chooses.

A backend is a small contract (see csrc/include/whisper_genio/encoder_backend.h for the
native side): ``availability()`` says honestly whether it can run and, if not, why and what
to do; ``create()`` builds it for one model. ``auto`` takes the first usable backend in
preference order and records why each better one was skipped. The registry knows no backend:
the package (``whisper_genio/backends/__init__.py``) registers the built-in ones in order.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import BackendUnavailableError, InvalidOptionError, ModelLoadError, WhisperGenioError
from .bundle import MANIFEST, default_tensor, find_bundle_for, load_bundle


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


@dataclass
class BackendSource:
    """What a backend is asked to run: the checkpoint (dims, decoder weights) and the options."""

    checkpoint: Any
    options: Any  # EncoderOptions (whisper_genio/backends/options.py)
    notes: list = field(default_factory=list)  # what a backend found while loading (its self-check)

    @property
    def dims(self) -> Any:
        return self.checkpoint.dims

    def artifact(self, kind: str) -> Optional[tuple[pathlib.Path, Any, Any]]:
        """(path, input TensorInfo, output TensorInfo) of the encoder artifact of `kind`
        ("dla" | "onnx") that encoder_model names, or None when it names none of that kind.
        Raises ModelLoadError when a manifest disagrees with itself or with the checkpoint."""
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


# Registered backends in "auto"'s preference order (accelerators first, "cpu" last).
_REGISTRY: dict[str, BackendSpec] = {}


def backend_names() -> list[str]:
    return list(_REGISTRY)


def probe(source: Any = None) -> list[Availability]:
    """Availability of every registered backend, in auto's preference order (never raises)."""
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
    """Adds a backend (or replaces one of the same name) at the end of "auto"'s preference order,
    or before the backend named `before`."""
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
