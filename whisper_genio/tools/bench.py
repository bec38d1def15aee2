"""`whisper-genio bench`: where the time and the CPU go, per stage, for one configuration.

Reports mel, encoder and cross-attention preparation per 30 s window, decoder time per step
and per token, tokens per second, CPU-seconds per audio-second (all threads), the real-time
factor and the process's peak resident memory. CPU seconds are process CPU time, so they
include every worker thread: the number that says how much CPU the decoder leaves to the rest
of the board.

With ``decoder_offload`` it also prints the decoder's dispatch plan, the share of decoder MACs
planned on the NPU, and the CPU-seconds per token that remain on the CPU (the decoder stage's
process CPU time minus the time the calling thread spent inside subgraph runners, which on a
board is the wait for the NPU and with the stand-in runtime is its reference math), against
the same transcription with the all-CPU decoder.
"""

from __future__ import annotations

import json
import platform
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

from .. import _core


@dataclass
class BenchReport:
    model: str
    backend: str
    compute_type: str
    threads: int
    beam_size: Optional[int]
    isa: str
    machine: str
    audio_seconds: float
    load_seconds: float
    wall_seconds: float
    cpu_seconds: float
    windows: int
    decoder_steps: int
    tokens: int
    mel_ms: float              # per window (first pass over the whole audio included)
    encoder_ms: float          # per window
    cross_kv_ms: float         # per window
    decoder_ms_per_step: float
    decoder_ms_per_token: float
    decoder_cpu_ms_per_token: float
    tokens_per_second: float
    cpu_seconds_per_audio_second: float
    real_time_factor: float
    stage_cpu_seconds: dict
    peak_rss_mib: float
    text: str
    decoder_offload: str = "none"
    decoder_plan: str = ""
    npu_mac_share_planned: Optional[float] = None   # projections + vocabulary, per token at the run's batch
    npu_mac_share_run: Optional[float] = None       # every decoder MAC of the run (attention and prompt too)
    decoder_cpu_ms_per_token_left: Optional[float] = None   # offloaded run, runner time excluded
    decoder_cpu_ms_per_token_all_cpu: Optional[float] = None  # same audio, decoder_offload="none"
    runner_ms_per_token: Optional[float] = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    def format(self) -> str:
        r = self
        lines = [
            f"model {r.model} | backend {r.backend} | compute_type {r.compute_type} | threads {r.threads} | "
            f"beam {r.beam_size or 'greedy'} | kernels {r.isa} | {r.machine}",
            f"audio {r.audio_seconds:.1f} s in {r.windows} windows: wall {r.wall_seconds:.2f} s "
            f"(RTF {r.real_time_factor:.3f}), CPU {r.cpu_seconds:.2f} s "
            f"({r.cpu_seconds_per_audio_second:.3f} CPU-s per audio-s); load {r.load_seconds:.2f} s",
            f"  mel            {r.mel_ms:9.1f} ms/window",
            f"  encoder        {r.encoder_ms:9.1f} ms/window",
            f"  cross-attn K/V {r.cross_kv_ms:9.1f} ms/window",
            f"  decoder        {r.decoder_ms_per_step:9.2f} ms/step, {r.decoder_ms_per_token:.2f} ms/token "
            f"({r.decoder_cpu_ms_per_token:.2f} CPU-ms/token), {r.tokens_per_second:.1f} tokens/s",
            "  CPU seconds    " + ", ".join(f"{k} {v:.2f}" for k, v in r.stage_cpu_seconds.items()),
            f"  peak RSS       {r.peak_rss_mib:.0f} MiB",
        ]
        if r.decoder_offload != "none":
            lines.append(r.decoder_plan)
            lines.append(
                f"  decoder offload {r.decoder_offload}: {100 * (r.npu_mac_share_planned or 0):.1f} % of the decoder "
                f"MACs per token planned on the NPU ({100 * (r.npu_mac_share_run or 0):.1f} % of this run's, "
                f"attention and prompts included); CPU left {r.decoder_cpu_ms_per_token_left:.2f} CPU-ms/token vs "
                f"{r.decoder_cpu_ms_per_token_all_cpu:.2f} with the all-CPU decoder "
                f"(runners {r.runner_ms_per_token:.2f} ms/token)")
        return "\n".join(lines)


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    Linux's VmHWM where there is one: ru_maxrss starts from the parent's peak (it is kept across
    exec), so a bench started from a big process would report that process's memory."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024.0
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_bench(audio: Any, model: str = "base", *, backend: str = "auto", compute_type: str = "auto",
              threads: Optional[int] = None, beam_size: Optional[int] = None,
              cpu_affinity: Optional[Sequence[int]] = None, language: Optional[str] = None,
              temperature: Any = 0.0, decoder_offload: str = "none", decoder_subgraphs: Any = None,
              load_options: Optional[dict] = None) -> BenchReport:
    """Loads the model, transcribes `audio` once and reports the per-stage costs (with decoder
    offload: once more with the all-CPU decoder, for the comparison)."""
    from ..audio import load_audio
    from ..model import load_model

    samples = load_audio(audio)
    t0 = time.perf_counter()
    m = load_model(model, backend=backend, compute_type=compute_type, threads=threads, cpu_affinity=cpu_affinity,
                   decoder_offload=decoder_offload, decoder_subgraphs=decoder_subgraphs, **(load_options or {}))
    load_seconds = time.perf_counter() - t0
    m.offload_stats(reset=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = m.transcribe(samples, beam_size=beam_size, language=language, temperature=temperature)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    t = m.last_timings
    windows = max(1, t["windows"])
    steps = max(1, t["decoder_steps"])
    tokens = max(1, t["tokens"])
    audio_seconds = max(t["audio_seconds"], 1e-9)
    extra: dict[str, Any] = {}
    if decoder_offload != "none":
        from ..backends.decoder_offload import summarize

        stats = m.offload_stats(reset=True)
        batch = beam_size or 1
        planned = summarize(m.decoder_plan).get(batch, {})
        macs = stats["npu_macs"] + stats["cpu_macs"]
        extra = dict(
            decoder_offload=decoder_offload, decoder_plan=m.decoder_plan_text(),
            npu_mac_share_planned=planned.get("npu_share", 0.0),
            npu_mac_share_run=stats["npu_macs"] / macs if macs else 0.0,
            decoder_cpu_ms_per_token_left=1e3 * max(t["decoder_cpu"] - stats["runner_cpu_seconds"], 0.0) / tokens,
            runner_ms_per_token=1e3 * stats["runner_seconds"] / tokens)
        m.set_decoder_offload("none")
        m.transcribe(samples, beam_size=beam_size, language=language, temperature=temperature)
        t_cpu = m.last_timings
        extra["decoder_cpu_ms_per_token_all_cpu"] = 1e3 * t_cpu["decoder_cpu"] / max(1, t_cpu["tokens"])
    return BenchReport(
        model=str(model), backend=m.backend, compute_type=m.compute_type, threads=m.threads, beam_size=beam_size,
        isa=f"{_core.isa()} ({_core.cpu_features()})", machine=f"{platform.machine()}, {_cpu_count()} CPUs",
        audio_seconds=t["audio_seconds"], load_seconds=load_seconds, wall_seconds=wall, cpu_seconds=cpu,
        windows=t["windows"], decoder_steps=t["decoder_steps"], tokens=t["tokens"],
        mel_ms=1e3 * t["mel"] / windows, encoder_ms=1e3 * t["encoder"] / windows,
        cross_kv_ms=1e3 * t["cross_kv"] / windows,
        decoder_ms_per_step=1e3 * t["decoder"] / steps, decoder_ms_per_token=1e3 * t["decoder"] / tokens,
        decoder_cpu_ms_per_token=1e3 * t["decoder_cpu"] / tokens,
        tokens_per_second=tokens / max(t["decoder"], 1e-9),
        cpu_seconds_per_audio_second=cpu / audio_seconds, real_time_factor=wall / audio_seconds,
        stage_cpu_seconds={s: round(t[s + "_cpu"], 4) for s in ("mel", "encoder", "cross_kv", "decoder")},
        peak_rss_mib=peak_rss_mib(), text=result["text"], **extra,
    )


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1
