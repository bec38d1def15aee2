"""`whisper-genio doctor` on this machine and on fake Genio file trees (device tree, /etc, /dev,
firmware, tools), with the STAND-IN Neuron runtime (NOT MediaTek's) for the library checks and
the --dla round trip."""

from __future__ import annotations

import json
import pathlib

import pytest

from whisper_genio import socs
from whisper_genio.tools import doctor
from whisper_genio.cli import main
from whisper_genio.dims import ModelDims

import standin

BASE = ModelDims.for_size("base")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return standin.build(tmp_path_factory.mktemp("standin"), "full")


@pytest.fixture()
def control(lib):
    c = standin.Control(lib)
    c.reset()
    yield c
    c.reset()


def _write(root: pathlib.Path, rel: str, data: bytes = b"", mode: int = 0o644) -> pathlib.Path:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    p.chmod(mode)
    return p


def _genio_700(root: pathlib.Path) -> pathlib.Path:
    _write(root, "/proc/device-tree/compatible", b"mediatek,genio-700-evk\0mediatek,mt8390\0mediatek,mt8188\0")
    _write(root, "/etc/apusys/mt8188/nhw", b"settings")
    _write(root, "/dev/apusys", b"", 0o666)
    _write(root, "/dev/dma_heap/system", b"", 0o666)
    _write(root, "/usr/lib/firmware/mediatek/mt8188/apusys.sig.img", b"fw")
    _write(root, "/usr/lib/libneuronusdk_runtime.mtk.so.6.3.3", b"")
    (root / "usr/lib/libneuronusdk_runtime.mtk.so.6").symlink_to("libneuronusdk_runtime.mtk.so.6.3.3")
    script = "#!/bin/sh\necho 'dlopen libneuronusdk_runtime.mtk.so'\necho 'Version: 6.3.3'\n"
    _write(root, "/usr/sbin/neuronrt", script.encode(), 0o755)
    _write(root, "/usr/sbin/ncc-tflite", b"#!/bin/sh\necho 'ncc-tflite version 6.3.3'\n", 0o755)
    return root


@pytest.mark.parametrize("compatible,board,arch", [
    (["mediatek,genio-350-evk", "mediatek,mt8365"], "Genio 350", None),
    (["mediatek,genio-510-evk", "mediatek,mt8370", "mediatek,mt8188"], "Genio 510", "mdla3.0"),
    (["mediatek,genio-700-evk", "mediatek,mt8390", "mediatek,mt8188"], "Genio 700", "mdla3.0"),
    (["mediatek,genio-1200-evk", "mediatek,mt8395", "mediatek,mt8195"], "Genio 1200", "mdla2.0"),
    (["mediatek,mt8195"], "Genio 1200", "mdla2.0"),
    (["mediatek,mt8371"], "Genio 520", "mdla5.3,edma3.6"),
    (["mediatek,genio-720-evk", "mediatek,mt8391", "mediatek,mt8189"], "Genio 720", "mdla5.3,edma3.6"),
])
def test_soc_table(compatible, board, arch):
    soc = socs.identify_soc(compatible)
    assert soc is not None and soc.board == board and soc.arch == arch
    if arch:
        assert f"--arch={arch}" in soc.compile_flags and "--relax-fp32" in soc.compile_flags
    else:
        assert soc.mdla is None and "NNAPI" in soc.note
    assert socs.identify_soc(["raspberrypi,4-model-b", "brcm,bcm2711"]) is None


def test_a_genio_700_with_everything_in_place(tmp_path, lib, control):
    root = _genio_700(tmp_path / "root")
    dla = standin.write_model(tmp_path / "encoder.dla", BASE.n_mels * 3000, 1500 * 512, alpha=0.1)
    r = doctor.run_doctor(root=str(root), env={"PATH": "/nonexistent", "WHISPER_GENIO_DMA_HEAP": "none"},
                          library=str(lib), dla=str(dla), model=BASE)
    status = {c.name: c.status for c in r.checks}
    assert r.soc.board == "Genio 700" and r.soc.soc == "MT8390"
    for name in ("soc", "neuron runtime", "nhw", "apu devices", "apu firmware", "dma-heap", "ncc-tflite", "neuronrt",
                 "dla round trip"):
        assert status[name] == "ok", (name, r.get(name))
    assert "6.3.3" in r.get("neuron runtime").detail and "V1+V2" in r.get("neuron runtime").detail
    assert "Version: 6.3.3" in r.get("neuronrt").detail
    assert "libneuronusdk_runtime.mtk.so.6 -> libneuronusdk_runtime.mtk.so.6.3.3 (6.3.3)" in r.get("neuron libraries").detail
    assert "--arch=mdla3.0" in r.get("compile flags").detail
    assert r.round_trip["api"] == "v2" and r.round_trip["output_zero_copy"] is True
    assert "self-test passed" in r.round_trip["detail"]
    steps = {s.step: s.status for s in r.checklist}
    assert steps == {1: "pass", 2: "pass", 3: "pass", 4: "pass", 5: "pass", 6: "not checked", 7: "not checked",
                     8: "not checked", 9: "not checked", 10: "not checked", 11: "not checked"}
    assert "ncc-tflite --arch=mdla3.0" in r.checklist[3].command
    assert not r.failed
    json.dumps(r.to_dict())  # serialisable
    text = doctor.format_report(r)
    assert "neuron (with an encoder DLA)" in text
    assert "PASS" in doctor.format_checklist(r)


