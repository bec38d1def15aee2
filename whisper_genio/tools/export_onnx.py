"""Export a Whisper encoder to ONNX with a fixed [1, n_mels, 3000] input.

    from whisper_genio.tools.export_onnx import export_encoder_onnx
    export_encoder_onnx("base", "encoder.onnx")            # a size name, a path, or a Checkpoint

The graph is openai-whisper's own ``AudioEncoder`` holding the checkpoint's weights (read by
whisper_genio's torch-free loaders), exported by ``torch.onnx`` with input ``mel``
[1, n_mels, 3000] float32 and output ``states`` [1, n_audio_ctx, n_audio_state] float32: static
shapes, as MediaTek's NeuronExecutionProvider and ncc-tflite need. torch, onnx and
openai-whisper are export-time dependencies only (``pip install 'whisper_genio[export]'``);
running the exported file needs only onnxruntime.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any, Union

import numpy as np

from ..errors import InvalidOptionError, WhisperGenioError

INPUT_NAME = "mel"
OUTPUT_NAME = "states"


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise WhisperGenioError(f"exporting needs {module.split('.')[0]} ({e}): pip install 'whisper_genio[export]'") from None


def export_encoder_onnx(model_name_or_checkpoint: Any, path: Union[str, os.PathLike], opset: int = 17, *,
                        manifest: bool = False) -> pathlib.Path:
    """Writes the encoder of `model_name_or_checkpoint` to `path` (ONNX); returns the path.

    manifest: also write a model-bundle ``manifest.json`` beside it describing the file (its
    folder then loads as ``encoder_model=<folder>``).
    """
    from ..checkpoints import Checkpoint, resolve

    if not isinstance(opset, int) or opset < 14:
        raise InvalidOptionError(f"opset must be an integer >= 14, got {opset!r}")
    torch = _need("torch")
    _need("onnx")
    whisper_model = _need("whisper.model")
    ckpt = model_name_or_checkpoint if isinstance(model_name_or_checkpoint, Checkpoint) else resolve(model_name_or_checkpoint)
    dims = ckpt.dims
    encoder = whisper_model.AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                                         dims.n_audio_layer)
    state = {name[len("encoder."):]: torch.from_numpy(np.array(value, dtype=np.float32))
             for name, value in ckpt.tensors.items() if name.startswith("encoder.")}
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mel = torch.zeros(1, dims.n_mels, 2 * dims.n_audio_ctx, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        with torch.no_grad():
            torch.onnx.export(encoder, (mel,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, do_constant_folding=True, dynamo=False)
    if manifest:
        from ..bundle import make_manifest, write_manifest

        name = str(model_name_or_checkpoint) if isinstance(model_name_or_checkpoint, (str, os.PathLike)) else ""
        write_manifest(path.parent, make_manifest(dims, model=name, onnx={"file": path.name, "opset": opset,
                                                                          "exporter": "torch.onnx (TorchScript)"}))
    return path
