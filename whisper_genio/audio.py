"""Audio loading and the fixed audio hyper-parameters of Whisper.

The log-mel spectrogram is computed by the C++ core; this module only turns files, bytes or
arrays into 16 kHz mono float32 samples.

Decoding uses the ``ffmpeg`` command-line tool when it is on ``PATH`` (with exactly the conversion
openai-whisper uses, so results are bit-identical), and otherwise libsndfile through ``soundfile``
(WAV, FLAC, OGG/Vorbis/Opus, MP3) plus ``soxr`` resampling. Both paths stream: an hour of audio
needs about the final float32 array (~230 MB) and a few MB more, never a float64 or int16 copy
of the whole signal. Decoded arrays are zero-copy views of a ``bytearray`` (writeable,
C-contiguous, 16-byte aligned by the allocator).

Hostile input is refused before it costs anything: a path that is not a regular file (directory,
FIFO, device) is never opened; a header whose sample rate is outside [MIN_INPUT_RATE,
MAX_INPUT_RATE] is refused (a WAV claiming 8 Hz would turn 300 KB into hours of samples; the
header is read with libsndfile on both paths, and with ffprobe, when installed, for containers
only ffmpeg parses); samples that are NaN or infinite are refused with the index of the first
one. When ``decoder="auto"`` and the ffmpeg on PATH cannot run or fails, soundfile is tried
before giving up.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from typing import IO, Any, Optional, Union

import numpy as np

from . import _core
from .errors import AudioDecodeError, AudioNotFoundError, BackendUnavailableError, InvalidOptionError

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

AudioSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], np.ndarray]

DECODERS = ("auto", "ffmpeg", "soundfile")

_INT16_SCALE = np.float32(1.0 / 32768.0)  # a power of two: int16 -> float32 is exact
_READ_BYTES = 1 << 20  # ffmpeg pipe read size (512 Ki samples)
_READ_SAMPLES = 1 << 18  # soundfile block size in samples (frames x channels: a 1024-channel header stays 1 MB)
_STDERR_KEEP = 64 * 1024  # ffmpeg stderr kept for error messages
_ERROR_LINES = 5
# Sample rates a file header may claim. Real recordings go from 8 kHz telephone audio (a few
# codecs down to 2-4 kHz) up to 384/768 kHz studio PCM; outside that the header is lying.
MIN_INPUT_RATE = 1000
MAX_INPUT_RATE = 1_000_000
# At most this many channels in a 2-D array for its layout to be unambiguous: (frames, channels)
# when the second dimension is this small, (channels, frames) when the first is.
MAX_ARRAY_CHANNELS = 8
_FINITE_BLOCK = 1 << 20  # samples per block of the NaN/Inf check
_PROBE_SECONDS = 20  # ffprobe reads a header: far less; a hostile file must not stall us longer


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

    ``source`` is a file path, the bytes of an encoded file, a binary file object (read to its
    end), or a numpy array already at ``sr``
    (1-D mono or 2-D ``(frames, channels)``, averaged to mono; float, or int16/int32 PCM which
    is scaled to [-1, 1)). A float32 1-D contiguous array is returned as is, without a copy.

    ``decoder`` selects how files and bytes are decoded: ``"ffmpeg"`` (the ffmpeg CLI),
    ``"soundfile"`` (libsndfile + soxr) or ``"auto"`` (ffmpeg when on PATH).

    A 2-D array is ``(frames, channels)`` when it has at most MAX_ARRAY_CHANNELS columns, else
    ``(channels, frames)`` when it has at most that many rows; anything else (a log-mel
    spectrogram included: openai-whisper's ``transcribe()`` does not take one either) is refused.

    Raises :class:`AudioNotFoundError` (a ``FileNotFoundError``) for a missing file,
    :class:`AudioDecodeError` for a path that is not a regular file, data that cannot be decoded,
    a header claiming an absurd sample rate, or samples that are NaN or infinite. Audio with no
    samples gives an empty array.
    """
    if decoder not in DECODERS:
        raise InvalidOptionError(f"decoder must be one of {', '.join(DECODERS)}; got {decoder!r}")
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or not MIN_INPUT_RATE <= sr <= MAX_INPUT_RATE:
        raise InvalidOptionError(f"sample rate must be an integer from {MIN_INPUT_RATE} to {MAX_INPUT_RATE} Hz, "
                                 f"got {sr!r}")
    sr = int(sr)

    if isinstance(source, np.ndarray):
        return check_finite(_from_array(source), "audio array")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(source), sr, decoder)
    if hasattr(source, "read") and not isinstance(source, (str, os.PathLike)):
        return _decode_bytes(_read_file_object(source), sr, decoder)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        _check_regular_file(path)
        return _decode(path, sr, decoder, display=path)
    raise InvalidOptionError(
        f"audio source must be a path, bytes, a binary file object or a numpy array, got {type(source).__name__}"
    )


