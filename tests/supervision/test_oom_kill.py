"""A worker killed by the kernel's OOM killer is named as such, from the memory cgroup's
own counter: a real cgroup v1 memory controller with a small limit, a real OOM kill."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.supervision import cgroup
from tests.boots import boot
from tests.supervision.test_worker_deaths import assert_named_failure

LIMIT = 300 * 1024 * 1024  # the supervisor and the worker's imports fit; the hoarding does not


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A child of this process's memory cgroup with a small limit and no swap."""
    parent = cgroup.memory_cgroup()
    assert parent is not None, "no memory cgroup found: the OOM test needs one (run as root)"
    path = parent.path / f"bootstrap-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        limit_file = "memory.limit_in_bytes" if parent.version == 1 else "memory.max"
        (path / limit_file).write_text(str(LIMIT))
        swap_file = "memory.memsw.limit_in_bytes" if parent.version == 1 else "memory.swap.max"
        if (path / swap_file).exists():
            (path / swap_file).write_text(str(LIMIT) if parent.version == 1 else "0")
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            # leftovers from a failed test; nothing of ours should outlive it
            os.kill(int(pid), signal.SIGKILL)
        path.rmdir()


def test_an_oom_killed_worker_is_named(volume: Path, memory_cgroup: Path) -> None:
    # The shell moves itself into the cgroup, then becomes the supervisor.
    enter = ("sh", "-c", f'echo $$ > {memory_cgroup}/cgroup.procs && exec "$@"', "sh")
    result = boot(volume, ("stage_eats_memory:eat_memory",), prefix=enter)
    last = assert_named_failure(result, "eat_memory", 128 + signal.SIGKILL)
    assert last["cause"] == "oom"
    assert "OOM killer" in last["msg"]
    assert "more memory" in last["hint"]
    worker = result.report()["worker"]
    assert worker["oom_killed"] is True
    before, after = worker["oom_kills"]
    assert after > before
    assert worker["max_rss_mb"] > 100  # the worker really grew before it was killed
