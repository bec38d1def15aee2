"""``whisper-genio doctor``: what can run here, what is missing, and the fix for each.

Works on any machine (a Genio board, an x86 laptop): every check reads files, device nodes,
PATH or imports, and never fails because something is absent; it says so and what to do.
With ``--dla`` it also loads an encoder DLA through the neuron backend and runs one round trip
plus the input-latching self-test. ``--checklist`` prints the steps of docs/on-device.md with
pass/fail where this machine can tell.

The SoC table (board, SoC, MDLA, ncc-tflite ``--arch``) is from MediaTek's NeuroPilot
documentation.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

from ..socs import Soc, identify_soc, read_compatible, under_root

OK, MISSING, WARN, INFO, FAIL, SKIP = "ok", "missing", "warn", "info", "fail", "skip"




@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class ChecklistStep:
    step: int
    title: str
    command: str
    proves: str
    status: str  # "pass" | "fail" | "not checked"
    detail: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    soc: Optional[Soc] = None
    compatible: list[str] = field(default_factory=list)
    round_trip: Optional[dict[str, Any]] = None
    checklist: list[ChecklistStep] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)

    def get(self, name: str) -> Optional[Check]:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "soc": asdict(self.soc) if self.soc else None,
            "compatible": self.compatible,
            "checks": [asdict(c) for c in self.checks],
            "round_trip": self.round_trip,
            "checklist": [asdict(s) for s in self.checklist],
            "failed": self.failed,
        }


def _run_version(exe: str, args: list[str]) -> str:
    try:
        p = subprocess.run([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10,
                           errors="replace")
    except (OSError, subprocess.SubprocessError) as e:
        return f"(could not run: {e})"
    lines = [l.strip() for l in p.stdout.splitlines() if l.strip()]
    version = [l for l in lines if "version" in l.lower()]
    return (version or lines or ["(no output)"])[0][:200]


def _which(name: str, root: str, env: Mapping[str, str]) -> Optional[str]:
    dirs = env.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/usr/bin", "/sbin"]
    search = os.pathsep.join(under_root(root, d) if d.startswith("/") else d for d in dirs if d)
    return shutil.which(name, path=search)


def run_doctor(*, root: str = "/", env: Optional[Mapping[str, str]] = None, dla: Optional[str] = None,
               model: Any = "base", library: Optional[str] = None, run_tools: bool = True,
               decoder_subgraphs: Optional[str] = None, decoder_offload: str = "auto",
               onnx_model: Optional[str] = None) -> Report:
    """Builds the report. `root` prefixes every absolute path looked at (tests use a fake tree);
    `library` overrides the Neuron runtime search (else $WHISPER_GENIO_NEURON_LIB and the names)."""
    env = dict(os.environ if env is None else env)
    r = Report()
    _check_machine(r, root)
    lib = _check_neuron_runtime(r, env, library)
    _check_neuron_libraries(r, root)
    _check_apu(r, root)
    _check_dma_heap(r, root, env)
    _check_tools(r, root, env, run_tools)
    _check_onnxruntime(r)
    if onnx_model is not None:
        r.checks.append(onnx_preflight_check(onnx_model))
    _check_build(r)
    # -- one round trip ----------------------------------------------------------------------
    if dla is not None:
        r.round_trip = _round_trip(dla, model, library, lib)
        rt = r.round_trip
        r.checks.append(Check("dla round trip", rt["status"], rt["detail"], rt.get("fix", "")))
    # -- decoder subgraphs: load every one, print the dispatch plan ---------------------------
    if decoder_subgraphs is not None:
        r.checks.append(_decoder_plan_check(model, decoder_subgraphs, decoder_offload, library))
    r.checklist = _checklist(r, dla)
    return r


def _check_machine(r: Report, root: str) -> None:
    """This machine: the package, Python, the CPU kernels, and the SoC from the device tree."""
    from .. import _core

    add = r.checks.append
    try:
        from .. import __version__
    except ImportError:  # pragma: no cover
        __version__ = "?"
    add(Check("whisper_genio", OK, f"{__version__} on Python {platform.python_version()}, {platform.machine()} "
              f"{platform.system()}; CPU kernels: {_core.isa()} ({_core.cpu_features()})"))

    r.compatible = read_compatible(root)
    r.soc = identify_soc(r.compatible)
    if r.soc is not None:
        soc = r.soc
        detail = f"{soc.board} ({soc.soc}): " + (f"{soc.mdla}, ncc-tflite --arch={soc.arch}" if soc.mdla else "no MDLA")
        add(Check("soc", OK if soc.mdla else WARN, detail + (f"; {soc.note}" if soc.note else ""),
                  "" if soc.mdla else soc.note))
    elif r.compatible:
        add(Check("soc", INFO, f"not a known Genio SoC (device tree: {', '.join(r.compatible[:4])})",
                  "the neuron backend needs a Genio 510/700/1200/520/720 (MT8370/8390/8395/8371/8391)"))
    else:
        add(Check("soc", INFO, "no device tree (/proc/device-tree/compatible): not a Genio board",
                  "run doctor on the board to check the NPU; here the onnxruntime (CPU) and cpu backends run"))


def _check_build(r: Report) -> None:
    from .. import _core

    r.checks.append(build_check(_core.build_info(), _core.__file__))


def elf_version_needs(path: str) -> dict[str, list[str]]:
    """The symbol versions a little-endian ELF64 file needs, per library (its .gnu.version_r:
    what `readelf -V` lists): {"libc.so.6": ["GLIBC_2.17", ...]}. Empty when unreadable."""
    import struct

    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            return {}
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        needs: dict[str, list[str]] = {}
        for _name, sh_type, _flags, _addr, off, _size, link, info, _align, _entsize in sections:
            if sh_type != 0x6FFFFFFE:  # SHT_GNU_verneed
                continue
            stroff = sections[link][4]

            def string(at: int) -> str:
                return data[stroff + at:data.index(b"\0", stroff + at)].decode()

            pos = off
            for _ in range(info):
                _ver, cnt, file, aux, nxt = struct.unpack_from("<HHIII", data, pos)
                names, apos = [], pos + aux
                for _ in range(cnt):
                    _hash, _fl, _other, name, anext = struct.unpack_from("<IHHII", data, apos)
                    names.append(string(name))
                    apos += anext
                needs[string(file)] = sorted(names, key=_version_key)
                pos += nxt
        return needs
    except (OSError, ValueError, IndexError, struct.error):
        return {}


def _version_key(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def _newest(needs: dict[str, list[str]], prefix: str) -> Optional[str]:
    found = [v for vs in needs.values() for v in vs if re.fullmatch(prefix + r"_[\d.]+", v)]
    return max(found, key=_version_key) if found else None


def machine_libstdcxx() -> Optional[str]:
    """GLIBCXX_3.4.N of the libstdc++ this process loaded (from its file name), if any."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "libstdc++.so" in line}
    except OSError:
        return None
    for p in paths:
        m = re.search(r"libstdc\+\+\.so\.6\.0\.(\d+)$", os.path.realpath(p))
        if m:
            return f"GLIBCXX_3.4.{m.group(1)}"
    return None


