"""Encoder backends: which exist, which can run here and why not, and how "auto" chooses.

A backend is a small contract (see csrc/include/whisper_genio/encoder_backend.h for the
native side): ``availability()`` says honestly whether it can run and, if not, why and what
to do; ``create()`` builds it for one model. ``auto`` takes the first usable backend in
preference order and records why each better one was skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import _core
from .errors import BackendUnavailableError, InvalidOptionError


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
    # (checkpoint, pool, **options) -> native EncoderBackend
    create: Callable[..., Any]


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
    """Availability of every registered backend, in auto's preference order."""
    return [spec.availability(source) for spec in _REGISTRY.values()]


def select(name: str, source: Any = None) -> tuple[BackendSpec, list[Availability]]:
    """The backend to use and, for "auto", why each preferred backend was skipped."""
    if name == "auto":
        skipped: list[Availability] = []
        for spec in _REGISTRY.values():
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
