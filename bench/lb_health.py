"""A load-balancing boot as RunPod's load balancer sees it, beside the boot's own ready time:
a measurement, not a test.

RunPod measures a load-balancing worker's cold start from the first 204 its health path
answers to the first 200. Each run starts `bootstrap run` with PORT and PORT_HEALTH set (two
free ports on 127.0.0.1) and polls `/ping` on PORT_HEALTH over real HTTP every POLL_S from
just before the process is started, as the platform would, and records:

- start_to_204:  from the process's start to the first 204 (the supervisor's health server
                 is up; before it, nothing listens);
- 204_to_200:    the first 204 to the first 200 (the platform's cold start);
- ready:         the boot's own `ready_ms` (the boot.ready event: from the supervisor's start
                 to the worker's handing over to its server);
- ready_to_200:  from boot.ready to the first 200 (the app's HTTP server coming up, and the
                 supervisor's probe seeing it).

Cases, interleaved (echo, f5, echo, ...) so that this shared machine's noise falls on both:
- echo: the echo app's HTTP server (bootstrap.echo:make_http_app), no model stages;
- f5:   the F5-TTS app (its own HTTP server) on the tiny random model, every stage, CPU.

Usage: python bench/lb_health.py [--runs 5] [--cases echo,f5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.boots import kill_boot, start_boot  # noqa: E402
from tests.health.checks import Output, Poller, epoch  # noqa: E402
from tests.s3server import free_port  # noqa: E402

POLL_S = 0.01


def _settings(case: str, volume: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The boot's environment and its BOOTSTRAP_* settings for one case."""
    if case == "echo":
        return ({"BOOTSTRAP_APP": "", "BOOTSTRAP_SKIP": "cuda,audio,model,warmup"},
                {"http_app": "bootstrap.echo:make_http_app"})
    from f5worker.handler import tiny_model

    settings = {k: str(v) for k, v in tiny_model.settings(volume).items()}
    return ({"BOOTSTRAP_APP": "f5worker.app:APP", "BOOTSTRAP_HANDLER": "", "BOOTSTRAP_SKIP": ""},
            {**settings, "allow_cpu": "true"})


def one(case: str, volume: Path) -> dict[str, float]:
    port, health_port = free_port(), free_port()
    env, settings = _settings(case, volume)
    env |= {"PORT": str(port), "PORT_HEALTH": str(health_port)}
    with Poller(health_port, every_s=POLL_S) as checks:
        started = time.time()
        proc = start_boot(volume, (), env=env, **settings)
        try:
            out = Output(proc)
            booting = checks.wait_for(204, timeout=60)
            healthy = checks.wait_for(200, timeout=600)
            ready = out.wait_for("boot.ready", timeout=10)
        finally:
            kill_boot(proc)
    ready_at = epoch(ready["ts"])
    return {"start_to_204": booting.at - started, "204_to_200": healthy.at - booting.at,
            "ready": ready["ready_ms"] / 1000, "ready_to_200": healthy.at - ready_at}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default="echo,f5")
    args = parser.parse_args()
    cases = args.cases.split(",")
    figures: dict[str, dict[str, list[float]]] = {case: {} for case in cases}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-lb-health-") as tmp:
        volumes = {case: Path(tmp) / case for case in cases}
        for case, volume in volumes.items():
            volume.mkdir()
            if case == "f5":
                subprocess.run([sys.executable, "-m", "f5worker.handler.tiny_model",
                                str(volume)], cwd=REPO, check=True, capture_output=True)
        for _ in range(args.runs):
            for case in cases:
                for name, value in one(case, volumes[case]).items():
                    figures[case].setdefault(name, []).append(value)
                # Boot reports pile up on the volume; they are not what is measured.
                shutil.rmtree(volumes[case] / ".bootstrap" / "reports", ignore_errors=True)
    print(f"load (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; runs: {args.runs}; "
          f"poll every {POLL_S * 1000:.0f} ms")
    for case, named in figures.items():
        for name, values in named.items():
            print(f"{case:5} {name:13} median {statistics.median(values) * 1000:7.0f} ms  "
                  f"range {min(values) * 1000:.0f}-{max(values) * 1000:.0f} ms")
        ratio = [b / r for b, r in zip(named["204_to_200"], named["ready"], strict=True)]
        print(f"{case:5} 204_to_200 / ready  median {statistics.median(ratio):.2f}  "
              f"range {min(ratio):.2f}-{max(ratio):.2f}")


if __name__ == "__main__":
    main()