def build_check(info: Mapping[str, Any], extension: str) -> Check:
    """How the installed extension was built (_core.build_info()) and the newest glibc/libstdc++
    symbol versions it needs, beside what this machine has."""
    needs = elf_version_needs(extension)
    glibc_need, cxx_need = _newest(needs, "GLIBC"), _newest(needs, "GLIBCXX")
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    have_cxx = machine_libstdcxx()
    how = "cross-compiled" if info.get("cross_compiled") else "native"
    if info.get("toolchain_file"):
        how += f" with {info['toolchain_file']}"
    cxx = (f"libstdc++ of GCC {info.get('libstdcxx_release')} linked in" if info.get("static_cxx_runtime")
           else f"the system libstdc++ (headers of GCC {info.get('libstdcxx_release')})")
    detail = (f"ISA levels compiled in: {info.get('isa_levels')}; {info.get('target')}, {info.get('compiler')}, {how}; "
              f"glibc {info.get('glibc_headers')} headers, {cxx}; needs {glibc_need or 'no GLIBC_ version'}"
              f"{', ' + cxx_need if cxx_need else ''}. This machine: {libc or 'no glibc'}"
              f"{', libstdc++ ' + have_cxx if have_cxx else ''}")
    status, fix = OK, ""
    if cxx_need and have_cxx and _version_key(cxx_need) > _version_key(have_cxx):
        status, fix = WARN, f"this libstdc++ is older than the build's {cxx_need}: use the wheel with libstdc++ linked in"
    return Check("build", status, detail, fix)


