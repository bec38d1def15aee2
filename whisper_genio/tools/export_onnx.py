"""Export a Whisper encoder to ONNX with a fixed [1, n_mels, 3000] input.

    from whisper_genio.tools.export_onnx import export_encoder_onnx
    export_encoder_onnx("base", "encoder.onnx")            # a size name, a path, or a Checkpoint

The graph is openai-whisper's own ``AudioEncoder`` holding the checkpoint's weights (read by
whisper_genio's torch-free loaders), exported by ``torch.onnx`` with input ``mel``
[1, n_mels, 3000] float32 and output ``states`` [1, n_audio_ctx, n_audio_state] float32: static
shapes, as MediaTek's NeuronExecutionProvider and ncc-tflite need. From opset 17 on, LayerNorm
is one ``LayerNormalization`` node (its mean, variance and rsqrt stay inside the op, so a QDQ
quantizer cannot put them on an integer grid). torch, onnx and openai-whisper are export-time
dependencies only (``pip install 'whisper_genio[export]'``); running the exported file needs
only onnxruntime. ``whisper_genio.tools.export`` adds TFLite and the model bundle.
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


def _need(module: str, extra: str = "export") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise WhisperGenioError(f"this needs {module.split('.')[0]} ({e}): pip install 'whisper_genio[{extra}]'") from None


def checkpoint_of(model_name_or_checkpoint: Any) -> Any:
    from ..checkpoints import Checkpoint, resolve

    if isinstance(model_name_or_checkpoint, Checkpoint):
        return model_name_or_checkpoint
    return resolve(model_name_or_checkpoint)


class explicit_attention:
    """Within the block, openai-whisper's attention is written out (q·k, softmax, ·v with constant
    scales) instead of torch's fused scaled_dot_product_attention, whose export computes its scale
    from the tensor's shape at run time: exporters then emit one plain op per step, each of which a
    quantizer can see and a report can name."""

    def __enter__(self) -> None:
        whisper_model = _need("whisper.model")
        self._mha = whisper_model.MultiHeadAttention
        self._saved = getattr(self._mha, "use_sdpa", None)
        if self._saved is not None:
            self._mha.use_sdpa = False

    def __exit__(self, *exc: Any) -> None:
        if self._saved is not None:
            self._mha.use_sdpa = self._saved


def strip_float_casts(model: Any) -> Any:
    """Removes Cast(to=float) nodes (openai-whisper's ``x.float()`` on float32 tensors) in place;
    a cast that produced a graph output hands that name to the tensor it copied."""
    onnx = _need("onnx")
    float_id = onnx.TensorProto.FLOAT
    graph_inputs = {i.name for i in model.graph.input}
    graph_outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    drop = []
    for node in model.graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type != "Cast" or to != float_id:
            continue
        src, dst = node.input[0], node.output[0]
        if dst in graph_outputs:
            if src in graph_inputs or src in graph_outputs:
                continue
            rename[src] = dst  # the producer now writes the output itself
        else:
            rename[dst] = src
        drop.append(node)
    def resolve(name: str) -> str:
        seen = set()
        while name in rename and name not in seen:
            seen.add(name)
            name = rename[name]
        return name
    keep = [n for n in model.graph.node if not any(n is d for d in drop)]
    for n in keep:
        for field in (n.input, n.output):
            names = [resolve(x) if x else x for x in field]
            del field[:]
            field.extend(names)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def torch_encoder(ckpt: Any) -> Any:
    """openai-whisper's AudioEncoder (float32, eval mode) holding the checkpoint's encoder weights."""
    torch = _need("torch")
    whisper_model = _need("whisper.model")
    dims = ckpt.dims
    encoder = whisper_model.AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                                         dims.n_audio_layer)
    state = {name[len("encoder."):]: torch.from_numpy(np.array(value, dtype=np.float32))
             for name, value in ckpt.tensors.items() if name.startswith("encoder.")}
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    return encoder


def export_encoder_onnx(model_name_or_checkpoint: Any, path: Union[str, os.PathLike], opset: int = 17, *,
                        manifest: bool = False) -> pathlib.Path:
    """Writes the encoder of `model_name_or_checkpoint` to `path` (ONNX); returns the path.

    manifest: also write a model-bundle ``manifest.json`` beside it describing the file (its
    folder then loads as ``encoder_model=<folder>``).
    """
    if not isinstance(opset, int) or opset < 17:
        raise InvalidOptionError(f"opset must be an integer >= 17 (LayerNormalization), got {opset!r}")
    torch = _need("torch")
    _need("onnx")
    ckpt = checkpoint_of(model_name_or_checkpoint)
    dims = ckpt.dims
    encoder = torch_encoder(ckpt)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mel = torch.zeros(1, dims.n_mels, 2 * dims.n_audio_ctx, dtype=torch.float32)
    onnx = _need("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        with torch.no_grad(), explicit_attention():
            torch.onnx.export(encoder, (mel,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, do_constant_folding=True, dynamo=False)
    proto = onnx.load(str(path))
    onnx.save(strip_float_casts(proto), str(path))
    if manifest:
        from ..backends.bundle import make_manifest, write_manifest

        name = str(model_name_or_checkpoint) if isinstance(model_name_or_checkpoint, (str, os.PathLike)) else ""
        write_manifest(path.parent, make_manifest(dims, model=name, onnx={"file": path.name, "opset": opset,
                                                                          "exporter": "torch.onnx (TorchScript)"}))
    return path
