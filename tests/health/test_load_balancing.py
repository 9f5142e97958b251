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
        # (Checks sent before the supervisor listened find a closed port: they are not counted.)
        before = [a for a in checks.answers if booting.at <= a.at < healthy.at]
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


def _failed_boot(volume: Path, tmp_path: Path, stages: tuple[str, ...],
                 **settings: str) -> tuple[dict[str, object], dict[str, object], float, Path]:
    """A boot that fails: its summary, the 503's body read after it, how long the health
    path stayed up after the summary, and the termination message's file."""
    port, health_port = free_port(), free_port()
    termination = tmp_path / "termination-log"
    proc = lb_boot(volume, stages, port, health_port, health_hold_s="3",
                   termination_log=str(termination), **settings)
    try:
        out = Output(proc)
        summary = out.wait_for("summary", timeout=60)
        summary_at = time.monotonic()
        answer = get(health_port)
        assert answer is not None and answer.status == 503, answer
        assert answer.headers["Content-Type"] == "application/json"
        proc.wait(timeout=30)
        held = time.monotonic() - summary_at
        assert get(health_port) is None  # gone with the process
        out.join(5)
        # The summary stays the boot's last line, the hold after it.
        assert out.events[-1]["event"] == "summary"
        return summary, answer.json(), held, termination
    finally:
        kill_boot(proc)


def test_a_failed_worker_stage_answers_503_with_the_failure_then_exits(
        volume: Path, tmp_path: Path) -> None:
    summary, body, held, termination = _failed_boot(
        volume, tmp_path, (SLOW, "stage_raises:raises"))
    assert summary["stage"] == "raises"
    assert body["status"] == "failed"
    assert body["stage"] == "raises"
    assert body["msg"] == summary["msg"] == "RuntimeError: the checkpoint loader blew up"
    assert body["hint"] == summary["hint"]
    assert body["exit_code"] == summary["exit_code"] == 19
    assert 2.0 <= held <= 10.0, held  # health_hold_s = 3
    # Kubernetes reads the same failure as the container's last words.
    message = json.loads(termination.read_text())
    assert {k: message[k] for k in ("stage", "msg", "hint")} == {
        k: body[k] for k in ("stage", "msg", "hint")}


def test_a_failed_serve_names_its_check_id_in_the_503(volume: Path, tmp_path: Path) -> None:
    summary, body, _, termination = _failed_boot(
        volume, tmp_path, (), handler="no_such_module:make_handler")
    assert body["stage"] == summary["stage"] == "serve"
    assert body["code"] == summary["code"] == "serve.E001"
    assert "BOOTSTRAP_HANDLER" in str(body["hint"])
    assert json.loads(termination.read_text())["code"] == "serve.E001"


def test_one_port_for_both_the_app_server_takes_over_the_health_path(
        volume: Path, tmp_path: Path) -> None:
    """PORT == PORT_HEALTH: the supervisor listens until the app's server answers, both
    with SO_REUSEPORT, then closes; the app's server answers the path from then on."""
    port = free_port()
    proc = lb_boot(volume, (SLOW,), port, port)  # no http_app: the handler over HTTP
    try:
        with Poller(port) as checks:
            out = Output(proc)
            booting = checks.wait_for(204, timeout=10)
            first_200 = checks.wait_for(200, timeout=60)
            closed = epoch(out.wait_for("health.healthy", timeout=5)["ts"])
            time.sleep(0.5)
        answers = [a for a in checks.answers if a.at >= booting.at]
        # From the first 204 on, every check was answered: the port was never closed.
        assert 0 not in {a.status for a in answers}
        # Between the app's first 200 and the supervisor's close, a check reached either
        # listener (204 or 200); once the supervisor closed, only the app's server.
        print(f"overlap {closed - first_200.at:.3f} s")
        after = [a for a in answers if a.at > closed + 0.05]
        assert after and {a.status for a in after} == {200}
        assert all(a.headers.get("server") == "uvicorn" for a in after)
        answer = post(port, "/runsync", {"input": {"n": 1}})
        assert answer.json()["output"]["echo"] == {"n": 1}
    finally:
        kill_boot(proc)
