"""`whisper-genio stream`: live transcription from a microphone, raw PCM on stdin or a file.

Committed text is printed as it comes (the partial hypothesis on a terminal line that is
rewritten); the committed segments can be written as srt/vtt/json/txt/tsv at the end.
"""

from __future__ import annotations

import queue
import sys
import time
from typing import Any, Iterator, Optional, TextIO

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..errors import BackendUnavailableError, InvalidOptionError

PCM_DTYPES = {"s16le": np.int16, "f32le": np.float32}


def pcm_chunks(stream: Any, rate: int, chunk_seconds: float, dtype: str = "s16le") -> Iterator[np.ndarray]:
    """Mono PCM read from a binary stream (stdin) in chunks of about chunk_seconds."""
    if dtype not in PCM_DTYPES:
        raise InvalidOptionError(f"--format must be one of {', '.join(PCM_DTYPES)}, got {dtype!r}")
    dt = np.dtype(PCM_DTYPES[dtype])
    size = max(1, int(rate * chunk_seconds)) * dt.itemsize
    rest = b""
    while True:
        data = stream.read(size)
        if not data:
            break
        data = rest + data
        whole = len(data) - len(data) % dt.itemsize
        rest = data[whole:]
        if whole:
            yield np.frombuffer(data[:whole], dt)


def file_chunks(path: str, chunk_seconds: float, realtime: bool) -> Iterator[np.ndarray]:
    """A file decoded at 16 kHz and handed out in chunks, at real-time pace if asked."""
    audio = load_audio(path)
    n = max(1, int(SAMPLE_RATE * chunk_seconds))
    start = time.monotonic()
    for i in range(0, len(audio), n):
        if realtime:
            delay = start + i / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield audio[i:i + n]


def microphone_chunks(device: Optional[str], chunk_seconds: float) -> Iterator[np.ndarray]:
    """16 kHz mono float32 from a capture device (PortAudio through sounddevice; ALSA on a board)."""
    try:
        import sounddevice
    except (ImportError, OSError) as e:  # OSError: PortAudio's library itself is missing
        raise BackendUnavailableError(f"a microphone needs sounddevice and PortAudio ({e}): "
                                      "pip install 'whisper_genio[mic]' (and libportaudio2 on Debian), or pipe "
                                      "raw PCM: arecord -f S16_LE -r 16000 -c 1 | whisper-genio stream -") from None
    blocks: "queue.Queue[np.ndarray]" = queue.Queue()

    def callback(indata, frames, time_info, status):  # PortAudio's thread: hand over, nothing more
        blocks.put(indata[:, 0].copy())

    with sounddevice.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=device,
                                 blocksize=int(SAMPLE_RATE * chunk_seconds), callback=callback):
        while True:
            yield blocks.get()


class Printer:
    """Committed text appended as it comes; the partial hypothesis shown after it on a terminal
    (rewritten in place), never on a pipe."""

    def __init__(self, out: TextIO, partials: bool) -> None:
        self.out = out
        self.partials = partials
        self.shown = 0  # characters of partial text on the current line

    def __call__(self, event: Any) -> None:
        if event.type == "partial" and self.partials:
            self._clear()
            text = event.text.strip()
            self.out.write(f"\x1b[2m{text}\x1b[0m")
            self.shown = len(text)
        elif event.type == "committed":
            self._clear()
            self.out.write(event.text)
        elif event.type == "endpoint":
            self._clear()
            self.out.write("\n")
        self.out.flush()

    def _clear(self) -> None:
        if self.shown:
            self.out.write("\b" * self.shown + " " * self.shown + "\b" * self.shown)
            self.shown = 0


def run_stream(model: Any, chunks: Iterator[np.ndarray], *, rate: int, out: TextIO = sys.stdout,
               **stream_options: Any) -> dict:
    """Feeds the chunks to a stream and prints what it commits; returns the transcript in
    transcribe()'s shape (committed segments, with words when asked)."""
    session = model.stream(**stream_options)
    show = Printer(out, partials=out.isatty())
    segments: list[dict] = []
    try:
        for chunk in chunks:
            for event in session.feed(chunk, sample_rate=rate):
                _keep(event, segments)
                show(event)
    except KeyboardInterrupt:
        pass  # the stream ends here: what was heard is still committed below
    finally:
        for event in session.flush():
            _keep(event, segments)
            show(event)
    return {"text": "".join(s["text"] for s in segments), "segments": segments, "language": session.language or "en"}


def _keep(event: Any, segments: list[dict]) -> None:
    if event.type != "committed":
        return
    segment = {"id": len(segments), "seek": 0, "start": event.start, "end": event.end, "text": event.text,
               "tokens": [], "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
    if event.words:
        segment["words"] = event.words
    segments.append(segment)