def _check_neuron_runtime(r: Report, env: Mapping[str, str], library: Optional[str]) -> dict[str, Any]:
    """The Neuron runtime library: loads, version, API and struct layouts. Returns the probe."""
    from .. import _core

    lib = _core.neuron_probe(library) if library else _with_env(env, lambda: _core.neuron_probe())
    if lib["ok"]:
        extra = [] if not lib["missing_optional"] else [f"optional symbols absent: {', '.join(lib['missing_optional'])}"]
        r.checks.append(Check(
            "neuron runtime", OK, f"{lib['resolved_path']} version {lib['version']} ({'V1+V2' if lib['v2'] else 'V1 only'}"
            f" API, {lib['layout']} struct layouts: {lib['layout_reason']})" + (f"; {extra[0]}" if extra else "")))
    else:
        r.checks.append(Check(
            "neuron runtime", MISSING, lib["reason"],
            "Genio Yocto: install packagegroup-rity-mtk-neuropilot (libneuronusdk_runtime.mtk.so); Ubuntu: "
            "apt install mediatek-libneuron (ppa:mediatek-genio/genio-public); or set WHISPER_GENIO_NEURON_LIB "
            "to the library"))
    return lib


def _check_neuron_libraries(r: Report, root: str) -> None:
    """The NeuroPilot libraries present in the usual folders (information only)."""
    found = sorted({p for d in ("/usr/lib", "/usr/lib64", "/lib", "/usr/lib/aarch64-linux-gnu")
                    for pat in ("libneuronusdk_*.so*", "libneuron_*.so*", "libapu_mdw*.so*")
                    for p in glob.glob(os.path.join(under_root(root, d), pat))})
    if found:
        r.checks.append(Check("neuron libraries", INFO, ", ".join(_describe_lib(p) for p in found)))


def _check_apu(r: Report, root: str) -> None:
    """What the APU needs to start: the nhw settings file, the /dev/apusys* nodes, the firmware."""
    add = r.checks.append
    nhw = [p for p in [under_root(root, "/etc/nhw")] + sorted(glob.glob(under_root(root, "/etc/apusys/*/nhw"))) if os.path.exists(p)]
    if nhw:
        add(Check("nhw", OK, "hardware settings file: " + ", ".join(nhw)))
    else:
        fam = r.soc.family if r.soc else "<soc>"
        add(Check("nhw", MISSING, "no /etc/nhw nor /etc/apusys/*/nhw: the runtime fails with \"Can't open config file\"",
                  f"install the BSP's NeuroPilot packages, which ship /etc/apusys/{fam}/nhw, and link /etc/nhw to it"))

    apusys = sorted(glob.glob(under_root(root, "/dev/apusys*")))
    if apusys:
        unusable = [p for p in apusys if not os.access(p, os.R_OK | os.W_OK)]
        if unusable:
            add(Check("apu devices", WARN, f"{', '.join(apusys)}; not readable/writable by this user: {', '.join(unusable)}",
                      "run as root, or add a udev rule giving your group rw access to /dev/apusys*"))
        else:
            add(Check("apu devices", OK, ", ".join(apusys)))
    else:
        add(Check("apu devices", MISSING, "no /dev/apusys* nodes: the APU kernel driver is not loaded",
                  "load the apusys kernel module of the BSP (mtk-apusys-driver) and check dmesg for its firmware"))

    if r.soc is not None and r.soc.mdla:
        fw = sorted(glob.glob(under_root(root, f"/usr/lib/firmware/mediatek/{r.soc.soc.lower()}/apusys.sig.img")) +
                    glob.glob(under_root(root, f"/usr/lib/firmware/mediatek/{r.soc.family}/apusys.sig.img")))
        if fw:
            add(Check("apu firmware", OK, ", ".join(fw)))
        else:
            add(Check("apu firmware", WARN, f"no apusys.sig.img under /usr/lib/firmware/mediatek/{r.soc.soc.lower()} "
                      f"or /{r.soc.family}", "install the BSP's apusys firmware package"))