def test_missing_pieces_come_with_their_fix(tmp_path, lib, control):
    root = tmp_path / "bare"
    _write(root, "/proc/device-tree/compatible", b"mediatek,mt8395\0")
    r = doctor.run_doctor(root=str(root), env={"PATH": "/nonexistent"}, library=str(tmp_path / "absent.so"))
    by = {c.name: c for c in r.checks}
    assert by["neuron runtime"].status == "missing" and "absent.so" in by["neuron runtime"].detail
    assert "packagegroup-rity-mtk-neuropilot" in by["neuron runtime"].fix
    assert by["nhw"].status == "missing" and "/etc/apusys/mt8195/nhw" in by["nhw"].fix
    assert by["apu devices"].status == "missing" and by["apu devices"].fix
    assert by["dma-heap"].status == "warn"
    assert by["ncc-tflite"].status == "missing" and by["neuronrt"].status == "missing"
    steps = {s.step: s.status for s in r.checklist}
    assert steps[1] == "pass" and steps[2] == "fail" and steps[3] == "fail" and steps[5] == "not checked"
    # with a runtime that latches its input, the DLA round trip fails (and so does doctor's exit code)
    control.set_latch(True)
    dla = standin.write_model(tmp_path / "encoder.dla", BASE.n_mels * 3000, 1500 * 512)
    r = doctor.run_doctor(root=str(root), env={"PATH": "/nonexistent"}, library=str(lib), dla=str(dla), model=BASE)
    assert r.get("dla round trip").status == "ok"  # the backend uses V2, which re-reads its input
    assert r.round_trip["v1_self_test"].startswith("fail") and "latch" in r.round_trip["v1_self_test"]
    assert "V1 API: the input latches" in r.round_trip["detail"]


def test_off_board(tmp_path, lib):
    r = doctor.run_doctor(root=str(tmp_path), env={"PATH": "/nonexistent"}, library=str(tmp_path / "absent.so"))
    assert r.soc is None and r.get("soc").status == "info" and "not a Genio board" in r.get("soc").detail
    assert r.checklist[0].status == "fail"
    assert "cpu" in doctor.format_report(r).splitlines()[-2]


def test_cli_doctor_json_and_checklist(tmp_path, lib, control, capsys, monkeypatch):
    monkeypatch.setenv("WHISPER_GENIO_NEURON_LIB", str(lib))
    # a linear stand-in map computes no encoder: the accuracy self-check has tests of its own
    # (test_neuron_backend.py::test_accuracy_self_check*)
    monkeypatch.setenv("WHISPER_GENIO_NPU_SELF_CHECK", "0")
    dla = standin.write_model(tmp_path / "encoder.dla", BASE.n_mels * 3000, 1500 * 512, alpha=0.5)
    assert main(["doctor", "--json", "--dla", str(dla), "--model", "base"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [c["name"] for c in report["checks"]]
    assert names[:3] == ["whisper_genio", "soc", "neuron runtime"] and "dla round trip" in names
    assert report["round_trip"]["status"] == "ok" and report["failed"] is False
    assert main(["doctor", "--checklist"]) == 0
    out = capsys.readouterr().out
    assert "on-device checklist" in out and "whisper-genio doctor --dla encoder.dla" in out
    # a DLA whose size does not match the model: FAIL, exit status 1
    wrong = standin.write_model(tmp_path / "wrong.dla", BASE.n_mels * 3000, 1500 * 384)
    assert main(["doctor", "--dla", str(wrong), "--model", "base"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] dla round trip" in out and "expected 3072000 bytes" in out
