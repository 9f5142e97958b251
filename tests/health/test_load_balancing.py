"""A load-balancing endpoint, over real HTTP on 127.0.0.1: the supervisor answers the
health path from its first second (204 with the stage running), 200 once the app's HTTP
server answers, a job through that server, and after a failed boot a 503 with the failure
for ``health_hold_s``, the same failure in the Kubernetes termination message."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.boots import kill_boot, start_boot
from tests.health.checks import Output, Poller, epoch, get, post
from tests.s3server import free_port

SLOW = "stage_sleeps:sleeps"


def lb_boot(volume: Path, stages: tuple[str, ...], port: int, health_port: int,
            **settings: str) -> subprocess.Popen[str]:
    env = {"PORT": str(port), "PORT_HEALTH": str(health_port), "SLOW_STAGE_S": "3",
           "BOOTSTRAP_APP": "", "BOOTSTRAP_SKIP": "cuda"}
    return start_boot(volume, stages, env=env, **settings)


def test_ping_says_204_from_the_first_second_then_200_and_the_app_answers_a_job(
        volume: Path, tmp_path: Path) -> None:
    port, health_port = free_port(), free_port()
    ready_file = tmp_path / "ready"
    started = time.time()
    proc = lb_boot(volume, (SLOW,), port, health_port,
                   http_app="bootstrap.echo:make_http_app", ready_file=str(ready_file))
    try:
        with Poller(health_port) as checks:
            out = Output(proc)
            booting = checks.wait_for(204, timeout=10)
            boot_event = out.wait_for("boot", timeout=10)
            healthy = checks.wait_for(200, timeout=60)
        # The first 204 within 1 s of the supervisor's start (its boot event; the health
        # server starts before it), no answer but 204 before the 200, and the slow stage
        # named while it ran.
        assert booting.at - epoch(boot_event["ts"]) < 1.0, (booting.at, boot_event)
        print(f"first 204 {booting.at - started:.2f} s after the process was started")
        before = [a for a in checks.answers if a.at < healthy.at]
        assert {a.status for a in before} == {204}
        assert all(a.body == b"" for a in before)  # a 204 has no body
        stages = {a.headers["X-Bootstrap-Stage"] for a in before}
        assert "sleeps" in stages, stages
        assert healthy.json() == {"status": "healthy"}
        ready = out.wait_for("health.healthy", timeout=5)
        assert ready["port"] == port
        assert ready_file.read_text() == "ready\n"
        # A job through the app's own server, the echo handler behind it.
        answer = post(port, "/runsync", {"input": {"prompt": "hi"}})
        assert answer.status == 200, answer.body
        assert answer.json()["output"]["echo"] == {"prompt": "hi"}
        assert answer.json()["status"] == "COMPLETED"
        bad = post(port, "/runsync", {"no": "input"})
        assert bad.status == 400
        # The supervisor's 200 is the app's answer, asked again at each check.
        assert get(health_port).status == 200
    finally:
        kill_boot(proc)
