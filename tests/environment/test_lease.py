"""The lease without flock: exclusive, kept alive by its heartbeat, taken over when stale,
and waiters that say who holds it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

import pytest

from bootstrap.environment import lease
from bootstrap.environment.lease import Lease, Owner
from bootstrap.kernel import events


def _write_owner(locks: Path, name: str, owner: Owner) -> Path:
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{name}.lease"
    path.write_text(json.dumps(asdict(owner)))
    return path


def test_a_held_lease_excludes_others_and_is_released(tmp_path: Path) -> None:
    first = Lease(tmp_path, "env", Owner("a"), timeout_s=30)
    assert first.acquire()
    second = Lease(tmp_path, "env", Owner("b"), timeout_s=30)
    with pytest.raises(TimeoutError, match="worker a"):
        second.acquire(wait_s=0.3)
    first.release()
    assert second.acquire(wait_s=5)
    assert second.held() and not first.held()
    second.release()
    assert not (tmp_path / "env.lease").exists()


def test_the_owner_record_names_worker_pid_host_and_start(tmp_path: Path) -> None:
    owner = Owner("worker-7")
    with Lease(tmp_path, "env", owner):
        record = json.loads((tmp_path / "env.lease").read_text())
    assert record["worker_id"] == "worker-7"
    assert record["pid"] == owner.pid and record["host"] == owner.host
    assert record["started"] == owner.started


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_owner(tmp_path, "env", Owner("crashed", pid=dead.pid))
    taker = Lease(tmp_path, "env", Owner("b"), timeout_s=3600)
    assert taker.acquire(wait_s=5)
    assert taker.took_over is not None and taker.took_over.worker_id == "crashed"
    taker.release()


def test_a_lease_from_another_host_is_taken_over_only_when_its_heartbeat_stops(
        tmp_path: Path) -> None:
    _write_owner(tmp_path, "env", Owner("remote", pid=1, host="another-host"))
    taker = Lease(tmp_path, "env", Owner("b"), timeout_s=0.5)
    with events.capture() as logs:
        assert taker.acquire(wait_s=30)
    assert taker.took_over is not None and taker.took_over.host == "another-host"
    assert any(e["event"] == "lease.takeover" for e in logs)
    taker.release()


def test_a_heartbeating_holder_keeps_its_lease(tmp_path: Path) -> None:
    holder = Lease(tmp_path, "env", Owner("alive", host="another-host"), timeout_s=0.6)
    assert holder.acquire()
    # the waiter runs under another host name, so only the heartbeat can prove the holder
    # alive; it must still be waiting when it gives up
    waiter = Lease(tmp_path, "env", Owner("b"), timeout_s=0.6)
    with pytest.raises(TimeoutError):
        waiter.acquire(wait_s=2.5)
    assert holder.held() and waiter.took_over is None
    holder.release()


def test_waiters_log_who_holds_the_lease(tmp_path: Path) -> None:
    holder = Lease(tmp_path, "env", Owner("builder-1"))
    assert holder.acquire()
    waiter = Lease(tmp_path, "env", Owner("b"))
    with events.capture() as logs, pytest.raises(TimeoutError):
        waiter.acquire(wait_s=0.3)
    waits = [e for e in logs if e["event"] == "lease.wait"]
    assert waits and "worker builder-1" in waits[0]["holder"]
    assert "held_s" in waits[0]
    holder.release()


def test_waiting_stops_when_the_work_is_done(tmp_path: Path) -> None:
    holder = Lease(tmp_path, "env", Owner("a"))
    assert holder.acquire()
    done = threading.Event()
    threading.Timer(0.2, done.set).start()
    assert Lease(tmp_path, "env", Owner("b")).acquire(done=done.is_set, wait_s=30) is False
    holder.release()


def test_a_holder_whose_lease_was_taken_over_notices(tmp_path: Path) -> None:
    holder = Lease(tmp_path, "env", Owner("slow"), timeout_s=0.3)
    assert holder.acquire()
    path = tmp_path / "env.lease"
    path.unlink()
    _write_owner(tmp_path, "env", Owner("thief"))
    holder._stop.wait(1.0)  # a few heartbeats
    assert holder.lost
    holder.release()
    assert json.loads(path.read_text())["worker_id"] == "thief"  # not removed by the loser


def test_owner_liveness_uses_process_start_time_against_pid_reuse() -> None:
    alive = Owner("me")
    assert lease._dead_here(alive) is False
    reused = Owner("old", started=alive.started - 10 ** 6)  # our pid, but long before us
    assert lease._dead_here(reused) is True
