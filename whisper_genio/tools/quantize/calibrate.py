"""Calibration data: real speech packed into full 30-second encoder windows.

Whisper always encodes 30 s. A 5-second clip fed alone is five sixths padding, and the padding
frames (the log-mel floor) would then dominate every activation statistic. So calibration clips
are concatenated, with a short silence between them, into one stream cut into full 30 s
windows; the last window is filled up with the start of the stream again.

    windows = build_windows(["clips/"], n_mels=80)          # a folder, files, or both
    windows.mels           # float32 [N, n_mels, 3000]: the encoder inputs (openai-whisper's mel)
    windows.content_frames # encoder frames (of 1500) that hold audio, per window
    windows.save("calib.npz"); CalibrationWindows.load("calib.npz")

The mel is whisper_genio's own (the same as ``Model.log_mel``), so the statistics are those of
exactly what the runtime feeds the encoder. Nothing here needs torch.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ...audio import HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, load_audio, pad_or_trim
from ...errors import InvalidOptionError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm")
GAP_SECONDS = 0.25
N_AUDIO_FRAMES = N_FRAMES // 2  # encoder positions per window

PathLike = Union[str, os.PathLike]


def find_audio(sources: Sequence[PathLike]) -> list[pathlib.Path]:
    """Audio files named by `sources` (files, or folders searched non-recursively), sorted per folder."""
    files: list[pathlib.Path] = []
    for s in sources:
        p = pathlib.Path(s)
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise InvalidOptionError(f"calibration audio: {p} is neither a file nor a folder")
    if not files:
        raise InvalidOptionError(f"calibration audio: no audio files ({', '.join(AUDIO_SUFFIXES)}) in "
                                 f"{', '.join(map(str, sources))}")
    return files


@dataclass
class CalibrationWindows:
    """Encoder inputs for calibration (or evaluation): mels and how much of each is audio."""

    mels: np.ndarray  # float32 [N, n_mels, 3000]
    content_frames: np.ndarray  # int32 [N]: encoder positions (of 1500) covered by audio
    sources: list[list[str]] = field(default_factory=list)  # the clips in each window

    def __len__(self) -> int:
        return int(self.mels.shape[0])

    @property
    def n_mels(self) -> int:
        return int(self.mels.shape[1])

    def speech_fraction(self) -> float:
        return float(np.mean(self.content_frames) / N_AUDIO_FRAMES) if len(self) else 0.0

    def subset(self, count: int) -> "CalibrationWindows":
        return CalibrationWindows(self.mels[:count], self.content_frames[:count], self.sources[:count])

    def save(self, path: PathLike) -> pathlib.Path:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, mels=self.mels, content_frames=self.content_frames,
                 sources=np.array(["\n".join(s) for s in self.sources], dtype=object))
        return path

    @classmethod
    def load(cls, path: PathLike) -> "CalibrationWindows":
        with np.load(path, allow_pickle=True) as z:
            return cls(z["mels"].astype(np.float32), z["content_frames"].astype(np.int32),
                       [str(s).split("\n") for s in z["sources"]])


def _log_mel(samples: np.ndarray, n_mels: int) -> np.ndarray:
    from ... import _core

    return _core.log_mel_spectrogram(pad_or_trim(np.ascontiguousarray(samples, np.float32), N_SAMPLES), n_mels, 0)


def pack(clips: Sequence[tuple[str, np.ndarray]], *, max_windows: Optional[int] = None,
         gap_seconds: float = GAP_SECONDS) -> list[tuple[np.ndarray, list[str]]]:
    """Clips (name, 16 kHz samples) -> full 30 s windows of concatenated speech, in order.

    The clips, with `gap_seconds` of silence between them, form one stream that is cut every
    30 s (a clip may continue in the next window); the last window is filled up with the start of
    the stream again, so every window is full of audio."""
    gap = np.zeros(int(gap_seconds * SAMPLE_RATE), np.float32)
    parts: list[np.ndarray] = []
    spans: list[tuple[int, int, str]] = []
    pos = 0
    for name, s in clips:
        if parts:
            parts.append(gap)
            pos += len(gap)
        s = np.asarray(s, np.float32)
        parts.append(s)
        spans.append((pos, pos + len(s), name))
        pos += len(s)
    if not parts or pos == 0:
        return []
    stream = np.concatenate(parts)
    count = -(-len(stream) // N_SAMPLES)
    if max_windows is not None:
        count = min(count, max_windows)
    reps = -(-count * N_SAMPLES // len(stream))
    looped = np.concatenate([stream] + [gap, stream] * (reps))
    out = []
    for i in range(count):
        a, b = i * N_SAMPLES, (i + 1) * N_SAMPLES
        names = []
        for lo, hi, name in spans:
            if lo < min(b, len(stream)) and hi > a:
                names.append(name)
        if b > len(stream):
            names += [n + " (repeat)" for lo, hi, n in spans if lo < b - len(stream) and n not in names]
        out.append((looped[a:b].copy(), names))
    return out


def build_windows(sources: Sequence[PathLike], *, n_mels: int = 80, max_windows: Optional[int] = None,
                  files: Optional[Sequence[PathLike]] = None, gap_seconds: float = GAP_SECONDS,
                  cache: Optional[PathLike] = None) -> CalibrationWindows:
    """Calibration windows from audio folders/files (see the module docstring).

    cache: an .npz file; reused when it was made from the same files (names, sizes, times) and
    settings, else (re)written."""
    paths = list(files) if files is not None else find_audio(sources)
    key = _cache_key(paths, n_mels, max_windows, gap_seconds)
    if cache is not None and pathlib.Path(cache).is_file():
        try:
            with np.load(cache, allow_pickle=True) as z:
                if "key" in z.files and str(z["key"]) == key:
                    return CalibrationWindows.load(cache)
        except (OSError, ValueError):
            pass
    clips = [(pathlib.Path(p).name, load_audio(os.fspath(p))) for p in paths]
    packed = pack(clips, max_windows=max_windows, gap_seconds=gap_seconds)
    mels = np.stack([_log_mel(s, n_mels) for s, _ in packed]).astype(np.float32)
    content = np.array([min(N_AUDIO_FRAMES, -(-len(s) // (2 * HOP_LENGTH))) for s, _ in packed], np.int32)
    out = CalibrationWindows(mels, content, [n for _, n in packed])
    if cache is not None:
        out.save(cache)
        _add_key(cache, key)
    return out


def single_windows(files: Sequence[PathLike], *, n_mels: int = 80) -> CalibrationWindows:
    """One window per clip, padded the way the runtime pads a short recording (evaluation sets)."""
    mels, content, names = [], [], []
    for p in files:
        s = load_audio(os.fspath(p))[:N_SAMPLES]
        mels.append(_log_mel(s, n_mels))
        content.append(min(N_AUDIO_FRAMES, max(1, -(-len(s) // (2 * HOP_LENGTH)))))
        names.append([pathlib.Path(p).name])
    return CalibrationWindows(np.stack(mels).astype(np.float32), np.array(content, np.int32), names)


def speech_mask(content_frames: int, n_frames: int = N_AUDIO_FRAMES) -> np.ndarray:
    m = np.zeros(n_frames, bool)
    m[:max(1, min(n_frames, int(content_frames)))] = True
    return m


def iter_inputs(windows: CalibrationWindows) -> Iterable[np.ndarray]:
    for i in range(len(windows)):
        yield windows.mels[i][None]


def _cache_key(paths: Sequence[PathLike], n_mels: int, max_windows: Optional[int], gap: float) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.fspath(p)}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    h.update(f"stream-v2|{n_mels}|{max_windows}|{gap}".encode())
    return h.hexdigest()


def _add_key(path: PathLike, key: str) -> None:
    with np.load(path, allow_pickle=True) as z:
        data = {k: z[k] for k in z.files}
    data["key"] = np.array(key)
    np.savez(path, **data)