def _read_file_object(source: Any) -> bytes:
    """The encoded bytes of a binary file object (an open file, BytesIO, a web upload), as
    faster-whisper takes them."""
    try:
        data = source.read()
    except (OSError, ValueError) as e:  # closed, not readable
        raise AudioDecodeError(f"audio file object {source!r} could not be read: {e}") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidOptionError(f"audio file object must be opened in binary mode, read() gave "
                                 f"{type(data).__name__}")
    return bytes(data)


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


def check_finite(samples: np.ndarray, what: str = "audio", offset: int = 0) -> np.ndarray:
    """``samples`` unchanged, or AudioDecodeError naming the first NaN/infinite sample (its index
    plus ``offset``)."""
    flat = samples.reshape(-1)
    for start in range(0, flat.size, _FINITE_BLOCK):
        block = flat[start:start + _FINITE_BLOCK]
        # A float64 sum of float32 values cannot overflow: it is finite iff every value is.
        if not np.isfinite(np.add.reduce(block, dtype=np.float64)):
            bad = start + int(np.flatnonzero(~np.isfinite(block))[0])
            value = flat[bad]
            index = offset + bad if samples.ndim == 1 else tuple(int(i) for i in np.unravel_index(bad, samples.shape))
            raise AudioDecodeError(f"{what} holds a non-finite sample ({value}) at index {index}: "
                                   "NaN and infinity are not sound")
    return samples


# --------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        rows, cols = array.shape
        if cols > MAX_ARRAY_CHANNELS and 0 < rows <= MAX_ARRAY_CHANNELS:
            array = array.T  # (channels, frames), as librosa and torchaudio give it
        elif cols > MAX_ARRAY_CHANNELS:
            hint = ""
            if rows in (80, 128) and cols == N_FRAMES:
                hint = (": this looks like a log-mel spectrogram; transcribe() takes audio samples (as "
                        "openai-whisper's does); Model.decode(), detect_language() and encode() take a mel window")
            raise InvalidOptionError(
                f"audio array of shape {array.shape} is neither (frames, channels) nor (channels, frames) with "
                f"at most {MAX_ARRAY_CHANNELS} channels{hint}"
            )
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