def _check_dma_heap(r: Report, root: str, env: Mapping[str, str]) -> None:
    """The dma-buf heap the neuron backend's I/O buffers come from."""
    from .. import _core

    heaps = [p for p in (under_root(root, "/dev/dma_heap/system"), under_root(root, "/dev/dma_heap/system-uncached"))
             if os.path.exists(p)]
    requested = env.get(_core.NEURON_ENV["dma_heap"])
    if heaps:
        r.checks.append(Check("dma-heap", OK, ", ".join(heaps) + "; the neuron backend's I/O buffers are dma-bufs "
                              f"(from {requested or '/dev/dma_heap/system'})"))
    else:
        r.checks.append(Check("dma-heap", WARN, "no /dev/dma_heap/system: the neuron backend uses ordinary memory for "
                              "its I/O buffers (works; the runtime may copy them)",
                              "a kernel with CONFIG_DMABUF_HEAPS_SYSTEM=y"))


def _check_tools(r: Report, root: str, env: Mapping[str, str], run_tools: bool) -> None:
    """The NeuroPilot command-line tools (ncc-tflite, neuronrt) and the compile flags for the SoC."""
    add = r.checks.append
    for tool, args, what, fix in (
            ("ncc-tflite", ["--version"], "compiles .tflite to .dla",
             "it comes with the NeuroPilot packages (Yocto: neuropilot-bin, /usr/sbin/ncc-tflite); compiling can also "
             "be done on a host with the NeuroPilot SDK of the same major version as the board's runtime"),
            ("neuronrt", ["-v"], "runs a .dla on the device: input.bin -> output.bin",
             "it comes with the NeuroPilot packages (Yocto: neuropilot-bin, /usr/sbin/neuronrt)")):
        exe = _which(tool, root, env)
        if exe:
            version = _run_version(exe, args) if run_tools else "(not run)"
            add(Check(tool, OK, f"{exe}: {version}"))
        else:
            add(Check(tool, MISSING, f"{tool} not on PATH nor in /usr/sbin ({what})", fix))
    if r.soc is not None and r.soc.arch:
        add(Check("compile flags", INFO, f"ncc-tflite {r.soc.compile_flags} -d encoder.dla encoder.tflite"))


def _check_onnxruntime(r: Report) -> None:
    """onnxruntime, whether it has MediaTek's NeuronExecutionProvider, and the provider options the
    onnxruntime backend passes by default (what load_model(..., backend="onnxruntime") uses)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        r.checks.append(Check("onnxruntime", MISSING, f"not importable ({e})", "pip install 'whisper_genio[onnxruntime]'"))
        return
    from ..backends.onnxruntime import NEURON_EP, NEURON_OPTIONS, choose_providers

    providers = ort.get_available_providers()
    neuron_ep = NEURON_EP in providers
    r.checks.append(Check("onnxruntime", OK, f"{ort.__version__}, providers: {', '.join(providers)}"
                          + ("" if neuron_ep else f"; no {NEURON_EP} (MediaTek's onnxruntime build has "
                             "it): the onnxruntime backend runs on the CPU")))
    names, options, _ = choose_providers(None, providers)
    in_force = "; ".join(f"{n} {{{', '.join(f'{k}={v}' for k, v in o.items())}}}" for n, o in zip(names, options))
    r.checks.append(Check("onnxruntime provider options", INFO,
                          f"in force by default: {in_force}; {NEURON_EP} options accepted by providers=/--providers: "
                          f"{', '.join(NEURON_OPTIONS)} (NEURON_FLAG_USE_FP16=1 always)"))


def onnx_preflight_check(path: str) -> Check:
    """The NeuronExecutionProvider pre-flight (export_onnx.neuron_ep_findings) of an ONNX encoder,
    or of a bundle folder's encoder.onnx: warn when the provider is reported to refuse something."""
    from ..errors import WhisperGenioError

    name = "onnx neuron EP pre-flight"
    try:
        from .export_onnx import REFUSED, neuron_ep_findings

        if os.path.isdir(path):
            from ..backends.bundle import load_bundle

            found = load_bundle(path).path_of("onnx")
            if found is None:
                return Check(name, FAIL, f"{path}: the bundle has no ONNX encoder", "whisper-genio export --format onnx")
            path = str(found)
        findings = neuron_ep_findings(path)
    except WhisperGenioError as e:
        return Check(name, FAIL, str(e), "give an .onnx file or a bundle folder with encoder.onnx")
    except Exception as e:  # noqa: BLE001 - onnx's own errors for a file that is not a model
        return Check(name, FAIL, f"{path}: not readable as ONNX ({type(e).__name__}: {e})",
                     "give an .onnx file or a bundle folder with encoder.onnx")
    refused = [m for level, m in findings if level == REFUSED]
    detail = f"{path}: " + ("; ".join(f"[{level}] {m}" for level, m in findings) or "nothing to note")
    return Check(name, WARN if refused else OK, detail,
                 "re-export with `whisper-genio export` / `quantize` (opset >= 13, static shapes, standard QDQ)"
                 if refused else "")


