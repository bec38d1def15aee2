"""``whisper-genio export``: the encoder as TFLite and ONNX, plus the model bundle the runtime loads.

    from whisper_genio.tools.export import export_bundle
    bundle = export_bundle("base", "bundle/")        # encoder.tflite, encoder.onnx, model.pt,
                                                     # tokenizer.json, manifest.json

Both encoders take the fixed input ``mel`` [1, n_mels, 3000] float32 and give ``states``
[1, n_audio_ctx, n_audio_state] float32, for every Whisper size.

* TFLite (float32, what ``ncc-tflite`` takes) is converted by litert-torch from openai-whisper's
  ``AudioEncoder``. TFLite has no LayerNorm op, so the converter writes each LayerNorm as
  MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL, SUB (the statistics) followed by the
  normalising MUL/ADD and the affine MUL/ADD. Squaring the residual stream's outlier (about -550 in
  whisper-base) gives ~3e5, which no integer grid shared with ordinary variances can hold, so
  ``whisper-genio quantize`` keeps exactly these statistics ops in float (see
  ``tools/quantize/tflite_quant.py``); the normalising and affine ops are quantized like the rest.
* ONNX (opset >= 17, torch.onnx) has the fused ``LayerNormalization`` op.
* The bundle also holds the full checkpoint in openai-whisper's ``.pt`` layout (float16; the
  decoder runs from it on the CPU and the encoder weights are the float reference) and the
  tokenizer, described by ``manifest.json`` (``whisper_genio/backends/bundle.py``):
  ``load_model("bundle/model.pt", encoder_model="bundle/")``.

torch, litert-torch, onnx and openai-whisper are needed at export time only
(``pip install 'whisper_genio[export]'``).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time
import warnings
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import InvalidOptionError
from .export_onnx import (_need, checkpoint_of, explicit_attention, export_encoder_onnx, neuron_ep_record,
                          torch_encoder)

FORMATS = ("tflite", "onnx")
PathLike = Union[str, os.PathLike]


def prescale_layernorms(encoder: Any, scale: float) -> int:
    """Makes every LayerNorm compute its statistics on x / scale (with eps / scale²): the same
    function (LN is scale-invariant; a power of two is exact in float), but the squared deviations
    the split LayerNorm computes shrink by scale², so an FP16 device does not overflow (whisper-base's
    residual outlier of ~550 squares to ~3e5 > 65504; divided by 8 it squares to ~4.8e3)."""
    torch = _need("torch")
    F = torch.nn.functional

    class PrescaledLayerNorm(torch.nn.Module):
        def __init__(self, ln: Any) -> None:
            super().__init__()
            self.ln = ln
            self.inv = 1.0 / scale
            self.eps = ln.eps / (scale * scale)

        def forward(self, x: Any) -> Any:
            return F.layer_norm(x.float() * self.inv, self.ln.normalized_shape, self.ln.weight, self.ln.bias,
                                self.eps).type(x.dtype)

    count = 0
    for parent in list(encoder.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.LayerNorm):
                setattr(parent, name, PrescaledLayerNorm(child))
                count += 1
    return count


def export_encoder_tflite(model_name_or_checkpoint: Any, path: PathLike, *, layernorm_prescale: float = 8.0) -> pathlib.Path:
    """Writes the encoder as a float32 TFLite flatbuffer (litert-torch); returns the path.

    layernorm_prescale: see :func:`prescale_layernorms` (1 = the plain LayerNorm)."""
    torch = _need("torch")
    litert_torch = _need("litert_torch")
    ckpt = checkpoint_of(model_name_or_checkpoint)
    dims = ckpt.dims
    encoder = torch_encoder(ckpt)
    if layernorm_prescale != 1:
        if layernorm_prescale <= 0 or np.log2(layernorm_prescale) % 1:
            raise InvalidOptionError(f"layernorm_prescale must be a power of two, got {layernorm_prescale}")
        prescale_layernorms(encoder, float(layernorm_prescale))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mel = torch.zeros(1, dims.n_mels, 2 * dims.n_audio_ctx, dtype=torch.float32)
    import contextlib
    import io

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        with torch.no_grad(), explicit_attention():
            edge = litert_torch.convert(encoder, (mel,))
        edge.export(str(path))
    return path


def tflite_io(path: PathLike) -> dict[str, Any]:
    """Names, dtypes, shapes and quantization of a TFLite model's input and output."""
    from .quantize.litert import interpreter

    it = interpreter(path)
    out: dict[str, Any] = {}
    for role, d in (("input", it.get_input_details()[0]), ("output", it.get_output_details()[0])):
        scale, zp = d.get("quantization", (0.0, 0))
        out[role] = {"name": d["name"], "shape": [int(x) for x in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                     "scale": float(scale), "zero_point": int(zp)}
    return out


def write_checkpoint(ckpt: Any, path: PathLike, dtype: str = "float16") -> pathlib.Path:
    """The whole checkpoint in openai-whisper's .pt layout ({"dims", "model_state_dict"})."""
    torch = _need("torch")
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32).astype(dtype)) for k, v in ckpt.tensors.items()}
    path = pathlib.Path(path)
    torch.save({"dims": ckpt.dims.to_dict(), "model_state_dict": state}, str(path))
    return path