def _check_regular_file(path: str) -> None:
    """Refuses what open() would block on or misread (FIFO, device, directory) before opening it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise AudioNotFoundError(errno.ENOENT, f"audio file not found: {path}", path) from None
    except OSError as exc:
        raise AudioDecodeError(f"cannot read audio file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise AudioDecodeError(f"audio path {path} is {kind}, not a regular file")


def _decode(file: str, sr: int, decoder: str, *, display: str) -> np.ndarray:
    """Decodes a regular file with the chosen decoder; "auto" falls back to soundfile when the
    ffmpeg on PATH cannot run or fails (a broken install must not break decoding)."""
    chosen = _pick_decoder(decoder)
    float_samples = _check_header(file, display)
    if chosen == "soundfile":
        return _decode_soundfile(file, sr, display=display)
    if float_samples:
        _scan_float_file(file, display)  # ffmpeg's conversion to int16 would hide NaN/Inf
    try:
        return _decode_ffmpeg(file, sr, display=display)
    except (AudioDecodeError, BackendUnavailableError) as ffmpeg_error:
        if decoder != "auto":
            raise
        try:
            return _decode_soundfile(file, sr, display=display)
        except (AudioDecodeError, BackendUnavailableError) as sf_error:
            raise AudioDecodeError(f"{ffmpeg_error}; soundfile could not either: {sf_error}") from None


def _check_header(file: str, display: str) -> bool:
    """Refuses a header (as libsndfile reads it) that claims a sample rate no recording has;
    True when it holds float samples (which may be NaN/Inf). Formats libsndfile cannot parse
    are left to the decoder."""
    try:
        import soundfile as sf

        info = sf.info(file)
    except Exception:  # noqa: BLE001 - not a libsndfile format, or no libsndfile: ask ffprobe
        rate = _ffprobe_rate(file)
        if rate is not None:
            _check_rate(rate, display)
        return False
    _check_rate(info.samplerate, display)
    return info.subtype in ("FLOAT", "DOUBLE")


def _ffprobe_rate(file: str) -> Optional[int]:
    """The first audio stream's sample rate as ffprobe (shipped with ffmpeg) reads it, for the
    containers libsndfile does not parse (MP4/MOV, WebM, ...); None when it cannot say."""
    if shutil.which("ffprobe") is None:
        return None
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate",
             "-of", "csv=p=0", "file:" + os.path.abspath(file)],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=_PROBE_SECONDS,
        )
        return int(proc.stdout.split()[0]) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _check_rate(rate: int, display: str) -> None:
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioDecodeError(
            f"audio {display}: its header claims a sample rate of {rate} Hz, outside {MIN_INPUT_RATE}.."
            f"{MAX_INPUT_RATE} Hz; refusing to decode (a lying header turns a small file into hours of samples)"
        )


def _block(channels: int) -> np.ndarray:
    return np.empty((max(1, _READ_SAMPLES // max(channels, 1)), channels), dtype=np.float32)


def _scan_float_file(file: str, display: str) -> None:
    import soundfile as sf

    with sf.SoundFile(file) as f:
        block = _block(f.channels)
        done = 0
        while True:
            got = len(f.read(out=block))
            if got == 0:
                return
            # NaN/Inf survive the mean, so the index is the frame, as on the soundfile path.
            check_finite(block[:got].mean(axis=1, dtype=np.float32), f"audio {display}", offset=done)
            done += got


def _decode_bytes(data: bytes, sr: int, decoder: str) -> np.ndarray:
    # A real file rather than a pipe: container formats such as MP4 need to seek (ffmpeg), and
    # one path serves both decoders.
    fd, tmp = tempfile.mkstemp(prefix="whisper_genio_", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return _decode(tmp, sr, decoder, display="<bytes>")
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


def _decode_soundfile(file: str, sr: int, *, display: str) -> np.ndarray:
    try:
        import soundfile as sf
    except (ImportError, OSError) as exc:  # OSError: libsndfile itself missing
        raise BackendUnavailableError(
            f"cannot decode {display}: ffmpeg is not on PATH and soundfile/libsndfile is "
            f"unavailable ({exc})"
        ) from exc

    try:
        with sf.SoundFile(file) as f:
            _check_rate(f.samplerate, display)
            return _read_and_resample(f, sr, display)
    except AudioDecodeError:
        raise
    except (RuntimeError, ValueError, TypeError, EOFError) as exc:
        # soundfile.LibsndfileError is a RuntimeError; libsndfile reports corrupt data there.
        hint = "" if ffmpeg_available() else " (installing ffmpeg adds many more formats)"
        raise AudioDecodeError(
            f"failed to decode audio {display} with soundfile: {exc}{hint}"
        ) from exc


def _read_and_resample(f: Any, sr: int, display: str) -> np.ndarray:
    in_rate = int(f.samplerate)
    channels = int(f.channels)
    # frames may be unknown/approximate for some formats; it only sizes the first allocation.
    out = _FloatSink()

    stream = None
    if in_rate != sr:
        import soxr

        stream = soxr.ResampleStream(in_rate, sr, 1, dtype="float32", quality="HQ")

    block = _block(channels)
    done = 0
    while True:
        n = f.read(out=block)
        got = len(n)
        if got == 0:
            break
        mono = block[:got, 0] if channels == 1 else block[:got].mean(axis=1, dtype=np.float32)
        # Before resampling, which would smear a NaN over its neighbours: the index is the file's frame.
        check_finite(mono, f"audio {display}", offset=done)
        done += got
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
    "check_finite",
    "MIN_INPUT_RATE",
    "MAX_INPUT_RATE",
    "MAX_ARRAY_CHANNELS",
]