def _decoder_plan_check(model: Any, bundle: str, mode: str, library: Optional[str]) -> Check:
    """Loads the model's decoder with the bundle's subgraphs; fails when one of them does not load
    (the plan text names each CPU op and why)."""
    from ..model import load_model

    from ..errors import NpuSelfCheckError

    try:
        m = load_model(model, backend="cpu")
        m.set_decoder_offload(mode, bundle, library=library)
    except NpuSelfCheckError as e:  # the subgraphs load but compute wrongly here
        return Check("decoder subgraphs", FAIL, f"{type(e).__name__}: {e}",
                     "the NPU computes these subgraphs wrongly here: load with npu_fallback='cpu' (--npu-fallback "
                     "cpu) to run them on the CPU, or recompile them (docs/on-device.md, decoder subgraphs)")
    except Exception as e:  # noqa: BLE001 - any failure is the check's result
        return Check("decoder subgraphs", FAIL, f"{type(e).__name__}: {e}",
                     "check the bundle's manifest (decoder.subgraphs) against the model")
    failed = [e for e in m.decoder_plan if e["where"] == "cpu" and "failed to load" in e["reason"]]
    text = "\n".join([m.decoder_plan_text(), *m.decoder_notes])
    if failed:
        return Check("decoder subgraphs", FAIL, text, "recompile the failing subgraphs for this SoC and runtime "
                     "(docs/on-device.md, decoder subgraphs)")
    return Check("decoder subgraphs", OK, text)


def _describe_lib(path: str) -> str:
    """'/usr/lib/libneuronusdk_runtime.mtk.so.6 -> libneuronusdk_runtime.mtk.so.6.3.3 (6.3.3)'."""
    name = os.path.basename(path)
    target = os.path.basename(os.path.realpath(path)) if os.path.islink(path) else name
    m = re.search(r"\.so\.(\d+(?:\.\d+)*)$", target)
    text = path if target == name else f"{path} -> {target}"
    return text + (f" ({m.group(1)})" if m else "")


def _with_env(env: Mapping[str, str], fn: Any) -> Any:
    """Runs fn with the Neuron-related variables of `env` in os.environ (the loader reads them)."""
    from .. import _core

    keys = (_core.NEURON_ENV["neuron_library"], _core.NEURON_ENV["neuron_layout"])
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in keys:
            if env.get(k) is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = env[k]
        return fn()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _round_trip(dla: str, model: Any, library: Optional[str], lib: Mapping[str, Any]) -> dict[str, Any]:
    if not lib["ok"]:
        return {"status": SKIP, "detail": f"{dla}: not run, the Neuron runtime is missing",
                "fix": "install the runtime (see 'neuron runtime' above)"}
    if not os.path.isfile(dla):
        return {"status": FAIL, "detail": f"{dla}: no such file", "fix": "give the path of the compiled encoder DLA"}
    from .. import _core
    from ..backends import BackendSource, EncoderOptions, npu_check
    from ..errors import NpuSelfCheckError, WhisperGenioError

    try:
        from ..checkpoints import resolve
        from ..dims import ModelDims

        checkpoint = None
        if isinstance(model, ModelDims):
            dims = model
        else:
            checkpoint = resolve(model)
            dims = checkpoint.dims
        source = BackendSource(_DimsOnly(dims), EncoderOptions(encoder_model=dla, neuron_library=library))
        art = source.artifact("dla")
        assert art is not None
        path, inp, outp = art
        t0 = time.perf_counter()
        enc = _core.NeuronEncoder(dims.to_dict(), str(path), inp.native("input"), outp.native("output"),
                                  self_test=False, library=library)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        enc.self_test()  # two inferences, different inputs
        two_runs = time.perf_counter() - t0
        out = {"status": OK, "detail": f"{enc.describe()}; loaded in {load_s:.2f} s; self-test passed (a changed "
               f"input changed the output), {two_runs / 2 * 1000:.1f} ms per inference",
               "api": enc.api, "runtime_version": enc.runtime_version, "input_memory": enc.input_memory,
               "output_memory": enc.output_memory, "input_zero_copy": enc.input_zero_copy,
               "output_zero_copy": enc.output_zero_copy, "inference_ms": two_runs / 2 * 1000, "load_s": load_s}
        if checkpoint is not None and npu_check.enabled():
            # The accuracy self-check the backend runs at load (the verdict is shared through its cache).
            try:
                v = npu_check.check_encoder(f"{dla}", enc, checkpoint, _core.ThreadPool(2, []), artifact=path,
                                            io={"input": inp.native("input"), "output": outp.native("output")},
                                            runtime_version=enc.runtime_version)
                out["self_check"] = v
                out["detail"] += (f"; accuracy self-check passed{' (cached)' if v['cached'] else ''}: "
                                  f"{npu_check.describe(v)}")
            except NpuSelfCheckError as e:
                out.update(status=FAIL, self_check=e.verdict, detail=f"{enc.describe()}; {e}",
                           fix="the NPU computes this encoder wrongly here: load with npu_fallback='cpu' "
                               "(--npu-fallback cpu) to run it on the CPU, try another runtime version or compile "
                               "flags (docs/on-device.md)")
        del enc
        if lib.get("v2"):
            # The backend uses V2 here; whether V1 latches its input is worth knowing too (it was
            # reported for one runtime and is unverified on Genio).
            try:
                v1 = _core.NeuronEncoder(dims.to_dict(), str(path), inp.native("input"), outp.native("output"),
                                         api="v1", self_test=False, library=library)
                v1.self_test()
                out["v1_self_test"] = "pass"
                out["detail"] += "; V1 API: a changed input changes the output too"
            except WhisperGenioError as e:
                out["v1_self_test"] = f"fail: {e}"
                out["detail"] += "; V1 API: the input latches (the backend uses V2, which does not)"
        return out
    except WhisperGenioError as e:
        return {"status": FAIL, "detail": f"{dla}: {e}",
                "fix": "see docs/on-device.md (compile flags per SoC, manifest dtypes, input latching)"}


