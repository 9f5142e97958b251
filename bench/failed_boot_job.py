"""How long a failed boot takes to fail its queued job, through the stand-in of RunPod's
worker API (tests/runpod_standin.py) on 127.0.0.1: a measurement, not a test.

Method (docs/performance.md): each case runs N times, interleaved (A, B, C, D, A, ...) so
that this shared machine's noise falls on all alike; medians and ranges are reported.

- volume:    a supervisor-side failure (the volume does not exist, volume.E001), one job
             queued: from the stage's failure event to the job's error at the stand-in,
             and from the failure to the supervisor's exit.
- serve:     a worker-side failure (the handler factory raises, serve.E002) with the SDK
             installed, the same two figures.
- off:       the serve case with BOOTSTRAP_FAILED_BOOT_JOB=0: failure to exit without the
             job's answer, the baseline the answer's cost is read against.
- empty:     the serve case with no job queued: the exit waits for the job-take long poll
             (the stand-in holds it HOLD_S; the platform's own hold is not known here, and
             bootstrap bounds it at runpod_failed_job.TAKE_WAIT_S).

Usage: python bench/failed_boot_job.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.runpod_standin import StandIn, seconds, standin  # noqa: E402

HOLD_S = 0.5
NO_INTERNET = {"RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true", "RUNPOD_SKIP_GPU_CHECK": "true"}
CASES: dict[str, dict[str, str]] = {
    "volume": {"BOOTSTRAP_MODE": "volume", "BOOTSTRAP_VOLUME": "/nonexistent/volume"},
    "serve": {"BOOTSTRAP_HANDLER": "platform_handlers:make_nothing"},
    "off": {"BOOTSTRAP_HANDLER": "platform_handlers:make_nothing",
            "BOOTSTRAP_FAILED_BOOT_JOB": "0"},
    "empty": {"BOOTSTRAP_HANDLER": "platform_handlers:make_nothing"},
}


def one(api: StandIn, case: str, workdir: Path) -> dict[str, float]:
    volume = workdir / "vol"
    volume.mkdir(parents=True)
    env = {**os.environ, **api.env(), **NO_INTERNET,
           "PYTHONPATH": str(REPO / "tests" / "fixtures"), "BOOTSTRAP_MODE": "local",
           "BOOTSTRAP_VOLUME": str(volume), "BOOTSTRAP_LOG_FORMAT": "json",
           "BOOTSTRAP_SKIP": "cuda,audio,model,warmup",
           "BOOTSTRAP_FALLBACK_REPORTS": str(workdir / "fallback"), **CASES[case]}
    job = None if case == "empty" else api.add_job({"bench": case})
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "bootstrap", "run"], env=env, cwd=workdir,
                          capture_output=True, text=True, timeout=120)
    exited = time.time()
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed_at = seconds(next(e["ts"] for e in events if e["event"] == "stage"
                             and e.get("status") == "fail"))
    out = {"start_to_failure_s": failed_at - started, "failure_to_exit_s": exited - failed_at}
    if job is not None and case != "off":
        out["failure_to_job_failed_s"] = api.result(job, timeout=30).at - failed_at
    api.queue.clear()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    figures: dict[str, dict[str, list[float]]] = {case: {} for case in CASES}
    with standin() as api, tempfile.TemporaryDirectory(prefix="bench-failed-job-") as tmp:
        api.hold_s = HOLD_S
        for run in range(args.runs):
            for case in CASES:
                for name, value in one(api, case, Path(tmp) / f"{case}-{run}").items():
                    figures[case].setdefault(name, []).append(value)
    print(f"load: {os.getloadavg()[0]:.2f}, runs: {args.runs}, stand-in hold: {HOLD_S} s")
    for case, named in figures.items():
        for name, values in named.items():
            print(f"{case:7} {name:26} median {statistics.median(values) * 1000:7.0f} ms  "
                  f"range {min(values) * 1000:.0f}-{max(values) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
