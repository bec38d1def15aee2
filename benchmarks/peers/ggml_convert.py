"""Write whisper.cpp's ggml model file from a whisper_genio checkpoint (for the peer benchmark:
whisper.cpp then runs the very weights whisper_genio runs). File layout facts from whisper.cpp's
converter: magic, hyper-parameters, mel filters, the BPE vocabulary, then named tensors
(float16 for matrices, float32 for biases, norms and positional tables).

    python benchmarks/peers/ggml_convert.py base /tmp/ggml-base.bin
"""

from __future__ import annotations

import base64
import struct
import sys

import numpy as np


def tiktoken_vocabulary(multilingual: bool) -> list[bytes]:
    import importlib.util
    import pathlib

    spec = importlib.util.find_spec("whisper")
    assets = pathlib.Path(list(spec.submodule_search_locations)[0]) / "assets"
    path = assets / ("multilingual.tiktoken" if multilingual else "gpt2.tiktoken")
    ranks = {}
    for line in path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[int(rank)] = base64.b64decode(token)
    return [ranks[i] for i in range(len(ranks))]


def convert(name_or_path: str, out_path: str) -> None:
    from whisper_genio import _core
    from whisper_genio.checkpoints import resolve

    ckpt = resolve(name_or_path)
    d = ckpt.dims
    with open(out_path, "wb") as f:
        f.write(struct.pack("i", 0x67676D6C))
        for v in (d.n_vocab, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer, d.n_text_ctx,
                  d.n_text_state, d.n_text_head, d.n_text_layer, d.n_mels, 1):
            f.write(struct.pack("i", v))
        filters = _core.mel_filters(d.n_mels).astype(np.float32)
        f.write(struct.pack("ii", *filters.shape))
        f.write(filters.tobytes())
        vocab = tiktoken_vocabulary(d.is_multilingual)
        f.write(struct.pack("i", len(vocab)))
        for token in vocab:
            f.write(struct.pack("i", len(token)))
            f.write(token)
        keep_f32 = {"encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
                    "decoder.positional_embedding"}
        for name, value in ckpt.tensors.items():
            data = np.asarray(value)
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(data.shape[0], 1)
            f16 = data.ndim >= 2 and name not in keep_f32
            data = data.astype(np.float16 if f16 else np.float32)
            encoded = name.encode()
            f.write(struct.pack("iii", data.ndim, len(encoded), 1 if f16 else 0))
            for i in range(data.ndim):
                f.write(struct.pack("i", data.shape[data.ndim - 1 - i]))
            f.write(encoded)
            f.write(np.ascontiguousarray(data).tobytes())


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
