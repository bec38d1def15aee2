"""Voice activity detection: where the speech is, so that silence is never decoded.

The model is Silero VAD (ONNX, run by onnxruntime), taken from an installed package that ships it
(``pip install --no-deps silero-vad``: its wheel is pure Python plus the ONNX files; the PyTorch
it asks for is for its own PyTorch path, which whisper_genio does not use). The options keep
faster-whisper's names and defaults (``vad_parameters``), and so does the state machine that
turns the 32 ms frame probabilities into speech chunks. ``SpeechMap`` maps times in the
speech-only audio back to the recording.
"""

from __future__ import annotations

import bisect
import dataclasses
import importlib.util
import math
import pathlib
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from .audio import SAMPLE_RATE
from .errors import BackendUnavailableError, InvalidOptionError

FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame each frame is given
BLOCK = 512  # frames per call of the sequence model (16 s of audio)
# (package, path inside it) of the Silero model files whisper_genio can use, in order of preference:
# the sequence model (one call per block of frames, the same probabilities) before the streaming one.
MODEL_FILES = (("silero_vad", "data/silero_vad_16k_sequence.onnx"), ("silero_vad", "data/silero_vad.onnx"),
               ("faster_whisper", "assets/silero_vad_v6.onnx"))


@dataclass(frozen=True)
class VadOptions:
    """faster-whisper's VadOptions: names, meanings and defaults.

    threshold: speech probability above which a frame is speech; neg_threshold: below which it is
    silence again (None: threshold - 0.15); min_speech_duration_ms: shorter speech is dropped;
    max_speech_duration_s: longer speech is split (at a silence of at least 98 ms if there is one);
    min_silence_duration_ms: the silence that ends a chunk; speech_pad_ms: padding on each side."""

    threshold: float = 0.5
    neg_threshold: Optional[float] = None
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float = float("inf")
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400

    def __post_init__(self) -> None:
        for name in ("threshold", "neg_threshold"):
            v = getattr(self, name)
            if v is None and name == "neg_threshold":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise InvalidOptionError(f"vad_parameters {name} must be a probability in [0, 1], got {v!r}")
        for name in ("min_speech_duration_ms", "min_silence_duration_ms", "speech_pad_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e9:
                raise InvalidOptionError(f"vad_parameters {name} must be milliseconds >= 0, got {v!r}")
        v = self.max_speech_duration_s
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v <= 0:
            raise InvalidOptionError(f"vad_parameters max_speech_duration_s must be seconds > 0, got {v!r}")

    @classmethod
    def parse(cls, value: Union["VadOptions", Mapping[str, Any], None]) -> "VadOptions":
        if value is None:
            return cls()
        if isinstance(value, VadOptions):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise InvalidOptionError(f"vad_parameters: unknown field(s) {', '.join(sorted(unknown))}")
            return cls(**value)
        raise InvalidOptionError(f"vad_parameters must be a dict or VadOptions, got {value!r}")


def model_path() -> pathlib.Path:
    """The Silero VAD ONNX file of the first installed package that ships it."""
    for package, inner in MODEL_FILES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = pathlib.Path(list(spec.submodule_search_locations)[0]) / inner
        if path.is_file():
            return path
    raise BackendUnavailableError("no Silero VAD model is installed: pip install --no-deps silero-vad "
                                  "(its ONNX model; whisper_genio runs it with onnxruntime)")


class SileroVad:
    """The Silero model on onnxruntime: the speech probability of each 512-sample frame. The model
    carries an LSTM state from frame to frame, so frames go in order; `reset` starts a new
    stream. Not thread-safe: one per stream (the onnxruntime session is shared)."""

    _sessions: dict[str, Any] = {}
    _lock = threading.Lock()

    def __init__(self, path: Optional[pathlib.Path] = None) -> None:
        try:
            import onnxruntime
        except ImportError as e:
            raise BackendUnavailableError(f"voice activity detection needs onnxruntime ({e}): "
                                          "pip install 'whisper_genio[vad]'") from None
        key = str(path or model_path())
        with SileroVad._lock:  # one session per model file for the process: run() is thread-safe
            if key not in SileroVad._sessions:
                so = onnxruntime.SessionOptions()
                so.intra_op_num_threads = 1
                so.inter_op_num_threads = 1
                so.log_severity_level = 3
                try:
                    SileroVad._sessions[key] = onnxruntime.InferenceSession(
                        key, sess_options=so, providers=["CPUExecutionProvider"])
                except Exception as e:  # onnxruntime raises its own types for unreadable models
                    raise BackendUnavailableError(f"the VAD model {key} could not be loaded: {e}") from None
        self._session = SileroVad._sessions[key]
        inputs = {i.name for i in self._session.get_inputs()}
        self.sequence = {"input", "h", "c"} <= inputs
        if not self.sequence and not {"input", "state", "sr"} <= inputs:
            raise BackendUnavailableError(f"{key} is not a Silero VAD model (inputs {sorted(inputs)})")
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities of the frames of `samples` (the last one zero-padded to a whole frame)."""
        x = np.asarray(samples, np.float32).reshape(-1)
        frames = np.pad(x, (0, (-len(x)) % FRAME)).reshape(-1, FRAME)
        if not len(frames):
            return np.zeros(0, np.float32)
        # each frame goes in with the last CONTEXT samples of the frame before it
        context = np.concatenate([self._context[None], frames[:-1, -CONTEXT:]])
        inputs = np.concatenate([context, frames], axis=1)
        self._context = frames[-1, -CONTEXT:].copy()
        if self.sequence:
            return np.concatenate([self._run_block(inputs[i:i + BLOCK]) for i in range(0, len(inputs), BLOCK)])
        out = np.empty(len(inputs), np.float32)
        sr = np.array(SAMPLE_RATE, np.int64)
        for i, frame in enumerate(inputs):
            p, self._state = self._session.run(None, {"input": frame[None], "state": self._state, "sr": sr})
            out[i] = p[0, 0]
        return out

    def _run_block(self, block: np.ndarray) -> np.ndarray:
        p, h, c = self._session.run(["speech_probs", "hn", "cn"],
                                    {"input": block, "h": self._state[:1], "c": self._state[1:]})
        self._state = np.concatenate([h, c])
        return p.reshape(-1)


def speech_chunks(probs: Sequence[float], n_samples: int, options: VadOptions) -> list[dict[str, int]]:
    """Speech chunks [{"start", "end"}] in samples from frame probabilities (faster-whisper's rules)."""
    o = options
    neg = o.neg_threshold if o.neg_threshold is not None else max(o.threshold - 0.15, 0.01)
    min_speech = SAMPLE_RATE * o.min_speech_duration_ms / 1000
    pad = SAMPLE_RATE * o.speech_pad_ms / 1000
    max_speech = SAMPLE_RATE * o.max_speech_duration_s - FRAME - 2 * pad
    min_silence = SAMPLE_RATE * o.min_silence_duration_ms / 1000
    split_silence = SAMPLE_RATE * 98 / 1000  # where a too-long chunk may be cut
    chunks: list[dict[str, int]] = []
    current: dict[str, int] = {}
    triggered, temp_end, prev_end, next_start = False, 0, 0, 0
    for i, p in enumerate(probs):
        here = FRAME * i
        if p >= o.threshold and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = here
        if p >= o.threshold and not triggered:
            triggered, current = True, {"start": here}
            continue
        if triggered and here - current["start"] > max_speech:  # too long: cut at the last pause, or here
            if prev_end:
                chunks.append({"start": current["start"], "end": prev_end})
                triggered = next_start >= prev_end
                current = {"start": next_start} if triggered else {}
            else:
                chunks.append({"start": current["start"], "end": here})
                triggered, current = False, {}
            prev_end = next_start = temp_end = 0
            if not triggered:
                continue
        if p < neg and triggered:
            temp_end = temp_end or here
            if here - temp_end > split_silence:
                prev_end = temp_end
            if here - temp_end < min_silence:
                continue
            if temp_end - current["start"] > min_speech:
                chunks.append({"start": current["start"], "end": temp_end})
            triggered, current, prev_end, next_start, temp_end = False, {}, 0, 0, 0
    if current and n_samples - current["start"] > min_speech:
        chunks.append({"start": current["start"], "end": n_samples})
    return _pad(chunks, pad, n_samples)


def _pad(chunks: list[dict[str, int]], pad: float, n_samples: int) -> list[dict[str, int]]:
    """speech_pad on each side, halved where two chunks are closer than twice the pad."""
    for i, c in enumerate(chunks):
        if i == 0:
            c["start"] = int(max(0, c["start"] - pad))
        if i == len(chunks) - 1:
            c["end"] = int(min(n_samples, c["end"] + pad))
            continue
        gap = chunks[i + 1]["start"] - c["end"]
        if gap < 2 * pad:
            c["end"] += int(gap // 2)
            chunks[i + 1]["start"] = int(max(0, chunks[i + 1]["start"] - gap // 2))
        else:
            c["end"] = int(min(n_samples, c["end"] + pad))
            chunks[i + 1]["start"] = int(max(0, chunks[i + 1]["start"] - pad))
    return chunks


def get_speech_timestamps(samples: np.ndarray, options: Union[VadOptions, Mapping[str, Any], None] = None,
                          vad: Optional[SileroVad] = None) -> list[dict[str, int]]:
    """The speech chunks of 16 kHz samples, in samples."""
    options = VadOptions.parse(options)
    model = vad or SileroVad()
    model.reset()
    return speech_chunks(model.probabilities(samples), len(samples), options)


class SpeechMap:
    """Times in the speech-only audio (the chunks back to back) -> times in the recording."""

    def __init__(self, chunks: Sequence[Mapping[str, int]], n_samples: int = 0) -> None:
        self.recording_seconds = n_samples / SAMPLE_RATE
        self.chunk_ends: list[int] = []  # each chunk's end in the speech-only audio, in samples
        self.silence_before: list[float] = []  # seconds removed before each chunk
        previous_end = removed = 0
        for c in chunks:
            removed += c["start"] - previous_end
            previous_end = c["end"]
            self.chunk_ends.append(c["end"] - removed)
            self.silence_before.append(removed / SAMPLE_RATE)

    def chunk_of(self, t: float, is_end: bool = False) -> int:
        if not self.chunk_ends:
            return -1
        sample = int(t * SAMPLE_RATE)
        if is_end and sample in self.chunk_ends:
            return self.chunk_ends.index(sample)  # an end exactly at a chunk's end belongs to that chunk
        return min(bisect.bisect(self.chunk_ends, sample), len(self.chunk_ends) - 1)

    def original(self, t: float, chunk: Optional[int] = None, is_end: bool = False) -> float:
        if chunk is None:
            chunk = self.chunk_of(t, is_end)
        return round((self.silence_before[chunk] if chunk >= 0 else 0.0) + t, 2)

    def restore(self, segments: list[dict]) -> None:
        """Segment and word times back on the recording's clock. A word stays in the chunk its middle
        is in; a segment with words spans its words."""
        for s in segments:
            words = s.get("words") or []
            for w in words:
                chunk = self.chunk_of((w["start"] + w["end"]) / 2)
                w["start"], w["end"] = self.original(w["start"], chunk), self.original(w["end"], chunk, is_end=True)
            if words:
                s["start"], s["end"] = words[0]["start"], words[-1]["end"]
            else:
                s["start"], s["end"] = self.original(s["start"]), self.original(s["end"], is_end=True)