def export_bundle(model: Any, out_dir: PathLike, *, formats: Sequence[str] = FORMATS, opset: int = 17,
                  checkpoint: bool = True, soc: Optional[str] = None, log: Any = None) -> Any:
    """Exports the encoder in `formats` into `out_dir` and writes the bundle manifest; returns the
    loaded :class:`whisper_genio.backends.bundle.Bundle`."""
    from ..backends.bundle import default_tensor, load_bundle, make_manifest, write_manifest
    from ..checkpoints import find_tokenizer

    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise InvalidOptionError(f"formats must be among {', '.join(FORMATS)}, got {list(formats)}")
    say = log or (lambda *_: None)
    ckpt = checkpoint_of(model)
    dims = ckpt.dims
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    name = str(model) if isinstance(model, (str, os.PathLike)) else ""
    if "tflite" in formats:
        t0 = time.perf_counter()
        path = export_encoder_tflite(ckpt, out / "encoder.tflite")
        io = tflite_io(path)
        say(f"encoder.tflite: {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.0f} s")
        entry: dict[str, Any] = {
            "file": path.name, "exporter": "litert-torch",
            "input": default_tensor(dims, "input").to_json() | {"name": io["input"]["name"]},
            "output": default_tensor(dims, "output").to_json() | {"name": io["output"]["name"]},
            "layernorm": "split by the converter, statistics on x/8 (FP16-safe); whisper-genio quantize keeps the "
                         "statistics in float"}
        if soc:
            from .ncc import ncc_command

            entry["compiler"] = {"tool": "ncc-tflite", "soc": soc,
                                 "command": ncc_command(path.name, "encoder.dla", soc=soc, float_ops=True)}
        entries["tflite"] = entry
    if "onnx" in formats:
        t0 = time.perf_counter()
        path = export_encoder_onnx(ckpt, out / "encoder.onnx", opset=opset)
        say(f"encoder.onnx: {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.0f} s")
        entries["onnx"] = {"file": path.name, "opset": opset, "exporter": "torch.onnx (TorchScript)",
                           "layernorm": "LayerNormalization (fused)", "neuron_ep": neuron_ep_record(path, say)}
    extra: dict[str, Any] = {}
    ck_name = None
    if checkpoint:
        ck_name = "model.pt"
        write_checkpoint(ckpt, out / ck_name)
        try:
            tok = find_tokenizer(ckpt)
            shutil.copyfile(tok, out / pathlib.Path(tok).name)
            extra["tokenizer"] = pathlib.Path(tok).name
        except FileNotFoundError:
            pass
    manifest = make_manifest(dims, model=name, checkpoint=ck_name, onnx=entries.get("onnx"),
                             tflite=entries.get("tflite"), extra=extra)
    write_manifest(out, manifest)
    return load_bundle(out)
