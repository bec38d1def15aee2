"""Files a board exchanges with whisper_genio: the encoder's input windows (``whisper-genio mel``
writes them for ``neuronrt -i``) and the encoder outputs it wrote back (``--encoder-output``,
the replay backend), compared window by window with a reference encoder.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from .. import _core
from ..audio import N_FRAMES, N_SAMPLES, load_audio, pad_or_trim
from ..backends.bundle import DTYPES, LAYOUTS, QUANTIZED
from ..errors import InvalidOptionError


def window_mel(samples: np.ndarray, windows: Any, index: int, convention: str, n_mels: int, pool: Any = None) -> np.ndarray:
    """Window `index`'s mel [n_mels, 3000] under one of two conventions:

    "transcribe": what ``transcribe`` feeds the encoder (openai-whisper's long-form loop): the
        log-mel of the whole recording, normalised by its global maximum, window i = frames
        [3000 i, 3000 (i + 1)), zero beyond the audio. ``whisper-genio mel`` writes these.
    "pad_or_trim": openai-whisper's single-window recipe, log_mel_spectrogram(pad_or_trim(chunk))
        of each 30-second chunk of audio on its own.
    """
    if convention == "transcribe":
        size = min(N_FRAMES, windows.content_frames - index * N_FRAMES)
        return windows.window(index * N_FRAMES, max(size, 0), pool)
    if convention == "pad_or_trim":
        chunk = samples[index * N_SAMPLES:(index + 1) * N_SAMPLES]
        return _core.log_mel_spectrogram(pad_or_trim(chunk, N_SAMPLES), n_mels, 0, pool)
    raise InvalidOptionError(f"unknown mel convention {convention!r}: 'transcribe' or 'pad_or_trim'")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def compare_windows(model: Any, audio: Any = None, reference: Any = None) -> list[dict[str, Any]]:
    """Per window of a replay model: its file and time span; with the audio and a `reference`
    model (a CPU encoder), the cosine and max |diff| of the device's states against the
    reference encoder's on the same window. The device's input may have been made either way
    (see window_mel): "transcribe" is tried first, "pad_or_trim" too when that does not match."""
    pipeline = model.pipeline
    samples = None if audio is None else load_audio(audio)
    windows = None if samples is None else _core.MelWindows(samples, model.dims.n_mels, pipeline.pool)
    count = pipeline.window_count
    content = count * N_FRAMES if windows is None else windows.content_frames
    files = list(getattr(pipeline.encoder, "files", [""] * count))
    report = []
    for i in range(count):
        seek = i * N_FRAMES
        size = max(0, min(N_FRAMES, content - seek))
        entry: dict[str, Any] = {"window": i, "file": files[i], "start": seek / 100, "end": (seek + size) / 100}
        if reference is not None and windows is not None:
            with pipeline.lock:
                states = pipeline.encode(None, seek)
            entry.update(_best_match(states, reference, samples, windows, i))
        report.append(entry)
    return report


def _best_match(states: np.ndarray, reference: Any, samples: np.ndarray, windows: Any, index: int) -> dict[str, Any]:
    best: dict[str, Any] = {}
    for convention in ("transcribe", "pad_or_trim"):
        ref = reference.encode(window_mel(samples, windows, index, convention, reference.dims.n_mels))
        c = _cosine(states, ref)
        if not best or c > best["cosine"]:
            best = {"cosine": c, "max_abs_diff": float(np.abs(states - ref).max()), "mel_convention": convention}
        if c >= 0.99:
            break
    return best


def write_mel_files(audio: Any, output_dir: Any, *, n_mels: int = 80, dtype: str = "float32",
                    scale: Optional[float] = None, zero_point: Optional[int] = None, layout: str = "nct") -> list[str]:
    """Writes the encoder input of every 30-second window of `audio` as raw device bytes
    (``mel_000.bin``, ...: [1, n_mels, 3000] in `dtype`, "transcribe" convention, see window_mel):
    the ``-i`` files of ``neuronrt -m hw -a encoder.dla -i mel_000.bin -o output_000.bin``."""
    if dtype not in DTYPES:
        raise InvalidOptionError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if layout not in LAYOUTS:
        raise InvalidOptionError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if dtype in QUANTIZED and scale is None:
        raise InvalidOptionError(f"a {dtype} DLA input needs its quantization scale (and zero point)")
    samples = load_audio(audio)
    windows = _core.MelWindows(samples, n_mels)
    count = max(1, -(-windows.content_frames // N_FRAMES))
    spec = {"dtype": dtype, "scale": 1.0 if scale is None else float(scale),
            "zero_point": 0 if zero_point is None else int(zero_point), "transposed": layout == "ntc"}
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for i in range(count):
        mel = window_mel(samples, windows, i, "transcribe", n_mels)
        path = os.path.join(os.fspath(output_dir), f"mel_{i:03d}.bin")
        with open(path, "wb") as f:
            f.write(_core.quantize(mel, spec))
        paths.append(path)
    return paths
