"""The ``ncc-tflite`` command that compiles an encoder TFLite into a DLA for one Genio SoC.

    cmd = ncc_command("encoder.tflite", "encoder.dla", soc="genio-700", float_ops=True)
    print(" ".join(cmd))         # ncc-tflite --arch=mdla3.0 --relax-fp32 --opt-accuracy -d encoder.dla encoder.tflite
    result = run_ncc(cmd)        # runs it when ncc-tflite is on PATH, else None

Flags per SoC come from ``whisper_genio.socs.SOCS`` (MediaTek's NeuroPilot documentation):
``--arch`` (mdla3.0 on Genio 510/700, mdla2.0 with ``--num-mdla=2`` on Genio 1200,
mdla5.3,edma3.6 with ``--l1-size-kb=256`` on Genio 520/720); ``--relax-fp32`` whenever the model
still has float32 arithmetic (a float model, or float LayerNorm statistics inside a quantized
one: the MDLA has no FP32 and runs it in FP16); ``--opt-accuracy`` always (it keeps results close
to the CPU's at negligible cost).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Optional, Sequence

from ..errors import InvalidOptionError

ALIASES = {"genio-510": "mt8370", "genio-700": "mt8390", "genio-1200": "mt8395", "genio-520": "mt8371",
           "genio-720": "mt8391", "genio-350": "mt8365", "mdla3.0": "mt8390", "mdla2.0": "mt8395",
           "mdla5.3": "mt8391"}


def soc_names() -> list[str]:
    from ..socs import SOCS

    return sorted(set(ALIASES) | set(SOCS))


def find_soc(name: str) -> Any:
    """The doctor's Soc entry for a SoC ("mt8390"), board ("genio-700", "Genio 700") or arch ("mdla3.0")."""
    from ..socs import SOCS

    key = name.strip().lower().replace(" ", "-")
    key = ALIASES.get(key, key)
    soc = SOCS.get(key)
    if soc is None:
        raise InvalidOptionError(f"unknown SoC {name!r}; known: {', '.join(soc_names())}")
    if not soc.arch:
        raise InvalidOptionError(f"{soc.board} ({soc.soc}) has no MDLA: {soc.note}")
    return soc


def ncc_command(tflite: str, dla: str, *, soc: str = "genio-700", float_ops: bool = True,
                extra: Sequence[str] = ()) -> list[str]:
    """The ncc-tflite argv compiling `tflite` into `dla` for `soc`."""
    s = find_soc(soc)
    flags = [f for f in s.compile_flags.split() if f != "--relax-fp32" or float_ops]
    if "--opt-accuracy" not in flags:
        flags.append("--opt-accuracy")
    return ["ncc-tflite", *flags, *extra, "-d", os.fspath(dla), os.fspath(tflite)]


def run_ncc(cmd: Sequence[str], *, timeout: float = 3600) -> Optional[dict[str, Any]]:
    """Runs the command when ncc-tflite is on PATH: {"returncode", "output"}; None when it is not."""
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    p = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout)
    return {"returncode": p.returncode, "output": (p.stdout + p.stderr)[-4000:]}
