"""Jobs per second and the worker's memory under a mix of good, bad and hostile jobs.

Method (docs/performance.md, "Job load"): a tiny random F5-TTS model is built on a fresh
temporary volume; the real worker (tests/fixtures/serve_f5.py: the real stages, the model on
the CPU, the RunPod SDK's local HTTP server on 127.0.0.1) starts in its own process, with
its own working directory and TMPDIR. A warm-up sends every good and bad job three times;
then the baseline is taken: the lowest RSS over 3 s, the open descriptors, VmHWM reset
(``/proc/PID/clear_refs``). CLIENTS threads then send the mix of tests/fixtures/job_mix.py
to ``/runsync`` for DURATION seconds (each finishes its round): per round and client, seven
good jobs at nfe_step 2 (four syntheses: a stored voice, the client's own voice, a reference
with its text and one without, which is transcribed; list, add and delete of its own voice;
every fourth round also a long text, ~70 s of audio), a bad job after each good one, and one
hostile one. Every answer is checked as the load test checks it, and
the wrong ones are counted. Printed: jobs/s of each kind (the worker runs one job at a
time, so the kinds share its time: the rates add up to the worker's throughput), latency
percentiles of the good jobs (from the client: waiting behind other clients' jobs included),
the worker's RSS at baseline, at its peak (VmHWM, and the 50 ms sampler's maximum) and at
the end (the lowest over 5 s), its descriptors, and the load average before and after.

The model is tiny, so this measures the worker around the model (HTTP, the SDK, validation,
decoding, temp directories, the voice library, encoding), not F5-TTS's compute.

Usage: python bench/job_load.py [--duration 180] [--clients 4] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
sys.path.insert(0, str(REPO))
import job_mix  # noqa: E402  (the tests' job mix and worker harness)

MB = 1 << 20
KINDS = ("good", "bad", "hostile")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=180, help="seconds of load")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-rounds", type=int, default=1_000_000, help="per client")
    parser.add_argument("--kill-above-mb", type=int, default=3000,
                        help="kill the worker past its baseline plus this (a runaway)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from f5worker.handler import tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-job-load-"))
    try:
        volume = work / "volume"
        tiny_model.build(volume)
        worker = job_mix.Worker(volume, work)
        worker.start()
        try:
            assets = job_mix.Assets()
            job_mix.warm_up(worker.port, assets)
            pid = worker.serving_pid()
            baseline = worker.settled_rss(3)
            fds_before = worker.fds()
            hwm = job_mix.reset_hwm(pid)
            load_before = os.getloadavg()
            sampler = job_mix.Sampler(pid, kill_above=baseline + args.kill_above_mb * MB)
            sampler.start()
            print(f"load: {args.clients} clients, {args.duration:g} s, worker pid {pid}, "
                  f"baseline RSS {baseline / MB:.0f} MB", flush=True)
            outcomes, wall = job_mix.load(worker.port, args.clients, args.duration,
                                          args.max_rounds, assets)
            sampled = sampler.stop()
            load_after = os.getloadavg()
            alive = worker.alive()
            peak = job_mix.hwm_bytes(pid) if alive and hwm else sampled
            final = worker.settled_rss(5) if alive else None
            fds_after = worker.fds() if alive else None
            leftovers = [n for n in worker.temp_entries() if n.startswith("f5tts-")]
        finally:
            worker.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    sent = Counter(o.job.kind for o in outcomes)
    wrong = Counter(o.job.kind for o in outcomes if o.problem)
    good = [o.seconds * 1000 for o in outcomes if o.job.kind == "good"]
    synth = [o.seconds * 1000 for o in outcomes
             if o.job.kind == "good" and o.job.name.startswith("synthesize")]
    figures = {
        "clients": args.clients, "wall_s": round(wall, 1), "jobs": len(outcomes),
        "jobs_per_s": round(len(outcomes) / wall, 1),
        **{f"{k}_per_s": round(sent[k] / wall, 1) for k in KINDS},
        **{f"{k}_sent": sent[k] for k in KINDS}, **{f"{k}_wrong": wrong[k] for k in KINDS},
        **{f"good_ms_p{int(q * 100)}": round(percentile(good, q), 1) for q in (.5, .9, .99)},
        "good_ms_max": round(max(good), 1) if good else None,
        **{f"synthesis_ms_p{int(q * 100)}": round(percentile(synth, q), 1)
           for q in (.5, .9, .99)},
        "rss_baseline_mb": round(baseline / MB), "rss_peak_mb": round(peak / MB),
        "rss_peak_sampled_mb": round(sampled / MB),
        "rss_final_mb": round(final / MB) if final else None,
        "killed_at_mb": round(sampler.killed_at / MB) if sampler.killed_at else None,
        "fds_before": fds_before, "fds_after": fds_after, "temp_left": leftovers,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after], "cpus": os.cpu_count(),
    }
    print(f"{len(outcomes)} jobs in {wall:.1f} s: {figures['jobs_per_s']} jobs/s "
          + ", ".join(f"{k} {figures[f'{k}_per_s']}/s ({sent[k]}, {wrong[k]} wrong)"
                      for k in KINDS))
    print(f"good jobs, client-side latency: p50 {figures['good_ms_p50']} ms, "
          f"p90 {figures['good_ms_p90']} ms, p99 {figures['good_ms_p99']} ms, "
          f"max {figures['good_ms_max']} ms; syntheses p50 {figures['synthesis_ms_p50']} ms, "
          f"p99 {figures['synthesis_ms_p99']} ms")
    print(f"worker RSS: baseline {figures['rss_baseline_mb']} MB, peak "
          f"{figures['rss_peak_mb']} MB (sampled {figures['rss_peak_sampled_mb']} MB), final "
          f"{figures['rss_final_mb']} MB; descriptors {fds_before} -> {fds_after}; "
          f"f5tts-* temp dirs left: {len(leftovers)}"
          + (f"; KILLED at {figures['killed_at_mb']} MB" if sampler.killed_at else ""))
    if sampler.samples:  # a leak grows with the jobs done; an allocator's pools level off
        start, end = sampler.samples[0][0], sampler.samples[-1][0]
        marks = [max(rss for t, rss in sampler.samples if t <= start + q * (end - start))
                 for q in (.25, .5, .75, 1)]
        figures["rss_peak_by_quarter_mb"] = [round(m / MB) for m in marks]
        print(f"worker RSS peak so far at 1/4, 1/2, 3/4 and the end of the load: "
              f"{', '.join(str(round(m / MB)) for m in marks)} MB")
    print(f"load average before {figures['loadavg_before']}, after "
          f"{figures['loadavg_after']} ({figures['cpus']} CPUs)")
    if wrong:
        for (kind, name), count in sorted(Counter(
                (o.job.kind, o.job.name) for o in outcomes if o.problem).items()):
            example = next(o.problem for o in outcomes if o.job.name == name and o.problem)
            print(f"  wrong: {kind} {name} x{count}: {example[:200]}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if alive and not wrong else 1


if __name__ == "__main__":
    raise SystemExit(main())
