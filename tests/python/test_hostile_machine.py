"""A hostile machine (issue 16): the thread count's bounds, a pool with more threads than cores,
and a Neuron library path naming a FIFO, a directory or a device (refused before dlopen(),
which would block on a FIFO forever). The library cases run in a child process with a
deadline, so that a regression fails instead of hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import whisper_genio
from whisper_genio import _core
from whisper_genio.errors import InvalidOptionError



@pytest.mark.parametrize("threads", [0, -1, 257, 10_000, 10**6, 2**64])
def test_thread_count_out_of_range_is_refused_before_starting_threads(threads):
    with pytest.raises(InvalidOptionError, match=r"threads .* out of range \[1, 256\]"):
        _core.ThreadPool(threads, [])


def test_more_threads_than_cores_compute_the_same():
    """Allowed (a user may know better), and the results do not depend on it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 256), dtype=np.float32)
    w = rng.standard_normal((2048, 256), dtype=np.float32)
    want = _core.kernels.linear_f32(x, w, _core.ThreadPool(1, []))
    many = _core.ThreadPool(4 * (os.cpu_count() or 1) + 1, [])
    for _ in range(20):
        np.testing.assert_array_equal(_core.kernels.linear_f32(x, w, many), want)


@pytest.mark.parametrize("cpus", [[1024], [0, 70000]])
def test_cpu_affinity_beyond_the_cpu_set_is_refused(cpus):
    with pytest.raises(InvalidOptionError, match=r"cpu_affinity .* out of range \[0, 1023\]"):
        _core.ThreadPool(2, cpus)


_CHILD = textwrap.dedent("""
    import json, os, sys
    from whisper_genio import _core
    from whisper_genio.tools import doctor
    path = sys.argv[1]
    out = {"explicit": _core.neuron_probe(path)["reason"]}
    os.environ["WHISPER_GENIO_NEURON_LIB"] = path
    out["env"] = _core.neuron_probe()["reason"]
    report = doctor.run_doctor(root="/nonexistent-root", run_tools=False)
    check = report.get("neuron runtime")
    out["doctor"] = [check.status, check.detail]
    print(json.dumps(out))
""")


def _child_env() -> dict:
    """The environment of a child that imports the whisper_genio this process imported (the
    installed one in CI, where the repo's source folder has no built _core; run it outside the
    repo so that folder can't shadow it)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(whisper_genio.__file__)))
    return dict(os.environ, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.mark.parametrize("kind,what", [("fifo", "FIFO"), ("dir", "a directory"), ("dev", "a character device")])
def test_neuron_library_path_must_be_a_regular_file(tmp_path, kind, what):
    if kind == "fifo":
        path = tmp_path / "libneuron.so"
        os.mkfifo(path)
    elif kind == "dir":
        path = tmp_path / "libneuron.so"
        path.mkdir()
    else:
        path = "/dev/null"
        if not os.path.exists(path):
            pytest.skip("no /dev/null")
    env = _child_env()
    env.pop("WHISPER_GENIO_NEURON_LIB", None)
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], env=env, capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading the Neuron library from {kind} {path} hung")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for where in ("explicit", "env"):
        assert str(path) in out[where] and what in out[where] and "not a shared library file" in out[where], out
    assert "$WHISPER_GENIO_NEURON_LIB" in out["env"]
    status, detail = out["doctor"]
    assert status == "missing" and what in detail, out["doctor"]


_THREADS_UNDER_RLIMIT_AS = textwrap.dedent("""
    import resource
    from whisper_genio import _core
    from whisper_genio.errors import ModelLoadError
    vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
    try:
        _core.ThreadPool(256, [])
        print("no error")
    except ModelLoadError as e:
        print("ModelLoadError:", e)
    print("after:", _core.ThreadPool(2, []).num_threads)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_thread_start_failing_under_a_memory_limit_is_a_clear_error(tmp_path):
    """255 thread stacks do not fit in 64 MiB of address space: the workers already started are
    stopped and joined (was: std::terminate, or a deadlock destroying a condition variable)."""
    env = _child_env()
    try:
        done = subprocess.run([sys.executable, "-c", _THREADS_UNDER_RLIMIT_AS], env=env, capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("starting 256 threads under RLIMIT_AS hung")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("ModelLoadError: could not start 255 worker threads"), lines
    assert "fewer threads" in lines[0] and lines[1] == "after: 2", lines
