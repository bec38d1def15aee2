"""``whisper-genio validate``: is this encoder output right? Compared with the float reference.

    whisper-genio validate --audio clip.wav --model base --encoder-output output.bin --bundle bundle/
    whisper-genio validate --audio clip.wav --model base --encoder-output output.bin \\
        --dtype int16 --scale 0.00071 --zero-point 0 --host-model bundle/encoder.tflite

The reference is the float32 CPU encoder (``Model.encode``) on the same audio: the first 30 s
window, mel made either way a device input may have been made (``whisper-genio mel``'s
"transcribe" convention or openai-whisper's ``pad_or_trim``; the better match is used and
named). The output under test is a device's raw ``output.bin`` (dtype/scale/zero point/layout
from the arguments or the bundle manifest, dequantized by the same native code the replay and
neuron backends use), or the output of a TFLite/ONNX encoder or of any whisper_genio backend.

Metrics: SQNR (dB) and cosine on the frames that hold audio and on the whole window, max |error|,
relative L2 error, per-frame relative error (and the worst frames), and the transcripts the
float decoder reads from both (greedy) with their word error rate. With ``--host-model`` (the
quantized TFLite/ONNX the DLA was compiled from) it is a three-way check: float vs host
separates the quantization error, host vs device the compiler's/runtime's.

The gate (exit status 1 when it fails) needs all of: SQNR on the speech frames >= min_sqnr_db,
cosine >= min_cosine and transcript WER against the float encoder's <= max_wer. The defaults come
from the study in docs/quantization.md: every scheme whose held-out WER stayed within 1 point of
float measured >= 18 dB on the speech frames, every failing one <= 3 dB.
"""

from __future__ import annotations

import os
import pathlib
import stat
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import InvalidOptionError, ModelLoadError, WhisperGenioError
from ..accuracy import Gate, compare, cosine  # noqa: F401 (validate.Gate, validate.compare)
from .quantize.evaluate import transcribe_states, wer

PathLike = Union[str, os.PathLike]


def calibrate_gate(rows: Sequence[dict], max_delta_wer: float = 0.01) -> dict[str, Any]:
    """From scored schemes ({"sqnr_db", "cosine", "wer", "wer_float"}): the SQNR/cosine that
    separate those within `max_delta_wer` of float from the others (midpoint of the gap)."""
    good = [r for r in rows if r["wer"] - r["wer_float"] <= max_delta_wer]
    bad = [r for r in rows if r["wer"] - r["wer_float"] > max_delta_wer]
    lo_good = min((r["sqnr_db"] for r in good), default=float("nan"))
    hi_bad = max((r["sqnr_db"] for r in bad), default=float("nan"))
    cos_good = min((r["cosine"] for r in good), default=float("nan"))
    return {"good_min_sqnr_db": lo_good, "bad_max_sqnr_db": hi_bad, "good_min_cosine": cos_good,
            "suggested_min_sqnr_db": (lo_good + hi_bad) / 2 if bad and good else lo_good}


def read_output(path: PathLike, dims: Any, fmt: Any) -> np.ndarray:
    """A device's raw encoder output as float32 [n_audio_ctx, d] (native dequantization).
    Raises InvalidOptionError naming the size it has and what it would fit."""
    from .. import _core
    from ..backends.replay import ReplayFormat

    fmt = ReplayFormat.parse(fmt)
    t = fmt.tensor(dims)
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):  # a FIFO would block, a directory or device is no output file
        raise ModelLoadError(f"{path}: not a regular file")
    raw = pathlib.Path(path).read_bytes()
    try:
        return np.asarray(_core.dequantize(raw, t.native("output"), dims.n_audio_ctx, dims.n_audio_state), np.float32)
    except InvalidOptionError as e:  # the size: what it has, and what it would fit
        raise ModelLoadError(f"{path}: {e}") from None


def run_model_file(path: PathLike, mel: np.ndarray) -> np.ndarray:
    p = pathlib.Path(path)
    if p.suffix == ".tflite":
        from .quantize import tflite_quant

        return tflite_quant.run(p, mel)
    if p.suffix == ".onnx":
        from .quantize import onnx_qdq

        return onnx_qdq.run(p, mel)
    raise InvalidOptionError(f"{p}: expected an encoder .tflite or .onnx")


