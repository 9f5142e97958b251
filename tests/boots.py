"""Helpers of the tests that boot a worker for real: a real supervisor process, a real
worker, real signals (the user stages that misbehave live in ``tests/fixtures/``). Plain
functions, imported as ``from tests.boots import boot``; the fixtures are in conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
# The F5-TTS app's worker stages that need torch (the boots here skip them).
MODEL_STAGES = ("cuda", "audio", "model", "warmup")


@dataclass
class Boot:
    returncode: int
    stdout: str
    stderr: str
    volume: Path

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every stdout line, parsed: a line that is not a JSON event fails the test."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    def reports(self) -> list[Path]:
        return sorted((self.volume / ".bootstrap" / "reports").glob("*.json"))

    def report(self) -> dict[str, Any]:
        paths = self.reports()
        assert len(paths) == 1, paths
        data: dict[str, Any] = json.loads(paths[0].read_text())
        return data


def boot_env(volume: Path, stages: tuple[str, ...] = (), **settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "BOOTSTRAP_MODE": "local",
        "BOOTSTRAP_VOLUME": str(volume),
        "BOOTSTRAP_LOG_FORMAT": "json",
        "BOOTSTRAP_EXTRA_STAGES": ",".join(stages),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")])),
    })
    # These boots test the supervisor with user stages: the model stages (their own tests
    # are under tests/f5worker) and serve are skipped unless a test asks for them.
    env.setdefault("BOOTSTRAP_SKIP", ",".join((*MODEL_STAGES, "serve")))
    env.setdefault("BOOTSTRAP_HANDLER", "bootstrap.echo:make_handler")
    env.update({f"BOOTSTRAP_{k.upper()}": v for k, v in settings.items()})
    return env


def start_boot(volume: Path, stages: tuple[str, ...] = (), *, env: Mapping[str, str] = (),
               prefix: tuple[str, ...] = (), cwd: Path = REPO,
               **settings: str) -> subprocess.Popen[str]:
    full_env = boot_env(volume, stages, **settings)
    full_env.update(env)
    # Its own session, so a test that times out can take the whole boot down with it.
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "bootstrap", "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=cwd,
        start_new_session=True)


def kill_boot(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def boot(volume: Path, stages: tuple[str, ...] = (), *, timeout: float = 120,
         env: Mapping[str, str] = (), prefix: tuple[str, ...] = (), cwd: Path = REPO,
         **settings: str) -> Boot:
    proc = start_boot(volume, stages, env=env, prefix=prefix, cwd=cwd, **settings)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_boot(proc)
        raise
    return Boot(proc.returncode, stdout, stderr, volume)


def wait_for_line(proc: subprocess.Popen[str], predicate: Any, timeout: float = 60) -> list[str]:
    """Read the boot's stdout until an event matches; returns the lines read so far."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if predicate(json.loads(line)):
            return lines
    kill_boot(proc)
    raise AssertionError(f"no matching event within {timeout} s; got:\n{''.join(lines)}")


def finish_boot(proc: subprocess.Popen[str], lines: list[str], volume: Path,
                timeout: float = 60) -> Boot:
    """Wait for a boot started with ``start_boot``; ``lines`` are those already read."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_boot(proc)
        raise
    return Boot(proc.returncode, "".join(lines) + stdout, stderr, volume)


def read_only(path: Path) -> tuple[str, ...]:
    """A prefix that runs a command in a private mount namespace where ``path`` (and what it
    holds) is a read-only bind mount of itself."""
    script = (f'mount --bind "{path}" "{path}" && mount -o remount,ro,bind "{path}" "{path}"'
              ' && exec "$@"')
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh")


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root``: files with size, mode and modification time (ns),
    directories with their mode. A directory's own mtime is left out: the volume stage's
    write probe, created and removed again, is allowed to touch it."""
    if not root.exists():
        return {}
    out = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        is_dir = path.is_dir() and not path.is_symlink()
        out[str(path.relative_to(root))] = (0 if is_dir else st.st_size, st.st_mode,
                                            0 if is_dir else st.st_mtime_ns)
    return out
