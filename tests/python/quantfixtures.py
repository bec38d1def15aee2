"""Session fixtures shared by test_export, test_quantize, test_validate and test_report: one
whisper-base bundle exported once, a small real calibration set (2 windows of 30 s), one held-out
clip, and the calibration statistics computed once (imported by conftest.py)."""

from __future__ import annotations

import pytest

from testdata import TEST_THREADS


def _need_export_tools() -> None:
    for m in ("torch", "onnx", "whisper.model", "litert_torch", "onnxruntime", "ai_edge_quantizer", "ai_edge_litert"):
        pytest.importorskip(m, reason=f"{m} is not installed (pip install '.[export,quantize]')")


@pytest.fixture(scope="session")
def float_bundle(tmp_path_factory, base_checkpoint):
    _need_export_tools()
    from whisper_genio.tools.export import export_bundle

    out = tmp_path_factory.mktemp("float_bundle")
    export_bundle(base_checkpoint, out, checkpoint=False, soc="genio-700")
    return out


@pytest.fixture(scope="session")
def calibration_split(english_items):
    rows = sorted((r for r in english_items if r["status"] == "verified"), key=lambda r: r["id"])
    calib = [r for i, r in enumerate(rows) if i % 4 == 0][:10]
    held = [r for i, r in enumerate(rows) if i % 4 == 2]
    return calib, held


@pytest.fixture(scope="session")
def calibration_windows(calibration_split, float_bundle):
    from whisper_genio.tools.quantize.calibrate import build_windows

    calib, _ = calibration_split
    return build_windows([], files=[r["path"] for r in calib], max_windows=2)


@pytest.fixture(scope="session")
def heldout_window(calibration_split):
    """(mel, content frames, transcript, path) of one held-out clip of a few seconds."""
    from whisper_genio.tools.quantize.calibrate import single_windows

    _, held = calibration_split
    row = next(r for r in held if 3.0 <= r["seconds"] <= 12.0)
    w = single_windows([row["path"]])
    return w, row


@pytest.fixture(scope="session")
def workspace(float_bundle):
    from whisper_genio.tools.quantize.pipeline import Workspace

    return Workspace(float_bundle)


@pytest.fixture(scope="session")
def onnx_ranges(workspace, calibration_windows):
    return workspace.onnx_ranges(calibration_windows)


@pytest.fixture(scope="session")
def tflite_qsvs(workspace, calibration_windows):
    return workspace.tflite_qsvs(calibration_windows)


@pytest.fixture(scope="session")
def cpu_model(base_checkpoint):
    import whisper_genio

    return whisper_genio.load_model("base", backend="cpu", threads=TEST_THREADS)
