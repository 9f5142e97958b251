"""A lease on a shared (network) volume that does not rely on ``flock``.

``flock`` is a no-op, or fails with ENOSYS, on many network filesystems, and it cannot
tell who holds a lock or for how long. A lease here is a file created exclusively
(``O_CREAT|O_EXCL``, which NFSv3+ honours) holding its owner: worker id, pid, host,
started, and a token. The holder touches it every few seconds (heartbeat). A waiter takes
it over when

- its owner is on this host and that process is gone (a SIGKILLed worker: at once), or
- the file has not changed for ``timeout_s`` as measured by the waiter's own clock (no
  clock comparison across hosts, whose clocks may disagree).

Takeover renames the stale file aside before re-creating, and checks that what it moved
is the stale file it judged; two waiters racing cost at most a duplicate build, never a
half-built result, because results are published by rename (``bootstrap.environment.envstore``).
Waiters log who holds the lease and for how long.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bootstrap.kernel import events

POLL_S = 0.1
LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class Owner:
    worker_id: str
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    started: float = field(default_factory=time.time)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def describe(self) -> str:
        return f"worker {self.worker_id} (pid {self.pid} on {self.host})"


class WaitedTooLong(TimeoutError):
    """``acquire`` gave up: another worker held the lease, heartbeating, past ``wait_s``."""


def _read(path: Path) -> Owner | None:
    try:
        data = json.loads(path.read_text())
        return Owner(**{k: data[k] for k in Owner.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None  # gone, or being written: the caller looks again


def _dead_here(owner: Owner) -> bool:
    """The owner ran on this host and its process is gone (or its pid was reused)."""
    if owner.host != socket.gethostname():
        return False
    import psutil  # only a waiter needs it, and only here

    try:
        return psutil.Process(owner.pid).create_time() > owner.started + 1
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


class Lease:
    """``with Lease(dir, "env-abc", owner) as lease: ...``; ``with lease.holding(done) as
    held: ...`` to stop waiting when the work is done elsewhere; or ``acquire``/``release``."""

    def __init__(self, locks: Path, name: str, owner: Owner, timeout_s: float = 60.0,
                 on_wait: Callable[[Owner | None, float], None] | None = None) -> None:
        self.path = locks / f"{name}.lease"
        self.owner = owner
        self.timeout_s = timeout_s
        self.on_wait = on_wait or _log_wait
        self.took_over: Owner | None = None  # whose stale lease this one replaced
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.lost = False

    # -- acquiring -------------------------------------------------------------------------

    def _try_create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f"{self.path.name}.new-{self.owner.token}")
        staging.write_text(json.dumps(asdict(self.owner)))
        try:
            # link() is an exclusive create that also publishes the owner record whole,
            # so a reader never sees an empty lease file.
            os.link(staging, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            staging.unlink(missing_ok=True)

    def _take_over(self, stale: Owner) -> None:
        aside = self.path.with_name(f"{self.path.name}.stale-{self.owner.token}")
        current = _read(self.path)
        if current is None or current.token != stale.token:
            return
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = _read(aside)
        if moved is not None and moved.token != stale.token:
            # we moved a fresh lease that replaced the stale one meanwhile: put it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        else:
            self.took_over = stale
            events.emit("warn", "lease.takeover", lease=self.path.name, holder=stale.describe(),
                        msg=f"taking over the stale lease of {stale.describe()}")
        aside.unlink(missing_ok=True)

    def acquire(self, done: Callable[[], bool] = lambda: False,
                wait_s: float | None = None) -> bool:
        """Hold the lease (True), or stop waiting when ``done()`` says the work another
        worker held it for is finished (False). Raises WaitedTooLong after ``wait_s``."""
        started = time.monotonic()
        last_log = -LOG_EVERY_S
        seen: tuple[float, str] | None = None  # (mtime, token) and when it last changed
        seen_at = started
        while True:
            # look before writing: a waiter polls, and on a network volume a staging file
            # written and removed ten times a second per waiter is load for nothing
            if not os.path.lexists(self.path) and self._try_create():
                self._start_heartbeat()
                return True
            if done():
                return False
            now = time.monotonic()
            owner = _read(self.path)
            try:
                state = (self.path.stat().st_mtime, owner.token if owner else "")
            except FileNotFoundError:
                continue
            if state != seen:
                seen, seen_at = state, now
            if owner is not None and (_dead_here(owner) or now - seen_at > self.timeout_s):
                self._take_over(owner)
                continue
            if now - last_log >= LOG_EVERY_S:
                last_log = now
                self.on_wait(owner, time.time() - owner.started if owner else 0.0)
            if wait_s is not None and now - started > wait_s:
                raise WaitedTooLong(f"waited {now - started:.0f} s for "
                                   f"{owner.describe() if owner else 'the lease'}")
            time.sleep(POLL_S)

    # -- holding ---------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease {self.path.name}",
                                      daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.timeout_s / 6):
            if not self.held():
                self.lost = True
                events.emit("error", "lease.lost", lease=self.path.name,
                            msg="another worker took this lease over")
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def held(self) -> bool:
        current = _read(self.path)
        return current is not None and current.token == self.owner.token

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None
        if self.held():
            self.path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def holding(self, done: Callable[[], bool] = lambda: False,
                wait_s: float | None = None) -> Iterator[bool]:
        """Wait for the lease as ``acquire`` does; the block gets True when it holds it,
        False when ``done()`` ended the wait. A held lease is released on every way out of
        the block, an exception or a stop signal included."""
        held = self.acquire(done, wait_s)
        try:
            yield held
        finally:
            if held:
                self.release()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _log_wait(owner: Owner | None, held_s: float) -> None:
    who = owner.describe() if owner else "another worker"
    events.emit("info", "lease.wait", holder=who, held_s=round(held_s, 1),
                msg=f"waiting: {who} has held the lease for {held_s:.0f} s")

