"""Decoder CPU seconds per generated token: whisper_genio vs faster-whisper (CTranslate2) and
openai-whisper, in the same run, from the same encoder states (the JFK window encoded once by
openai-whisper), greedy and beam 5.

Each engine generates exactly L tokens (end-of-text and every other special token suppressed,
so all of them decode the same kind of text tokens) and 1 token; the CPU time of the process (all threads) for (L) minus (1), divided by L - 1, is the
cost of one more token with the cross-attention K/V already computed. CTranslate2 and
openai-whisper run with the same thread count as ours (WG_BENCH_THREADS, default 2).
The issue's targets read: ours <= 0.7 x faster-whisper int8's and <= 0.1 x openai-whisper's.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import record

L = 48  # tokens generated in the long run: prompt (4) + 48 stays well inside 448 positions


def _cpu_per_token(generate, rounds: int = 3) -> float:
    """min over rounds of CPU(generate(L)) - CPU(generate(1)), per extra token."""
    best = float("inf")
    generate(2)  # warm-up: allocations, thread pools
    for _ in range(rounds):
        c0 = time.process_time()
        generate(1)
        c1 = time.process_time()
        generate(L)
        c2 = time.process_time()
        best = min(best, ((c2 - c1) - (c1 - c0)) / (L - 1))
    return best


@pytest.fixture(scope="module")
def encoded(reference, jfk_audio):
    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(jfk_audio))
    with torch.no_grad():
        return reference.encoder(mel[None])  # [1, 1500, 512]


@pytest.fixture(scope="module")
def tok():
    whisper = pytest.importorskip("whisper")
    return whisper.tokenizer.get_tokenizer(multilingual=True, language="en", task="transcribe")


@pytest.fixture(scope="module")
def specials(tok, base_checkpoint):
    return list(range(tok.eot, base_checkpoint.dims.n_vocab))


STAGE = "decoder CPU per generated token, {}"


@pytest.mark.parametrize("beam", [1, 5])
@pytest.mark.parametrize("compute_type", ["int8", "float32"])
def test_ours(beam, compute_type, encoded, specials, threads):
    import whisper_genio

    model = whisper_genio.load_model("base", threads=threads, compute_type=compute_type)
    states = encoded[0].numpy()

    def generate(n):
        r = model.decode(states, language="en", without_timestamps=True, sample_len=n, suppress_tokens=specials,
                         beam_size=beam if beam > 1 else None, temperature=0.0)
        assert len(r.tokens) == n, (len(r.tokens), n)

    record(STAGE.format("greedy" if beam == 1 else f"beam {beam}"), f"whisper_genio {compute_type}",
           _cpu_per_token(generate))


@pytest.mark.parametrize("beam", [1, 5])
@pytest.mark.parametrize("compute_type", ["int8", "float32"])
def test_faster_whisper(beam, compute_type, encoded, tok, specials, threads):
    ctranslate2 = pytest.importorskip("ctranslate2")
    import sys
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "peers"))
    from run import ct2_folder  # noqa: E402  (the peers script's CTranslate2 folder of the same weights)

    model = ctranslate2.models.Whisper(ct2_folder(), device="cpu", compute_type=compute_type, intra_threads=threads)
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded.numpy()))
    prompt = [[tok.sot, tok.language_token, tok.transcribe, tok.no_timestamps]]

    def generate(n):
        # CTranslate2 stops a Whisper generation at min(max_length - 3, max_length // 2) new tokens
        # with this prompt (measured: its Whisper keeps openai-whisper's sample_len = n_ctx // 2)
        r = model.generate(features, prompt, beam_size=beam, max_length=max(n + 3, 2 * n),
                           suppress_tokens=specials,
                           suppress_blank=False, return_scores=False)
        got = len(r[0].sequences_ids[0])
        assert got == n, (got, n)

    record(STAGE.format("greedy" if beam == 1 else f"beam {beam}"), f"faster-whisper {compute_type}",
           _cpu_per_token(generate))


@pytest.mark.parametrize("beam", [1, 5])
def test_openai(beam, encoded, tok, reference):
    whisper = pytest.importorskip("whisper")

    def generate(n):
        # End-of-text only: openai-whisper's SuppressTokens indexes the logits with a Python list at
        # every step, and the 1608 special tokens alone cost it ~80 ms per token (an artefact).
        opts = whisper.DecodingOptions(language="en", without_timestamps=True, sample_len=n, suppress_tokens=[tok.eot],
                                       beam_size=beam if beam > 1 else None, fp16=False, temperature=0.0)
        r = whisper.decode(reference, encoded, opts)[0]
        assert len(r.tokens) == n, (len(r.tokens), n)

    record(STAGE.format("greedy" if beam == 1 else f"beam {beam}"), "openai-whisper", _cpu_per_token(generate, 2))