@dataclass
class _DimsOnly:
    dims: Any


CHECKLIST = [
    ("Identify the board", "whisper-genio doctor", "the SoC, its MDLA and the ncc-tflite --arch to compile for"),
    ("Neuron runtime", "whisper-genio doctor", "libneuronusdk_runtime loads, has the V1 symbols, and its version "
     "picks known struct layouts"),
    ("APU ready", "whisper-genio doctor", "/etc/nhw, /dev/apusys* and the firmware are in place (the runtime can start)"),
    ("Compile the encoder", "ncc-tflite <flags for the SoC> -d encoder.dla encoder.tflite",
     "the encoder's ops are supported on this MDLA at this precision"),
    ("DLA round trip", "whisper-genio doctor --dla encoder.dla",
     "the DLA loads in this runtime, its byte sizes match the manifest, its padded / float16-native I/O as the "
     "runtime reports it (padded shapes printed), a changed input changes the output, and (with --model) its states "
     "on a shipped speech window pass validate's gate against the CPU encoder's"),
    ("Replay the device's output", "neuronrt -m hw -a encoder.dla -i mel_000.bin -o output_000.bin; "
     "whisper-genio transcribe audio.wav --encoder-output output_000.bin",
     "the NPU's encoder output transcribes, and how close it is to the CPU encoder (cosine)"),
    ("Transcribe on the NPU", "whisper-genio transcribe audio.wav --backend neuron --encoder-model bundle/",
     "the whole path (dma-buf I/O, zero-copy states, native decoder) gives the CPU backend's text; the accuracy "
     "self-check at load passes on this board's runtime (else --npu-fallback cpu runs the encoder on the CPU)"),
    ("Validate", "whisper-genio transcribe <clips> --backend neuron ... vs --backend cpu",
     "accuracy (WER) and speed on your own recordings"),
    ("ONNX Runtime on the Neuron provider", "whisper-genio transcribe audio.wav --backend onnxruntime "
     "--encoder-model bundle/ --providers neuron",
     "the session starts on NeuronExecutionProvider (NEURON_FLAG_USE_FP16=1) and its states on a shipped speech "
     "window pass validate's gate against the CPU encoder's (self-check at load, cached; else --npu-fallback cpu "
     "runs the encoder on the CPU)"),
    ("Decoder subgraphs", "whisper-genio doctor --decoder-subgraphs bundle/ --decoder-offload linear",
     "every decoder subgraph DLA loads and matches its manifest entry; the decoder's logits with them on a shipped "
     "speech window pass the self-check against the CPU decoder's (each failing subgraph named, with its numbers); "
     "the dispatch plan (which op runs where, why)"),
    ("Live transcription", "arecord -D <capture device> -f S16_LE -r 16000 -c 1 | whisper-genio stream - "
     "--backend neuron --encoder-model bundle/ --language en; python benchmarks/streaming_sim.py --backend neuron "
     "--encoder-model bundle/ --clock wall",
     "ALSA capture on this image feeds a stream, and the stream's latency on this board (committed words, end of "
     "speech -> final text, CPU per audio second) with the encoder on the NPU"),
]


