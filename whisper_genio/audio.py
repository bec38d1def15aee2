"""Audio loading and the fixed audio hyper-parameters of Whisper.

The log-mel spectrogram is computed by the C++ core; this module only turns files, bytes or
arrays into 16 kHz mono float32 samples.

Decoding uses the ``ffmpeg`` command-line tool when it is on ``PATH`` (with exactly the conversion
openai-whisper uses, so results are bit-identical), and otherwise libsndfile through ``soundfile``
(WAV, FLAC, OGG/Vorbis/Opus, MP3) plus ``soxr`` resampling. Both paths stream: an hour of audio
needs about the final float32 array (~230 MB) and a few MB more, never a float64 or int16 copy
of the whole signal. Decoded arrays are zero-copy views of a ``bytearray`` (writeable,
C-contiguous, 16-byte aligned by the allocator).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import tempfile
import threading
from typing import IO, Any, Union

import numpy as np

from . import _core
from .errors import AudioDecodeError, BackendUnavailableError, InvalidOptionError

# The front end's constants are the native ones (csrc/include/whisper_genio/audio.h).
SAMPLE_RATE = _core.SAMPLE_RATE  # 16000
N_FFT = _core.N_FFT  # 400
HOP_LENGTH = _core.HOP_LENGTH  # 160
CHUNK_LENGTH = _core.CHUNK_LENGTH  # 30 seconds per window
N_SAMPLES = _core.N_SAMPLES  # 480000 samples in a 30-second chunk
N_FRAMES = _core.N_FRAMES  # 3000 mel frames per chunk
N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2  # the encoder's first convolutions have stride 2
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 10 ms per mel frame
TOKENS_PER_SECOND = SAMPLE_RATE // N_SAMPLES_PER_TOKEN  # 20 ms per audio token

AudioSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray]

DECODERS = ("auto", "ffmpeg", "soundfile")

_INT16_SCALE = np.float32(1.0 / 32768.0)  # a power of two: int16 -> float32 is exact
_READ_BYTES = 1 << 20  # ffmpeg pipe read size (512 Ki samples)
_READ_FRAMES = 1 << 18  # soundfile block size in frames
_STDERR_KEEP = 64 * 1024  # ffmpeg stderr kept for error messages
_ERROR_LINES = 5


class _FloatSink:
    """Append-only float32 storage backed by a ``bytearray``.

    A bytearray grows by ``realloc`` with ~12% slack that is never written (so never resident)
    and, unlike ``ndarray.resize``, does not zero-fill; glibc moves large blocks with ``mremap``
    instead of copying. The result is a zero-copy numpy view of the bytes, so the peak is about
    the final float32 size.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def append(self, samples: np.ndarray) -> None:
        self._buf += memoryview(np.ascontiguousarray(samples, dtype=np.float32)).cast("B")

    def finish(self) -> np.ndarray:
        buf, self._buf = self._buf, bytearray()
        return np.frombuffer(buf, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_audio(source: AudioSource, sr: int = SAMPLE_RATE, *, decoder: str = "auto") -> np.ndarray:
    """Return ``source`` as a mono float32 C-contiguous array at ``sr`` Hz.

    ``source`` is a file path, the bytes of an encoded file, or a numpy array already at ``sr``
    (1-D mono or 2-D ``(frames, channels)``, averaged to mono; float, or int16/int32 PCM which
    is scaled to [-1, 1)). A float32 1-D contiguous array is returned as is, without a copy.

    ``decoder`` selects how files and bytes are decoded: ``"ffmpeg"`` (the ffmpeg CLI),
    ``"soundfile"`` (libsndfile + soxr) or ``"auto"`` (ffmpeg when on PATH).

    Raises ``FileNotFoundError`` for a missing file, :class:`AudioDecodeError` for data that
    cannot be decoded. Audio with no samples gives an empty array.
    """
    if decoder not in DECODERS:
        raise InvalidOptionError(f"decoder must be one of {', '.join(DECODERS)}; got {decoder!r}")
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise InvalidOptionError(f"sample rate must be a positive integer, got {sr!r}")
    sr = int(sr)

    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(source), sr, _pick_decoder(decoder))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, f"audio file not found: {path}", path)
        if _pick_decoder(decoder) == "ffmpeg":
            return _decode_ffmpeg(path, sr, display=path)
        return _decode_soundfile(path, sr, display=path)
    raise InvalidOptionError(
        f"audio source must be a path, bytes or a numpy array, got {type(source).__name__}"
    )


