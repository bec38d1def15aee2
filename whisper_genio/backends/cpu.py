"""The "cpu" encoder backend: the native encoder on the CPU kernels, the reference for every other."""

from __future__ import annotations

from typing import Any

from .. import _core
from .registry import Availability, BackendSpec


def _availability(_source: Any) -> Availability:
    return Availability("cpu", True)


def _create(checkpoint: Any, pool: Any, *, compute_type: str = "float32", **_options: Any) -> Any:
    return _core.CpuEncoder(checkpoint.dims.to_dict(), checkpoint.tensors, pool, compute_type)


SPEC = BackendSpec("cpu", "native encoder on the CPU kernels (the reference)", _availability, _create)
