"""A deadline for a stage that runs in this process: the supervisor's stages.

A worker stage is watched from outside, by the supervisor's ``Monitor`` (SIGUSR1 for a
stack dump, then SIGTERM, then SIGKILL). A supervisor stage has nobody outside, so the
stage's heartbeat thread (``bootstrap/kernel/heartbeat.py``, one per stage already) watches it
through :meth:`Watchdog.tick`, with the same steps:

1. at the deadline, every thread's stack is dumped by faulthandler (the same form as the
   worker's dump) and a ``deadline`` event says so;
2. the main thread gets SIGALRM, whose handler raises :class:`DeadlineInterrupt`. A read
   on a silent socket, a wait on a child, a sleep: each returns with EINTR, and the
   exception unwinds the stage through its ``finally`` blocks (leases are released, the
   children of ``bootstrap.kernel.command`` killed with their process group);
3. a wait that no signal ends -- a request a FUSE file system took and never answers ends
   only when it is answered -- gets ``grace_s``; then ``on_stuck`` ends the boot from
   this thread (the supervisor writes its report and summary, then exits).
"""

from __future__ import annotations

import faulthandler
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType

from bootstrap.kernel import redaction
from bootstrap.kernel.protocol import DeadlinePassed, Failure, deadline_failure

INTERRUPT_SIGNAL = signal.SIGALRM


class DeadlineInterrupt(BaseException):
    """Raised in the main thread when its stage ran past its deadline.

    A BaseException, so that a stage's ``except Exception`` cannot swallow it.
    """

    def __init__(self, passed: DeadlinePassed) -> None:
        super().__init__(f"stage {passed.stage} ran past its deadline of {passed.deadline_s:g} s")
        self.passed = passed

    @property
    def failure(self) -> Failure:
        return deadline_failure(self.passed.stage, self.passed.deadline_s, self.passed.stack)


def dump_stacks() -> str:
    """Every thread's Python stack, written by faulthandler (it needs no cooperation from
    the thread that is stuck), redacted."""
    # A file in memory: faulthandler writes to a file descriptor, and a pipe could fill up.
    with open(os.memfd_create("bootstrap-stacks"), "w+b") as dump:
        faulthandler.dump_traceback(file=dump, all_threads=True)
        dump.seek(0)
        text = dump.read().decode("utf-8", "replace")
    return redaction.current().text(text.strip())


# The stage the main thread runs under a watchdog now. The SIGALRM handler stays installed
# once set: a watchdog thread that fires just as its stage ends may still send its signal,
# and it must then find no stage to interrupt, never the default action (the end of the
# process). Nor does a stage's end wait for its watchdog's thread: that costs a wake-up
# per stage on every boot.
_active: Watchdog | None = None
_installed = False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    watchdog = _active
    if watchdog is not None:
        watchdog.interrupt()


class Watchdog:
    """``with Watchdog(...):`` around a stage run in the main thread."""

    def __init__(self, stage: str, deadline_s: float, grace_s: float,
                 on_stuck: Callable[[Failure], None] | None = None) -> None:
        self.stage = stage
        self.deadline_s = deadline_s
        self.grace_s = grace_s
        self.on_stuck = on_stuck
        self.passed: DeadlinePassed | None = None
        self._done = threading.Event()
        self._raised = False
        self._started: float | None = None
        self._stuck = False

    def __enter__(self) -> Watchdog:
        global _active, _installed
        # A signal handler can only be set, and only runs, in the main thread.
        if self.armed:
            if not _installed:
                signal.signal(INTERRUPT_SIGNAL, _interrupt)
                _installed = True
            _active = self
            self._started = time.monotonic()
        return self

    @property
    def armed(self) -> bool:
        return self.deadline_s > 0 and threading.current_thread() is threading.main_thread()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _active
        self._done.set()
        if _active is self:
            _active = None

    def due(self) -> float:
        """When :meth:`tick` next has something to do (monotonic seconds; inf: never)."""
        if self._started is None or self._done.is_set() or self._stuck:
            return math.inf
        if self.passed is None:
            return self._started + self.deadline_s
        return self._started + self.deadline_s + self.grace_s

    def tick(self, now: float) -> None:
        """Called by the heartbeat thread at :meth:`due`: interrupt the stage at its
        deadline; end the boot when the interrupt did not end it within the grace."""
        if now < self.due():
            return
        if self.passed is None:
            self.passed = DeadlinePassed(self.stage, self.deadline_s, dump_stacks())
            self.passed.emit("stage ran past its deadline; interrupting it")
            main = threading.main_thread().ident
            assert main is not None
            signal.pthread_kill(main, INTERRUPT_SIGNAL)
            return
        self._stuck = True
        DeadlinePassed(self.stage, self.deadline_s, dump_stacks()).emit(
            f"the stage did not stop within {self.grace_s:g} s of its interrupt (a wait no "
            "signal ends); ending the boot")
        if self.on_stuck is not None:
            self.on_stuck(deadline_failure(self.stage, self.deadline_s, self.passed.stack))

    def interrupt(self) -> None:
        """In the main thread, on the watchdog's signal: end the stage, once."""
        if self.passed is not None and not self._raised and not self._done.is_set():
            self._raised = True
            raise DeadlineInterrupt(self.passed)
