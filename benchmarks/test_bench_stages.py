"""Mel, encoder, decoder per token and whole transcription: whisper_genio vs openai-whisper.

Timings are reported, never asserted (speed targets are read off the table)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import record

N_SAMPLES = 480000


def _mean(benchmark) -> float:
    return benchmark.stats.stats.mean


@pytest.mark.benchmark(group="mel")
def test_mel_ours(benchmark, jfk_audio):
    from whisper_genio import _core

    benchmark(_core.log_mel_spectrogram, jfk_audio, 80, N_SAMPLES)
    record("log-mel (11 s clip + 30 s pad)", "whisper_genio", _mean(benchmark))


@pytest.mark.benchmark(group="mel")
def test_mel_openai(benchmark, jfk_audio, reference):
    whisper = pytest.importorskip("whisper")
    benchmark(whisper.log_mel_spectrogram, jfk_audio, 80, N_SAMPLES)
    record("log-mel (11 s clip + 30 s pad)", "openai-whisper", _mean(benchmark))


@pytest.fixture(scope="module")
def mel(jfk_audio):
    whisper = pytest.importorskip("whisper")
    return whisper.log_mel_spectrogram(whisper.pad_or_trim(jfk_audio)).numpy()


@pytest.mark.benchmark(group="encoder")
def test_encoder_ours(benchmark, ours, mel):
    benchmark.pedantic(ours.encode, args=(mel,), rounds=5, warmup_rounds=1)
    record("encoder (one 30 s window)", "whisper_genio", _mean(benchmark))


@pytest.mark.benchmark(group="encoder")
def test_encoder_trimmed_ours(benchmark, ours, jfk_audio):
    """The JFK clip's window trimmed to its 11 s + 1 s of padding (trim_window <= 12): 600 of the
    1500 positions."""
    from whisper_genio import _core

    pipeline = ours.pipeline
    windows = _core.MelWindows(jfk_audio, pipeline.dims.n_mels, pipeline.pool)
    size = min(windows.content_frames, 3000)
    benchmark.pedantic(pipeline.encoder.encode, args=(windows, 0, size, pipeline.pool, 100), rounds=5,
                       warmup_rounds=1)
    record("encoder (JFK window trimmed to 12 s)", "whisper_genio", _mean(benchmark))


@pytest.mark.benchmark(group="encoder")
def test_encoder_openai(benchmark, reference, mel):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(mel)[None]

    def run():
        with torch.no_grad():
            return reference.encoder(x)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    record("encoder (one 30 s window)", "openai-whisper", _mean(benchmark))


@pytest.fixture(scope="module")
def states(ours, mel):
    return ours.encode(mel)


def _count(tokens) -> int:
    return len(tokens) + 1  # the sampled tokens and the final <|endoftext|>


@pytest.mark.benchmark(group="decoder")
@pytest.mark.parametrize("beam", [None, 5])
def test_decoder_per_token_ours(benchmark, ours, states, beam):
    result = ours.decode(states, language="en", beam_size=beam)
    benchmark.pedantic(ours.decode, args=(states,), kwargs=dict(language="en", beam_size=beam), rounds=5,
                       warmup_rounds=1)
    record(f"decoder per token ({'beam 5' if beam else 'greedy'})", "whisper_genio",
           _mean(benchmark) / _count(result.tokens))


@pytest.mark.benchmark(group="decoder")
@pytest.mark.parametrize("beam", [None, 5])
def test_decoder_per_token_openai(benchmark, reference, states, beam):
    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    features = torch.from_numpy(np.ascontiguousarray(states))
    options = whisper.DecodingOptions(language="en", fp16=False, beam_size=beam)
    result = whisper.decode(reference, features, options)
    benchmark.pedantic(whisper.decode, args=(reference, features, options), rounds=3, warmup_rounds=1)
    record(f"decoder per token ({'beam 5' if beam else 'greedy'})", "openai-whisper",
           _mean(benchmark) / _count(result.tokens))


@pytest.mark.benchmark(group="transcribe")
def test_transcribe_longform_ours(benchmark, ours, longform_audio):
    benchmark.pedantic(ours.transcribe, args=(longform_audio,), kwargs=dict(temperature=0.0), rounds=1)
    record("transcribe 3.8 min (greedy)", "whisper_genio", _mean(benchmark))


@pytest.mark.benchmark(group="transcribe")
def test_transcribe_longform_openai(benchmark, reference, longform_audio):
    whisper = pytest.importorskip("whisper")
    benchmark.pedantic(whisper.transcribe, args=(reference, longform_audio), kwargs=dict(temperature=0.0, fp16=False),
                       rounds=1)
    record("transcribe 3.8 min (greedy)", "openai-whisper", _mean(benchmark))