def output_format_of_bundle(bundle_dir: PathLike) -> dict:
    """The output description of a bundle's DLA, else of its TFLite (the DLA compiled from it
    keeps its I/O types)."""
    from ..backends.bundle import load_bundle

    b = load_bundle(bundle_dir)
    for kind in ("dla", "tflite"):
        art = b.artifacts.get(kind)
        if art is not None:
            o = art.output
            return {"dtype": o.dtype, "scale": o.scale, "zero_point": o.zero_point, "layout": o.layout or "ntc"}
    raise InvalidOptionError(f"{bundle_dir}: the bundle has neither a DLA nor a TFLite encoder")




def validate(audio: PathLike, *, model: Any = "base", encoder_output: Optional[PathLike] = None,
             output_format: Optional[Any] = None, bundle: Optional[PathLike] = None,
             encoder_model: Optional[PathLike] = None, states: Optional[np.ndarray] = None,
             host_model: Optional[PathLike] = None, gate: Gate = Gate(), transcripts: bool = True,
             threads: int = 2, language: Optional[str] = None) -> dict[str, Any]:
    """Validates one encoder output (see the module docstring); returns the metrics and
    result["passed"]."""
    from .. import _core
    from ..audio import HOP_LENGTH, N_FRAMES, load_audio
    from ..model import Model, load_model
    from .device_files import window_mel

    ref_model = model if isinstance(model, Model) else load_model(model, backend="cpu", threads=threads)
    dims = ref_model.dims
    samples = load_audio(os.fspath(audio))
    frames = max(1, min(dims.n_audio_ctx, -(-len(samples) // (2 * HOP_LENGTH))))
    sources = [s for s in (encoder_output, encoder_model, states) if s is not None]
    if len(sources) != 1:
        raise InvalidOptionError("give exactly one of: encoder_output (a device output.bin), encoder_model "
                                 "(.tflite/.onnx) or states")
    result: dict[str, Any] = {"audio": os.fspath(audio), "model": ref_model.source}
    if encoder_output is not None:  # read first: a file that is no output at all fails before any encoding
        fmt = output_format
        if fmt is None and bundle is not None:
            fmt = output_format_of_bundle(bundle)
        fmt = fmt or {"dtype": "float32"}
        result["format"] = dict(fmt) if isinstance(fmt, dict) else str(fmt)
        result["under_test"] = os.fspath(encoder_output)
        try:
            x = read_output(encoder_output, dims, fmt)
        except (ModelLoadError, InvalidOptionError) as e:  # wrong size or description: a failed check
            result.update(passed=False, failures=[str(e)], error=str(e))
            return result
    windows = _core.MelWindows(samples, dims.n_mels, ref_model.pipeline.pool)
    mels = {c: window_mel(samples, windows, 0, c, dims.n_mels, ref_model.pipeline.pool)
            for c in ("pad_or_trim", "transcribe")}
    refs = {c: np.array(ref_model.encode(m), np.float32) for c, m in mels.items()}
    if encoder_model is not None:  # a model file: run it on the better-matching mel is meaningless; use pad_or_trim
        result["under_test"] = os.fspath(encoder_model)
        x = run_model_file(encoder_model, mels["pad_or_trim"])
    elif states is not None:
        x = np.asarray(states, np.float32).reshape(dims.n_audio_ctx, dims.n_audio_state)
        result["under_test"] = "states"
    with np.errstate(all="ignore"):
        convention = max(refs, key=lambda c: np.nan_to_num(cosine(refs[c][:frames], x[:frames]), nan=-1.0))
    ref = refs[convention]
    result["mel_convention"] = convention
    m = compare(ref, x, frames)
    result.update(m)
    bad = ~np.isfinite(x)
    if bad.any():  # a misread output (wrong dtype, int16 read as float16) or a broken device: say where
        first = int(np.flatnonzero(bad)[0])
        result["non_finite"] = {"count": int(bad.sum()), "frame": first // x.shape[1], "channel": first % x.shape[1]}
    if host_model is not None:
        result["three_way"] = _three_way(host_model, mels[convention], ref, x, frames, gate)
    if transcripts:
        lang = language or ("en" if not ref_model.is_multilingual else ref_model.detect_language(mels[convention])[0])
        result.update(_transcripts(ref_model, ref, x, lang))
    why = gate.check(result)
    if "non_finite" in result:
        nf = result["non_finite"]
        why.insert(0, f"{nf['count']} non-finite value(s) in the output, the first at frame {nf['frame']}, channel "
                      f"{nf['channel']}")
    result["gate"] = {"min_sqnr_db": gate.min_sqnr_db, "min_cosine": gate.min_cosine, "max_wer": gate.max_wer}
    result["passed"] = not why
    result["failures"] = why
    del N_FRAMES
    return result


def _three_way(host_model: PathLike, mel: np.ndarray, ref: np.ndarray, x: np.ndarray, frames: int,
               gate: Gate) -> dict[str, Any]:
    """The host's run of the same quantized model between the float reference and the device:
    which of the two lost the accuracy."""
    h = run_model_file(host_model, mel)
    out = {"host_model": os.fspath(host_model), "float_vs_host": compare(ref, h, frames),
           "host_vs_device": compare(h, x, frames)}
    q, c = out["float_vs_host"]["sqnr_db"], out["host_vs_device"]["sqnr_db"]
    out["verdict"] = (
        "the quantization itself loses the accuracy (float vs host is already poor)" if q < gate.min_sqnr_db else
        "the device differs from its own host model: compiler/runtime or I/O (scale, layout) error"
        if c < gate.min_sqnr_db else "quantization and device both within tolerance")
    return out


def _transcripts(ref_model: Any, ref: np.ndarray, x: np.ndarray, language: str) -> dict[str, Any]:
    """Both states decoded, and the WER between the transcripts."""
    out: dict[str, Any] = {"transcript_reference": transcribe_states(ref_model, ref, language=language)}
    try:
        out["transcript"] = transcribe_states(ref_model, x, language=language)
        out["wer"] = wer([out["transcript_reference"]], [out["transcript"]])
    except WhisperGenioError as e:  # states the decoder refuses (NaN/Inf): nothing transcribes
        out.update(transcript="", transcript_error=str(e), wer=1.0)
    return out


def format_result(r: dict) -> str:
    if "error" in r:
        return f"FAIL: {r['under_test']}: {r['error']}"
    lines = [f"{'PASS' if r['passed'] else 'FAIL'}: {r['under_test']} vs the float CPU encoder on {r['audio']}",
             f"  SQNR {r['sqnr_db']:.1f} dB on {r['speech_frames']} speech frames ({r['sqnr_window_db']:.1f} dB whole "
             f"window), cosine {r['cosine']:.5f}, max |error| {r['max_abs']:.3g}, relative error "
             f"{100 * r['relative_error']:.2f} %",
             f"  per frame: median relative error {100 * r['per_frame_relative_error']['median']:.2f} %, 95th pct "
             f"{100 * r['per_frame_relative_error']['p95']:.2f} %, worst frames " +
             ", ".join(f"{w['frame']} ({100 * w['relative_error']:.0f} %)"
                       for w in r['per_frame_relative_error']['worst_frames'][:3]),
             f"  mel convention: {r['mel_convention']}"]
    if "transcript" in r:
        lines.append(f"  float:  {r['transcript_reference'].strip()}")
        lines.append(f"  tested: {r['transcript'].strip()}" +
                     (f" (not decodable: {r['transcript_error']})" if "transcript_error" in r else ""))
        lines.append(f"  transcript WER vs float: {100 * r['wer']:.1f} %")
    if "three_way" in r:
        tw = r["three_way"]
        lines.append(f"  three-way: float vs host {tw['float_vs_host']['sqnr_db']:.1f} dB, host vs device "
                     f"{tw['host_vs_device']['sqnr_db']:.1f} dB: {tw['verdict']}")
    for f in r["failures"]:
        lines.append(f"  gate: {f}")
    return "\n".join(lines)
