"""Streaming on the simulated clock (streaming_sim.py): our policy vs the whisper.cpp
`stream`-style sliding window over the same core, on JFK (the long-form clip too with
WG_BENCH_STREAM_CLIPS="jfk longform"). Reported, never asserted."""

from __future__ import annotations

import os

import pytest

from conftest import record


@pytest.mark.benchmark(group="streaming")
def test_streaming_latency(base_checkpoint, threads):
    pytest.importorskip("jiwer")
    import streaming_sim

    clips = os.environ.get("WG_BENCH_STREAM_CLIPS", "jfk").split()
    rows = streaming_sim.main(["--clips", *clips, "--threads", str(threads)])
    for row in rows:
        name = row["policy"].split(" (")[0]
        record(f"stream latency median ({name})", "whisper_genio", row["latency_median_s"], unit="s (sim)")
        record(f"stream CPU per audio s ({name})", "whisper_genio", row["cpu_per_audio_s"], unit="s")
