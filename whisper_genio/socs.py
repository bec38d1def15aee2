"""MediaTek Genio SoCs: which NPU each has, how ncc-tflite compiles for it, and which one this
machine is (from the device tree). One table, read by doctor, the ncc helper and the NPU
self-check's cache key."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Soc:
    board: str
    soc: str              # "MT8390"
    family: str           # the apusys/firmware folder name ("mt8188")
    mdla: Optional[str]   # "MDLA 3.0"; None: no MDLA
    arch: Optional[str]   # ncc-tflite --arch value
    compile_flags: str    # ncc-tflite flags for a Whisper encoder on this SoC
    note: str = ""


_FLAGS = "--relax-fp32 --opt-accuracy"
SOCS: dict[str, Soc] = {
    "mt8365": Soc("Genio 350", "MT8365", "mt8365", None, None, "",
                  "no MDLA: the Cadence VP6 APU is reachable only through NNAPI (Android); there is no Neuron/DLA "
                  "path: use the onnxruntime (CPU) or cpu backend"),
    "mt8370": Soc("Genio 510", "MT8370", "mt8188", "MDLA 3.0", "mdla3.0", f"--arch=mdla3.0 {_FLAGS}"),
    "mt8390": Soc("Genio 700", "MT8390", "mt8188", "MDLA 3.0", "mdla3.0", f"--arch=mdla3.0 {_FLAGS}"),
    "mt8395": Soc("Genio 1200", "MT8395", "mt8195", "2x MDLA 2.0", "mdla2.0", f"--arch=mdla2.0 --num-mdla=2 {_FLAGS}",
                  "MDLA 2.0 is reported unsuitable for large transformer models: measure the encoder before relying "
                  "on it"),
    "mt8371": Soc("Genio 520", "MT8371", "mt8189", "MDLA 5.3", "mdla5.3,edma3.6",
                  f"--arch=mdla5.3,edma3.6 --l1-size-kb=256 --num-mdla=1 {_FLAGS}",
                  "NeuroPilot 8 (Yocto v26); MediaTek lists Whisper as not yet supported on Genio 520/720"),
    "mt8391": Soc("Genio 720", "MT8391", "mt8189", "MDLA 5.3", "mdla5.3,edma3.6",
                  f"--arch=mdla5.3,edma3.6 --l1-size-kb=256 --num-mdla=1 {_FLAGS}",
                  "NeuroPilot 8 (Yocto v26); MediaTek lists Whisper as not yet supported on Genio 520/720"),
}
# Family compatibles name the SoC only when nothing more specific is listed.
FAMILIES = {"mt8188": "mt8390", "mt8195": "mt8395", "mt8189": "mt8391"}


def under_root(root: str, p: str) -> str:
    return os.path.join(root, p.lstrip("/")) if root not in ("", "/") else p


def read_compatible(root: str = "/") -> list[str]:
    """The device tree's compatible strings (empty off a device-tree machine)."""
    try:
        with open(under_root(root, "/proc/device-tree/compatible"), "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [s.decode("ascii", "replace") for s in raw.split(b"\0") if s]


def identify_soc(compatible: list[str]) -> Optional[Soc]:
    ids = [m.group(1) for c in compatible for m in [re.match(r"mediatek,(mt\d{4})", c)] if m]
    for i in ids:
        if i in SOCS:
            return SOCS[i]
    for i in ids:
        if i in FAMILIES:
            return SOCS[FAMILIES[i]]
    return None
