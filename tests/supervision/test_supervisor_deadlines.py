"""A supervisor stage that hangs past its deadline is stopped with its stack, as a worker
stage is: the failure names the stage and the deadline, the summary and the report carry
every thread's stack, and the boot exits with the deadline's code.

The hangs are real: an installer waiting on a package index that accepts connections and
never answers, and a volume whose file system keeps one request without answering it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel import events
from bootstrap.kernel.config import Config
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.reports import report
from tests.boots import Boot, boot, finish_boot, start_boot
from tests.environment import hungfs


class SilentIndex:
    """A TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}/simple"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)

    def all_closed_by_the_client(self, timeout_s: float) -> bool:
        """Whether every client hung up (a read returns end of file): its process is gone."""
        give_up = time.monotonic() + timeout_s
        for conn in self.connections:
            conn.settimeout(max(0.01, give_up - time.monotonic()))
            try:
                if conn.recv(65536 * 16) != b"" and conn.recv(65536 * 16) != b"":
                    return False
            except TimeoutError:
                return False
        return True

    def close(self) -> None:
        self.server.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent_index() -> Iterator[SilentIndex]:
    index = SilentIndex()
    yield index
    index.close()


def assert_stopped_at_deadline(result: Boot, stage: str, deadline_s: int,
                               report: dict[str, Any] | None = None) -> str:
    last = result.last
    assert last["event"] == "summary", result.stdout[-3000:]
    assert result.returncode == last["exit_code"] == ExitCode.DEADLINE
    assert last["stage"] == stage and last["cause"] == "deadline"
    assert last["msg"] == f"stage {stage} ran past its deadline of {deadline_s} s"
    assert f"BOOTSTRAP_DEADLINE_{stage.upper()}" in last["hint"]
    (announced,) = [e for e in result.named("deadline") if "interrupting" in e["msg"]]
    assert announced["stage"] == stage and announced["process"] == "supervisor"
    report = report or result.report()
    assert report["outcome"] == "failed" and report["exit_code"] == ExitCode.DEADLINE
    assert report["failure"]["traceback"] == last["traceback"]
    (entry,) = [s for s in report["stages"] if s["stage"] == stage]
    assert entry["status"] == "fail" and entry["failure"]["cause"] == "deadline"
    assert entry["duration_ms"] >= deadline_s * 1000
    traceback: str = last["traceback"]
    return traceback


def test_an_install_waiting_on_a_silent_index_is_stopped_at_its_deadline(
        volume: Path, silent_index: SilentIndex) -> None:
    started = time.monotonic()
    result = boot(volume, requirements_text="click", index_url=silent_index.url,
                  deadline_install="3", stop_grace_s="5", timeout=60)
    took = time.monotonic() - started
    stack = assert_stopped_at_deadline(result, "install", 3)
    # the stack is where it was stuck: the install stage waiting on its installer
    assert 'bootstrap/stages/install.py", line' in stack
    assert 'bootstrap/kernel/command.py", line' in stack and " in wait" in stack
    assert silent_index.connections, "the installer reached the index"
    # interrupted, not waited out: well before the installer's own network timeouts
    assert took < 3 + 5, f"the boot took {took:.1f} s"
    # the stage unwound: the installer's process group is gone, the lease released and
    # the half-built environment removed
    assert silent_index.all_closed_by_the_client(timeout_s=5)
    store = volume / ".bootstrap"
    assert list((store / "locks").iterdir()) == []
    assert list((store / "envs").iterdir()) == []


@pytest.mark.timeout(90)
def test_a_volume_lookup_that_never_returns_ends_the_boot_with_its_stack(
        tmp_path: Path) -> None:
    """A FUSE request the daemon took is never interrupted by a signal: after the grace the
    supervisor ends the boot itself. The report goes to the volume if it still answers
    there within the grace (here it does: only /hung is silent), else to the fallback
    directory (the next test). The process's exit waits for the kernel to give its thread
    back, which happens when the volume's daemon goes away."""
    backing = tmp_path / "backing"
    (backing / "hung").mkdir(parents=True)
    mountpoint = tmp_path / "volume"
    with hungfs.mounted(backing, mountpoint, "/hung") as volume:
        started = time.monotonic()
        proc = start_boot(volume, volume_expect="hung/vocab.txt", deadline_volume="2",
                          stop_grace_s="2")
        # Not conftest's wait_for_line: its kill on a timeout would wait on a process
        # that cannot die while the volume is mounted. pytest-timeout bounds this read,
        # and leaving the block takes the volume's daemon away.
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if json.loads(line)["event"] == "summary":
                break
        took = time.monotonic() - started
    result = finish_boot(proc, lines, volume)
    saved = Path(result.last["report"])
    if saved.is_relative_to(mountpoint):  # the volume answered; read it without the mount
        saved = backing / saved.relative_to(mountpoint)
    stack = assert_stopped_at_deadline(result, "volume", 2, json.loads(saved.read_text()))
    assert 'bootstrap/stages/volume.py", line' in stack and "in _doubled" in stack
    assert [e for e in result.named("deadline") if "did not stop" in e["msg"]]
    assert took < 2 + 2 + 2 + 10, f"the summary came after {took:.1f} s"


@pytest.mark.timeout(60)
def test_a_report_the_volume_does_not_take_goes_to_the_fallback(tmp_path: Path) -> None:
    backing = tmp_path / "backing"
    (backing / ".bootstrap").mkdir(parents=True)
    fallback = tmp_path / "fallback"
    boot_report = report.BootReport("run1", "worker1", "volume")
    with hungfs.mounted(backing, tmp_path / "volume", "/.bootstrap") as volume:
        config = Config(volume=volume, fallback_reports=fallback)
        with events.capture() as said:
            started = time.monotonic()
            path = report.save(boot_report, config, volume_wait_s=1)
            took = time.monotonic() - started
    assert path is not None and path.parent == fallback
    assert json.loads(path.read_text())["run_id"] == "run1"
    assert took < 1 + 5, f"the save took {took:.1f} s"
    (moved,) = [e for e in said if e["event"] == "report.fallback"]
    assert "the volume did not answer in 1 s" in moved["reason"]
