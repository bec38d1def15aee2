"""The diagnosis report: it reproduces the A8W8 failure and names its cause with numbers, and
the page renders in a real (headless) browser."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest


@pytest.fixture(scope="module")
def report(float_bundle, calibration_windows, heldout_window, onnx_ranges, tmp_path_factory):
    pytest.importorskip("matplotlib")
    from whisper_genio.tools.report import build_report

    w, row = heldout_window
    out = tmp_path_factory.mktemp("report")
    paths = build_report(float_bundle, "a8w8", out, calibration=calibration_windows, evaluation=w,
                         references=[row["transcript"]], compare=(), isolated_groups=("resid", "logits"))
    return paths, json.loads(paths["json"].read_text())


def test_report_names_the_a8w8_failure_with_numbers(report):
    _, r = report
    s = r["summary"]
    assert s["verdict"] == "FAILS"
    assert r["evaluation"]["sqnr_db"] < 8
    text = " ".join(s["findings"])
    assert "residual stream carries an outlier" in text and "channel" in text
    resid = [l for l in r["layers"] if l["group"] == "resid" and "stats" in l]
    peak = max(l["stats"]["absmax"] for l in resid)
    assert peak > 100  # the outlier channel (~550 in whisper-base)
    assert any(l["stats"].get("zeroed_8bit", 0) > 0.5 for l in resid)  # most residual values round to zero
    sm = [l for l in r["layers"] if l["role"] == "softmax" and "stats" in l]
    assert len(sm) == 6 and all(l["stats"]["probs_zeroed_8bit"] > l["stats"]["probs_zeroed_16bit"] for l in sm)
    assert "SQUARED_DIFFERENCE" in text  # the TFLite LayerNorm note
    assert any("16 bits" in f for f in s["fixes"])
    assert r["isolated"]["resid"]["sqnr_db"] < r["isolated"]["logits"]["sqnr_db"]
    assert len(r["layers"]) > 100 and all("sqnr_db" in l and "cosine" in l for l in r["layers"])
    assert r["macs"]["int8_mac_share"] == 1.0


def test_report_html_has_plots(report):
    paths, _ = report
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert "id='verdict'" in html and "FAILS" in html


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_report_renders_in_a_headless_browser(report, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium/Chrome on PATH (apt-get install chromium)")
    paths, _ = report
    url = paths["html"].resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert "a8w8 FAILS" in dom.stdout and "<img" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,1800", url],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000
    import matplotlib.image as mpimg

    img = mpimg.imread(str(shot))
    assert img.shape[0] >= 1000 and img[..., :3].std() > 0.05  # not a blank page: text and plots drew
