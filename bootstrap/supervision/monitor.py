"""Follows a running worker: relays its output, tracks its stages, enforces deadlines,
forwards stop requests, and records how it ended.

Everything the worker writes passes through here, so nothing reaches the console
unredacted and every stage transition is seen by a process that will outlive a crash.
Events come on a pipe of their own (the worker's events channel); stdout and stderr are the
app's output, relayed line by line and never read as messages.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from bootstrap.kernel import events, redaction
from bootstrap.kernel.protocol import (
    DeadlinePassed,
    Failure,
    StageResult,
    StageStart,
    Status,
    deadline_failure,
    is_ready,
)
from bootstrap.supervision import cgroup, sdk_lines
from bootstrap.supervision.death import Death

# After SIGUSR1, how long to wait for faulthandler's dump before moving on to SIGTERM.
DUMP_WAIT_S = 2.0
# After the worker is gone, how long a grandchild may keep its pipes open.
DRAIN_WAIT_S = 2.0
POLL_S = 0.1
OUTPUT_TAIL = 30
# A relayed output line is cut here: a library that prints a whole result (the RunPod SDK
# logs an answer of megabytes of base64) must not flood the console's log.
MAX_LINE = 4000
# Output is read in pieces of at most this: of a longer line (8 MB with no newline) the
# first piece is kept and the rest only counted as it is read, never held whole.
READ_LIMIT = 64 * 1024
# An event longer than this (a handler logging a whole result as a field) is dropped.
EVENT_LIMIT = 16 * 1024 * 1024
EVENTS = "events"  # the name of the events channel among the streams


@dataclass
class RunningStage:
    name: str
    started: float  # monotonic, for the deadline
    started_at: float  # epoch, for the report's timeline
    deadline_s: float
    fail_exit_code: int


@dataclass
class WorkerEnd:
    """What the monitor learned by the time the worker was gone."""

    death: Death
    failure: Failure | None  # a failure the worker reported, or a deadline the monitor hit
    stopped_by: int | None  # the stop signal forwarded to the worker, if any
    unfinished_stage: RunningStage | None
    output_tail: list[str] = field(default_factory=list)


class Line(NamedTuple):
    stream: str  # stdout, stderr or EVENTS
    text: str
    skipped: int = 0  # characters of the line past the read limit, counted and dropped


def _pump(pipe: IO[str], name: str, limit: int, lines: queue.Queue[Line | str]) -> None:
    """Queue each line of ``pipe`` at its end; of a line longer than ``limit`` characters,
    its first piece and how many more there were. Then ``name`` alone: the stream ended."""
    head: str | None = None  # the first piece of a line still being read
    skipped = 0
    for piece in iter(lambda: pipe.readline(limit), ""):
        whole = piece.endswith("\n") or len(piece) < limit  # the last line may lack one
        text = piece.rstrip("\n")
        if head is None:
            head = text
        else:
            skipped += len(text)
        if whole:
            lines.put(Line(name, head, skipped))
            head, skipped = None, 0
    if head is not None:
        lines.put(Line(name, head, skipped))
    lines.put(name)


class Monitor:
    def __init__(self, proc: subprocess.Popen[str], events_channel: IO[str], fault_log: Path,
                 stop_grace_s: float, stages: list[dict[str, Any]],
                 on_ready: Any = None) -> None:
        self.proc = proc
        self.events_channel = events_channel
        self.fault_log = fault_log
        self.stop_grace_s = stop_grace_s
        self.on_ready = on_ready
        self.stage: RunningStage | None = None
        # The boot report's own list: a report saved at "ready" already holds these stages.
        self.stages = stages
        self.failure: Failure | None = None
        self.stopped_by: int | None = None
        self.kill_at: float | None = None
        self.output_tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL)
        self._lines: queue.Queue[Line | str] = queue.Queue()
        self._open_streams = 3
        self._oom_group = cgroup.memory_cgroup()
        self._oom_before = self._oom_group.oom_kills() if self._oom_group else None
        self._reap_any = os.getpid() == 1  # as PID 1, orphans are ours to reap too

    # -- requests from the supervisor's signal handler ------------------------------------

    def request_stop(self, signum: int) -> None:
        """Forward a stop signal; the worker gets ``stop_grace_s`` before SIGKILL."""
        if self.stopped_by is None:
            self.stopped_by = signum
            self.kill_at = time.monotonic() + self.stop_grace_s
        self._signal(signum)

    # -- the loop -------------------------------------------------------------------------

    def watch(self) -> WorkerEnd:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for pipe, name, limit in ((self.events_channel, EVENTS, EVENT_LIMIT),
                                  (self.proc.stdout, "stdout", READ_LIMIT),
                                  (self.proc.stderr, "stderr", READ_LIMIT)):
            threading.Thread(target=_pump, args=(pipe, name, limit, self._lines),
                             daemon=True).start()
        death: Death | None = None
        drained_by = 0.0
        while True:
            self._take_lines()
            if death is None:
                death = self._reap()
                if death is not None:
                    drained_by = time.monotonic() + DRAIN_WAIT_S
            if death is not None and (self._open_streams == 0 or time.monotonic() > drained_by):
                break
            if death is None:
                self._enforce_deadline()
                self._enforce_kill()
        self._take_lines()
        return WorkerEnd(death, self.failure, self.stopped_by, self.stage,
                         list(self.output_tail))

    def _take_lines(self) -> None:
        if self._open_streams == 0:
            # The worker closed its output: it is exiting. Poll for its end quickly rather
            # than wait a whole tick for lines that will not come.
            time.sleep(0.005)
            return
        try:
            line = self._lines.get(timeout=POLL_S)
        except queue.Empty:
            return
        while True:
            if isinstance(line, str):  # a stream's end
                self._open_streams -= 1
            elif line.stream == EVENTS:
                self._relay_event(line)
            else:
                self._relay_output(line)
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return

    def _relay_output(self, line: Line) -> None:
        """A line the app wrote on stdout or stderr: output, whatever it looks like."""
        # Redacted before it is cut: a cut through a secret must not leave half of it.
        text = redaction.current().text(line.text)
        more = max(len(text) - MAX_LINE, 0) + line.skipped
        if more:
            text = f"{text[:MAX_LINE]} [... {more} more characters]"
        self.output_tail.append(text)
        for fields in sdk_lines.lifted(text) or [{"level": level_of(text), "line": text}]:
            events.emit(fields.pop("level"), "output", stream=line.stream, **fields)

    def _relay_event(self, line: Line) -> None:
        event = None if line.skipped else events.parse_line(line.text)
        if event is None:
            events.emit("warn", "event.dropped", length=len(line.text) + line.skipped,
                        msg="the worker wrote an event that could not be read; dropped")
            return
        self._follow(event)
        ready = is_ready(event)
        level = str(event.pop("level", "info"))
        name = str(event.pop("event"))
        events.emit(level if level in events.LEVELS else "info", name, **event)
        if ready and self.on_ready is not None:
            self.on_ready()

    def _follow(self, event: dict[str, Any]) -> None:
        """Track the worker's stage transitions from its events."""
        start = StageStart.from_event(event)
        if start is not None:
            self.stage = RunningStage(start.stage, time.monotonic(), time.time(),
                                      start.deadline_s, start.fail_exit_code)
            return
        result = StageResult.from_event(event)
        if result is None:
            return
        if result.started_at is None:
            result.started_at = self.stage.started_at if self.stage else time.time()
        if result.failure is not None:
            # The first failure is the one that counts: after a deadline, the worker's
            # own "interrupted" end must not replace it.
            if self.failure is None:
                self.failure = result.failure
            else:
                result.failure = self.failure
        elif result.status is Status.FAIL and self.failure is not None:
            result.failure = self.failure  # the stage this monitor stopped at its deadline
        self.stages.append(result.to_dict())
        self.stage = None

    # -- the worker's end -----------------------------------------------------------------

    def _reap(self) -> Death | None:
        while True:
            try:
                pid, status, rusage = os.wait4(-1 if self._reap_any else self.proc.pid,
                                               os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            if pid == self.proc.pid:
                # Popen must not wait for a pid we already reaped.
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                oom_after = self._oom_group.oom_kills() if self._oom_group else None
                return Death.from_status(status, rusage, self._oom_before, oom_after)
            # an orphan re-parented to us as PID 1: reaped, so it is no zombie
            events.emit("debug", "orphan.reaped", pid=pid,
                        exit_code=os.waitstatus_to_exitcode(status))

    # -- deadlines and escalation ---------------------------------------------------------

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signum)

    def _enforce_kill(self) -> None:
        if self.kill_at is not None and time.monotonic() > self.kill_at:
            events.emit("error", "worker.kill", msg="the worker did not stop in time; SIGKILL",
                        grace_s=self.stop_grace_s)
            self._signal(signal.SIGKILL)
            self.kill_at = None

    def _enforce_deadline(self) -> None:
        stage = self.stage
        if stage is None or stage.deadline_s <= 0 or self.failure is not None:
            return
        elapsed = time.monotonic() - stage.started
        if elapsed <= stage.deadline_s:
            return
        stack = self._dump_stacks()
        self.failure = deadline_failure(stage.name, stage.deadline_s, stack)
        DeadlinePassed(stage.name, stage.deadline_s, stack).emit(
            "stage ran past its deadline; stopping the worker")
        self._signal(signal.SIGTERM)
        self.kill_at = time.monotonic() + self.stop_grace_s

    def _dump_stacks(self) -> str:
        """Ask the worker's faulthandler for every thread's stack and read it back."""
        before = self.fault_log.stat().st_size if self.fault_log.exists() else 0
        self._signal(signal.SIGUSR1)
        give_up = time.monotonic() + DUMP_WAIT_S
        text = last = ""
        while time.monotonic() < give_up:
            time.sleep(0.1)
            text = read_from(self.fault_log, before)
            if text and text == last:  # the dump has stopped growing
                break
            last = text
        return redaction.current().text(text.strip())


# "ERROR  | ..." (the RunPod SDK's log lines) or "WARNING:name:..." (logging's default).
_LEVEL_PREFIX = re.compile(r"^(DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL)\s*[|:]")
_LEVEL_NAMES = {"WARNING": "warn", "CRITICAL": "critical"}


def level_of(line: str) -> str:
    """The level a library gave a plain output line, so an SDK's errors read as errors."""
    match = _LEVEL_PREFIX.match(line)
    if match is None:
        return "info"
    word = match.group(1)
    return _LEVEL_NAMES.get(word, word.lower())


def read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