def pad_or_trim(array: np.ndarray, length: int = N_SAMPLES, *, axis: int = -1) -> np.ndarray:
    """Zero-pad or cut ``array`` along ``axis`` to exactly ``length`` items (C-contiguous)."""
    if length < 0:
        raise InvalidOptionError(f"length must be non-negative, got {length}")
    array = np.asarray(array)
    current = array.shape[axis]
    if current > length:
        index = [slice(None)] * array.ndim
        index[axis] = slice(0, length)
        # A view for 1-D input; a copy only when the cut is not contiguous.
        return np.ascontiguousarray(array[tuple(index)])
    if current < length:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, length - current)
        return np.pad(array, widths)
    return np.ascontiguousarray(array)


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


# --------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        if array.shape[1] == 0:
            raise InvalidOptionError("audio array has zero channels")
        if array.shape[1] == 1:
            array = array[:, 0]
        else:
            # Mean in float32 (no float64 temporary); int input is scaled first.
            return _to_float32(array).mean(axis=1, dtype=np.float32)
    elif array.ndim != 1:
        raise InvalidOptionError(
            f"audio array must be 1-D (mono) or 2-D (frames, channels), got shape {array.shape}"
        )
    return np.ascontiguousarray(_to_float32(array))


def _to_float32(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.float32:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    if array.dtype == np.int16:
        return np.multiply(array, _INT16_SCALE, dtype=np.float32)
    if array.dtype == np.int32:
        return np.multiply(array, np.float32(1.0 / 2147483648.0), dtype=np.float32)
    raise InvalidOptionError(
        f"audio array dtype must be float, int16 or int32, got {array.dtype}"
    )


# --------------------------------------------------------------------------------------------
# Files and bytes
# --------------------------------------------------------------------------------------------


def _pick_decoder(decoder: str) -> str:
    if decoder == "soundfile":
        return "soundfile"
    if ffmpeg_available():
        return "ffmpeg"
    if decoder == "ffmpeg":
        raise BackendUnavailableError("decoder='ffmpeg' requested but ffmpeg is not on PATH")
    return "soundfile"


def _decode_bytes(data: bytes, sr: int, decoder: str) -> np.ndarray:
    if decoder == "soundfile":
        return _decode_soundfile(io.BytesIO(data), sr, display="<bytes>")
    # A real file rather than a pipe: container formats such as MP4 need to seek.
    fd, tmp = tempfile.mkstemp(prefix="whisper_genio_", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return _decode_ffmpeg(tmp, sr, display="<bytes>")
    finally:
        os.unlink(tmp)


def _ffmpeg_command(path: str, sr: int) -> list[str]:
    # Same conversion as openai-whisper (s16le, mono, sr Hz, -nostdin -threads 0). The "file:"
    # prefix keeps names like "-x.wav" or "a:b.wav" from being read as options or protocols.
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0",
        "-i", "file:" + os.path.abspath(path),
        "-f", "s16le", "-ac", "1", "-acodec", "pcm_s16le", "-ar", str(sr),
        "-",
    ]  # fmt: skip


def _decode_ffmpeg(path: str, sr: int, *, display: str) -> np.ndarray:
    try:
        proc = subprocess.Popen(
            _ffmpeg_command(path, sr),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
    except OSError as exc:
        raise BackendUnavailableError(f"cannot run ffmpeg: {exc}") from exc

    # Drain stderr on a thread so a chatty ffmpeg can never block on a full pipe.
    stderr_chunks: list[bytes] = []
    drain = threading.Thread(target=_drain, args=(proc.stderr, stderr_chunks), daemon=True)
    drain.start()

    out = _FloatSink()
    raw = bytearray(_READ_BYTES)
    view = memoryview(raw)
    scratch = np.empty(_READ_BYTES // 2, dtype=np.float32)
    carry = 0  # an odd trailing byte waiting for its partner
    try:
        stdout: Any = proc.stdout
        while True:
            n = stdout.readinto(view[carry:])
            if not n:
                break
            have = carry + n
            count = have // 2
            samples = np.frombuffer(raw, dtype="<i2", count=count)
            out.append(np.multiply(samples, _INT16_SCALE, out=scratch[:count], dtype=np.float32))
            del samples  # release the export of raw before it is written again
            carry = have - 2 * count
            if carry:
                raw[0] = raw[have - 1]
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        returncode = proc.wait()
        drain.join()

    if returncode != 0:
        message = _first_lines(b"".join(stderr_chunks)) or f"exit status {returncode}"
        raise AudioDecodeError(f"failed to decode audio {display} with ffmpeg: {message}")
    return out.finish()


def _drain(stream: IO[bytes] | None, keep: list[bytes]) -> None:
    if stream is None:
        return
    kept = 0
    with stream:
        for chunk in iter(lambda: stream.read(8192), b""):
            if kept < _STDERR_KEEP:
                keep.append(chunk)
                kept += len(chunk)


def _first_lines(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return " | ".join(lines[:_ERROR_LINES])


def _decode_soundfile(file: str | io.BytesIO, sr: int, *, display: str) -> np.ndarray:
    try:
        import soundfile as sf
    except (ImportError, OSError) as exc:  # OSError: libsndfile itself missing
        raise BackendUnavailableError(
            f"cannot decode {display}: ffmpeg is not on PATH and soundfile/libsndfile is "
            f"unavailable ({exc})"
        ) from exc

    try:
        with sf.SoundFile(file) as f:
            return _read_and_resample(f, sr)
    except (RuntimeError, ValueError, TypeError, EOFError) as exc:
        # soundfile.LibsndfileError is a RuntimeError; libsndfile reports corrupt data there.
        hint = "" if ffmpeg_available() else " (installing ffmpeg adds many more formats)"
        raise AudioDecodeError(
            f"failed to decode audio {display} with soundfile: {exc}{hint}"
        ) from exc


def _read_and_resample(f: Any, sr: int) -> np.ndarray:
    in_rate = int(f.samplerate)
    channels = int(f.channels)
    # frames may be unknown/approximate for some formats; it only sizes the first allocation.
    out = _FloatSink()

    stream = None
    if in_rate != sr:
        import soxr

        stream = soxr.ResampleStream(in_rate, sr, 1, dtype="float32", quality="HQ")

    block = np.empty((_READ_FRAMES, channels), dtype=np.float32)
    while True:
        n = f.read(out=block)
        got = len(n)
        if got == 0:
            break
        mono = block[:got, 0] if channels == 1 else block[:got].mean(axis=1, dtype=np.float32)
        out.append(stream.resample_chunk(mono) if stream is not None else mono)
    if stream is not None:
        out.append(stream.resample_chunk(np.empty(0, dtype=np.float32), last=True))
    return out.finish()


__all__ = [
    "SAMPLE_RATE",
    "N_FFT",
    "HOP_LENGTH",
    "CHUNK_LENGTH",
    "N_SAMPLES",
    "N_FRAMES",
    "N_SAMPLES_PER_TOKEN",
    "FRAMES_PER_SECOND",
    "TOKENS_PER_SECOND",
    "DECODERS",
    "load_audio",
    "pad_or_trim",
    "ffmpeg_available",
]