def _checklist(r: Report, dla: Optional[str]) -> list[ChecklistStep]:
    def status(*names: str) -> tuple[str, str]:
        checks = [r.get(n) for n in names]
        checks = [c for c in checks if c is not None]
        bad = [c for c in checks if c.status in (MISSING, FAIL)]
        if bad:
            return "fail", "; ".join(f"{c.name}: {c.detail}" for c in bad)
        return "pass", "; ".join(f"{c.name}: {c.detail}" for c in checks)

    steps = []
    for i, (title, command, proves) in enumerate(CHECKLIST, start=1):
        if i == 1:
            ok = r.soc is not None and r.soc.mdla is not None
            st, detail = ("pass" if ok else "fail",
                          f"{r.soc.board} ({r.soc.soc}), --arch={r.soc.arch}" if ok else
                          (r.soc.note if r.soc else "not a Genio board with an MDLA"))
        elif i == 2:
            st, detail = status("neuron runtime")
        elif i == 3:
            st, detail = status("nhw", "apu devices", "apu firmware")
        elif i == 4:
            c = r.get("ncc-tflite")
            st = "pass" if c and c.status == OK else "not checked"
            detail = c.detail if c and c.status == OK else "ncc-tflite is not here (it may run on a host instead)"
            if r.soc is not None and r.soc.arch:
                command = f"ncc-tflite {r.soc.compile_flags} -d encoder.dla encoder.tflite"
        elif i == 5:
            if r.round_trip is None:
                st, detail = "not checked", "give --dla encoder.dla"
            else:
                st = {"ok": "pass", "fail": "fail"}.get(r.round_trip["status"], "not checked")
                detail = r.round_trip["detail"]
        elif title == "Decoder subgraphs":
            c = r.get("decoder subgraphs")
            st = "not checked" if c is None else ("pass" if c.status == OK else "fail")
            detail = "give --decoder-subgraphs bundle/" if c is None else c.detail
        else:
            st, detail = "not checked", "run it on the board (doctor cannot)"
        steps.append(ChecklistStep(i, title, command, proves, st, detail))
    return steps


_MARK = {OK: "ok  ", MISSING: "MISS", WARN: "warn", INFO: "info", FAIL: "FAIL", SKIP: "skip"}


def format_report(r: Report) -> str:
    lines = ["whisper-genio doctor", ""]
    width = max(len(c.name) for c in r.checks)
    for c in r.checks:
        lines.append(f"[{_MARK.get(c.status, c.status)}] {c.name:<{width}}  {c.detail}")
        if c.fix:
            lines.append(f"       {'':<{width}}  fix: {c.fix}")
    usable = []
    neuron_ok = r.get("neuron runtime") and r.get("neuron runtime").status == OK
    if neuron_ok and r.soc and r.soc.mdla:
        usable.append("neuron (with an encoder DLA)")
    ort = r.get("onnxruntime")
    if ort and ort.status == OK:
        usable.append("onnxruntime (with an encoder.onnx)")
    usable.append("cpu")
    lines += ["", "usable encoder backends here: " + ", ".join(usable),
              "on-device checklist: whisper-genio doctor --checklist (docs/on-device.md)"]
    return "\n".join(lines)


def format_checklist(r: Report) -> str:
    lines = ["on-device checklist (docs/on-device.md)", ""]
    for s in r.checklist:
        mark = {"pass": "PASS", "fail": "FAIL"}.get(s.status, " -- ")
        lines.append(f"{s.step}. [{mark}] {s.title}")
        lines.append(f"   run:    {s.command}")
        lines.append(f"   proves: {s.proves}")
        if s.detail:
            lines.append(f"   here:   {s.detail}")
    return "\n".join(lines)


def main() -> int:  # pragma: no cover - `python -m whisper_genio.tools.doctor`
    print(format_report(run_doctor()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
