"""Kernels and the decoder step against PyTorch in the same run, reported as ratios (never asserted).

- GEMM on the encoder's shapes (M = 1500 rows, K = 512): our int8-weight GEMM (dynamically
  quantised activations) and our float32 sgemm vs torch.matmul (fp32) and torch's dynamic
  int8 Linear (torch.ao.nn.quantized.dynamic.Linear).
- GEMV (the decoder's per-token rows, M = 1): the same four on a 512 -> 2048 projection and the
  51865 x 512 vocabulary projection.
- Bandwidth: our int8 GEMV streaming the 51865 x 512 vocabulary projection on 1 thread, bytes
  of weights per second, next to the machine's memory bandwidth measured in the same run
  (numpy sum and copy streaming a 1 GiB array in 32 MiB chunks, 1 thread). The last level
  cache is flushed before each timed GEMV (the 26 MB weight would otherwise sit in a 32 MB L3).
- Decoder step (one token with the cross-attention K/V cached: embedding, 6 blocks, vocabulary
  projection) and the per-window cross-attention K/V projection vs openai-whisper's.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import record

ENCODER_ROWS = 1500
D = 512


def _best(benchmark) -> float:
    return benchmark.stats.stats.min


@pytest.fixture(scope="module")
def torch_threads(threads):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield torch
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pool(threads):
    from whisper_genio import _core

    return _core.ThreadPool(threads)


@pytest.fixture(scope="module")
def pool1():
    from whisper_genio import _core

    return _core.ThreadPool(1)


def _weights(n: int, k: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)


def _torch_dynamic_int8(torch, w: np.ndarray):
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
    return torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)


def _run_four(benchmark, impl, stage, x, w, pool, torch):
    from whisper_genio import _core

    if impl == "whisper_genio int8":
        lin = _core.kernels.Int8Linear(w)
        path = "gemm" if x.shape[0] > 8 else "gemv"
        fn = lambda: lin.forward(x, path, pool)  # noqa: E731
    elif impl == "whisper_genio":  # float32 sgemm / GEMV
        fn = lambda: _core.kernels.linear_f32(x, w, pool)  # noqa: E731
    elif impl == "torch fp32":
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        fn = lambda: torch.matmul(xt, wt.T)  # noqa: E731
    else:  # torch dynamic int8
        q = _torch_dynamic_int8(torch, w)
        xt = torch.from_numpy(x)

        def fn():
            with torch.no_grad():
                return q(xt)

    benchmark.pedantic(fn, rounds=7, warmup_rounds=2)
    record(stage, impl, _best(benchmark))


IMPLS = ["whisper_genio int8", "whisper_genio", "torch fp32", "torch int8 dynamic"]


@pytest.mark.benchmark(group="gemm")
@pytest.mark.parametrize("n", [512, 1536, 2048])
@pytest.mark.parametrize("impl", IMPLS)
def test_gemm_encoder_shapes(benchmark, impl, n, pool, torch_threads):
    x = np.random.default_rng(1).standard_normal((ENCODER_ROWS, D)).astype(np.float32)
    _run_four(benchmark, impl, f"GEMM {ENCODER_ROWS}x{D} -> {n}", x, _weights(n, D), pool, torch_threads)


@pytest.mark.benchmark(group="gemv")
@pytest.mark.parametrize("n", [2048, 51865])
@pytest.mark.parametrize("impl", IMPLS)
def test_gemv_decoder_shapes(benchmark, impl, n, pool, torch_threads):
    x = np.random.default_rng(2).standard_normal((1, D)).astype(np.float32)
    _run_four(benchmark, impl, f"GEMV 1x{D} -> {n}", x, _weights(n, D), pool, torch_threads)


def _flush(buf: np.ndarray) -> None:
    buf += 1  # read and write every line of a buffer twice the L3 size


def test_int8_gemv_bandwidth_vs_memory_bandwidth(pool1, capsys):
    from whisper_genio import _core

    n = 51865
    lin = _core.kernels.Int8Linear(_weights(n, D, seed=3))
    x = np.random.default_rng(4).standard_normal((1, D)).astype(np.float32)
    flush = np.zeros(64 << 20, np.uint8)
    gemv = []
    for _ in range(15):
        _flush(flush)
        t0 = time.perf_counter()
        lin.forward(x, "gemv", pool1)
        gemv.append(time.perf_counter() - t0)
    weight_bytes = lin.weight_bytes + 4 * n  # int8 rows + one float scale per row

    # Streamed in 32 MiB chunks, each timed alone (a few ms, like the GEMV): on a shared
    # machine one 1 GiB timing would also count the time other processes hold the core.
    chunk = 1 << 22  # float64 elements = 32 MiB
    big = np.ones(1 << 27, np.float64)  # 1 GiB
    dst = np.empty(chunk, np.float64)
    sums, copies = [], []
    for _ in range(3):
        for i in range(0, big.size, chunk):
            part = big[i:i + chunk]
            t0 = time.perf_counter()
            part.sum()
            sums.append(time.perf_counter() - t0)
        for i in range(0, big.size, chunk):
            part = big[i:i + chunk]
            t0 = time.perf_counter()
            np.copyto(dst, part)
            copies.append(time.perf_counter() - t0)
    gemv_bw = weight_bytes / min(gemv)
    read_bw = chunk * 8 / min(sums)
    copy_bw = 2 * chunk * 8 / min(copies)  # read + write
    machine_bw = max(read_bw, copy_bw)
    record("int8 GEMV 51865x512 weights, 1 thread", "whisper_genio", gemv_bw / 1e9, unit="GB/s")
    record("memory: numpy sum over 1 GiB (read)", "whisper_genio", read_bw / 1e9, unit="GB/s")
    record("memory: numpy copy over 1 GiB (r+w)", "whisper_genio", copy_bw / 1e9, unit="GB/s")
    with capsys.disabled():
        print(f"\nint8 GEMV 51865x512, 1 thread: {min(gemv) * 1e3:.2f} ms, {gemv_bw / 1e9:.1f} GB/s of weights; "
              f"memory: numpy sum {read_bw / 1e9:.1f} GB/s, copy {copy_bw / 1e9:.1f} GB/s (read + write); "
              f"GEMV share of the larger {gemv_bw / machine_bw:.0%}")
    assert gemv_bw > 0 and read_bw > 0


# ---- decoder step and cross-attention K/V vs openai-whisper -----------------------------------


@pytest.fixture(scope="module", params=["float32", "int8"])
def ours_ct(request, base_checkpoint, threads):
    import whisper_genio

    return whisper_genio.load_model("base", threads=threads, compute_type=request.param)


@pytest.fixture(scope="module")
def window_states(reference):
    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    from testdata import require_speech

    row = next((r for r in require_speech() if r["id"] == "en_jfk_inaugural_1961"), None)
    if row is None:
        pytest.skip("JFK clip missing")
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(whisper.load_audio(str(row["path"]))))
    with torch.no_grad():
        return reference.encoder(mel[None])  # [1, 1500, 512], the same states for both sides


@pytest.fixture(scope="module")
def tokens():
    whisper = pytest.importorskip("whisper")
    tok = whisper.tokenizer.get_tokenizer(multilingual=True)
    return tok.sot, list(tok.all_language_tokens)


@pytest.mark.benchmark(group="decoder-step")
def test_decoder_step_ours(benchmark, ours_ct, window_states, tokens):
    sot, langs = tokens
    dec = ours_ct.pipeline.decoder
    dec.set_audio(window_states[0].numpy())
    benchmark.pedantic(dec.language_probs, args=(sot, langs), rounds=20, warmup_rounds=3)
    record("decoder step (1 token, cross K/V cached)", f"whisper_genio {ours_ct.compute_type}", _best(benchmark))


@pytest.mark.benchmark(group="decoder-step")
def test_decoder_step_openai(benchmark, reference, window_states, tokens):
    torch = pytest.importorskip("torch")
    sot, langs = tokens
    cache, hooks = reference.install_kv_cache_hooks()
    cross = {m for b in reference.decoder.blocks for m in (b.cross_attn.key, b.cross_attn.value)}
    tok = torch.tensor([[sot]])
    try:
        with torch.no_grad():
            reference.decoder(tok, window_states, kv_cache=cache)  # fills the cross K/V once
        cross_kv = {m: v for m, v in cache.items() if m in cross}
        first_key = reference.decoder.blocks[0].attn.key
        empty = torch.zeros(1, 0, window_states.shape[-1])

        def step():
            # A fresh one-token self-attention cache, as ours. openai-whisper takes the position
            # offset from the first cache entry, so an empty self-attention key goes first.
            cache.clear()
            cache[first_key] = empty
            cache.update(cross_kv)
            with torch.no_grad():
                logits = reference.decoder(tok, window_states, kv_cache=cache)
                return logits[0, -1, langs].softmax(-1)

        benchmark.pedantic(step, rounds=20, warmup_rounds=3)
    finally:
        for h in hooks:
            h.remove()
    record("decoder step (1 token, cross K/V cached)", "openai-whisper", _best(benchmark))


@pytest.mark.benchmark(group="cross-kv")
def test_cross_kv_ours(benchmark, ours_ct, window_states):
    states = window_states[0].numpy()
    benchmark.pedantic(ours_ct.pipeline.decoder.set_audio, args=(states,), rounds=5, warmup_rounds=1)
    record("cross-attention K/V (one window)", f"whisper_genio {ours_ct.compute_type}", _best(benchmark))


@pytest.mark.benchmark(group="cross-kv")
def test_cross_kv_openai(benchmark, reference, window_states):
    torch = pytest.importorskip("torch")

    def run():
        with torch.no_grad():
            return [(b.cross_attn.key(window_states), b.cross_attn.value(window_states)) for b in reference.decoder.blocks]

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    record("cross-attention K/V (one window)", "openai-whisper", _best(benchmark))
