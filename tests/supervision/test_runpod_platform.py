"""Boots served by the real RunPod SDK's production loop (no --rp_serve_api, no test
input) through the stand-in of RunPod's worker API (tests/runpod_standin.py): jobs taken,
answered, streamed, stopped on SIGTERM; a failed boot failing one queued job; a failed
fitness check named."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap import runpod_fitness
from bootstrap.stages import serve
from tests.boots import MODEL_STAGES, Boot, finish_boot, start_boot
from tests.runpod_standin import StandIn, failed_one_job, standin

# The SDK's network check dials 8.8.8.8:53, which no test here can reach; the memory check
# runs where a test asks for it (the fitness test below).
NO_INTERNET = {"RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true", "RUNPOD_SKIP_GPU_CHECK": "true"}


@pytest.fixture
def platform() -> Iterator[StandIn]:
    with standin() as api:
        yield api


def run_on(api: StandIn, tmp_path: Path, env: dict[str, str] | None = None,
           timeout: float = 120, **settings: str) -> Any:
    """A boot started with RunPod's variables pointing at the stand-in; serve runs."""
    full = {**api.env(), **NO_INTERNET, "BOOTSTRAP_SKIP": ",".join(MODEL_STAGES),
            **(env or {})}
    # The SDK keeps its job state in its cwd: each boot has its own.
    return start_boot(tmp_path / "vol", env=full, cwd=tmp_path, **settings)


def stop(proc: Any, tmp_path: Path, timeout: float = 60) -> Boot:
    proc.send_signal(signal.SIGTERM)
    return finish_boot(proc, [], tmp_path / "vol", timeout)


def test_a_healthy_boot_answers_a_queued_job_and_sends_heartbeats(
        platform: StandIn, tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    job = platform.add_job({"text": "hi"})
    proc = run_on(platform, tmp_path, handler="bootstrap.echo:make_handler")
    done = platform.result(job)
    assert done.body == {"output": {"echo": {"text": "hi"}, "worker_id": "standin-worker"}}
    deadline = time.monotonic() + 10
    while not platform.pings and time.monotonic() < deadline:
        time.sleep(0.1)
    result = stop(proc, tmp_path)
    assert platform.pings and platform.pings[0]["runpod_version"]
    assert platform.unauthorized == []
    assert result.last["event"] == "summary" and result.last["status"] == "stopped"
    # the SDK's own JSON lines are lifted: its level, the job's id and its message
    started = [e for e in result.named("output") if e.get("msg") == "Started."]
    assert started and started[0]["job_id"] == job and started[0]["level"] == "info"
    unlifted = [e["line"] for e in result.named("output") if e.get("line", "").startswith("{")]
    assert not unlifted, unlifted


def test_a_job_the_handler_fails_is_an_sdk_error_line_lifted_at_level_error(
        platform: StandIn, tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    job = platform.add_job({"text": "hi"})
    proc = run_on(platform, tmp_path, handler="platform_handlers:make_raising")
    done = platform.result(job)
    assert done.failed and "this job's input is refused" in done.body["error"]
    result = stop(proc, tmp_path)
    errors = [e for e in result.named("output") if e["level"] == "error"]
    assert any(e["msg"] == "Captured Handler Exception" and e["job_id"] == job
               for e in errors), errors


def test_a_generator_handler_streams_its_parts(platform: StandIn, tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    job = platform.add_job({"parts": 3})
    proc = run_on(platform, tmp_path, handler="platform_handlers:make_generator")
    done = platform.result(job)
    stop(proc, tmp_path)
    assert [s.body for s in platform.streamed if s.job_id == job] == [
        {"output": {"part": 0}}, {"output": {"part": 1}}, {"output": {"part": 2}}]
    assert not done.failed


def test_sigterm_during_a_job_lets_the_job_finish_then_the_boot_stops(
        platform: StandIn, tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    job = platform.add_job({"sleep_s": 3})
    proc = run_on(platform, tmp_path, handler="platform_handlers:make_slow")
    deadline = time.monotonic() + 60
    while not platform.taken and time.monotonic() < deadline:
        time.sleep(0.05)
    assert platform.taken, "the job was never taken"
    time.sleep(0.5)  # inside the handler's sleep
    result = stop(proc, tmp_path)
    assert platform.result(job, timeout=1).body == {"output": {"slept": 3}}
    assert (result.returncode, result.last["status"]) == (128 + signal.SIGTERM, "stopped")
    assert len(platform.taken) == 1


def test_a_boot_failing_in_serve_fails_one_queued_job_with_its_failure(
        platform: StandIn, tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    first, second = platform.add_job({"n": 1}), platform.add_job({"n": 2})
    result = finish_boot(run_on(platform, tmp_path, handler="platform_handlers:make_nothing"),
                         [], tmp_path / "vol")
    assert result.returncode == 18
    error = failed_one_job(platform, result.events, "serve", serve.E002.id,
                                  "the factory raised", first)
    assert "no weights.bin" in error["cause"]
    assert [j["id"] for j in platform.queue] == [second]  # the other job waits for a worker


def test_a_failed_fitness_check_is_named_with_the_setting_that_governs_it(
        platform: StandIn, tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    job = platform.add_job({"n": 1})
    env = {"RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "", "RUNPOD_MIN_MEMORY_GB": "100000"}
    result = finish_boot(run_on(platform, tmp_path, env=env,
                                handler="bootstrap.echo:make_handler"), [], tmp_path / "vol")
    assert result.returncode == 18
    summary = result.last
    assert summary["code"] == runpod_fitness.E001.id
    assert "_memory_check" in summary["msg"] and "Insufficient memory" in summary["msg"]
    assert "RUNPOD_MIN_MEMORY_GB" in summary["hint"]
    failed_one_job(platform, result.events, "serve", runpod_fitness.E001.id,
                          "RUNPOD_MIN_MEMORY_GB", job)
    # what the SDK itself tells the platform before it exits
    assert any(p.get("status") == ["unhealthy"] and p.get("check") == ["_memory_check"]
               for p in platform.pings)


def test_the_setting_turns_the_failed_job_off(platform: StandIn, tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    platform.add_job({"n": 1})
    result = finish_boot(run_on(platform, tmp_path, handler="platform_handlers:make_nothing",
                                failed_boot_job="false"), [], tmp_path / "vol")
    assert result.returncode == 18
    assert platform.taken == [] and platform.takes == 0
