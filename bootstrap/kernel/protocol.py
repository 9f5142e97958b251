"""What the worker tells the supervisor, typed once for both sides.

The worker writes JSON event lines on stdout (``bootstrap/kernel/events.py``); the supervisor's
``Monitor`` reads them back. Each message that the other side acts on or records is a
type or function here with the one way to write it (``emit``) and, where the supervisor
acts on it, the one way to read it (``from_event``), so writer and reader cannot drift:

- ``StageStart``: a stage began, with the deadline the supervisor enforces and the exit
  code it uses if the worker dies inside it without a word;
- ``StageResult``: a stage ended. The end event *is* the result's dict, the same dict the
  boot report keeps, whichever process ran the stage (a warning keeps its message, a
  failure its hint and stack);
- heartbeats, ready, the worker's reported stop, ``DeadlinePassed``: the rest of the story.

Cheap to import (it is paid on every boot, by both processes): the small messages are
named tuples and functions, not dataclasses.

Check messages (``message`` events) carry a :class:`~bootstrap.kernel.message.Message`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bootstrap.kernel import events
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Level, Message

STAGE = "stage"
MESSAGE = "message"
HEARTBEAT = "heartbeat"
READY = "ready"
WORKER_STOPPED = "worker.stopped"
DEADLINE = "deadline"


class Status(enum.StrEnum):
    START = "start"
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass
class Failure:
    """Why a boot failed, in the words the console, the report and the exit code share."""

    stage: str
    exit_code: int
    msg: str
    hint: str = ""
    code: str = ""  # the check id, e.g. volume.E003
    cause: str = ""
    traceback: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "exit_code": self.exit_code, "msg": self.msg}
        for key in ("hint", "code", "cause", "traceback"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def deadline_failure(stage: str, deadline_s: float, stack: str) -> Failure:
    """A stage stopped at its deadline: the same words whichever process ran it."""
    return Failure(
        stage=stage, exit_code=int(ExitCode.DEADLINE),
        msg=f"stage {stage} ran past its deadline of {deadline_s:g} s",
        hint=f"the stack shows where it was stuck; if it is only slow, raise "
             f"BOOTSTRAP_DEADLINE_{stage.upper()}",
        cause="deadline", traceback=stack)


@dataclass
class StageResult:
    """A stage's end: its ``stage`` event and its entry in the boot report."""

    stage: str
    status: Status
    duration_ms: int | None  # None: it never ran (skipped by configuration)
    facts: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    failure: Failure | None = None
    started_at: float | None = None  # epoch seconds; places the stage on a timeline

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "status": str(self.status)}
        if self.duration_ms is not None:
            out["duration_ms"] = self.duration_ms
        if self.started_at is not None:
            out["started_at"] = round(self.started_at, 3)
        if self.facts:
            out["facts"] = self.facts
        if self.messages:
            out["messages"] = [m.to_dict() for m in self.messages]
        if self.failure:
            out["failure"] = self.failure.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageResult:
        failure = data.get("failure")
        duration = data.get("duration_ms")
        return cls(str(data["stage"]), Status(data["status"]),
                   None if duration is None else int(duration),
                   facts=dict(data.get("facts") or {}),
                   messages=[Message.from_dict(m) for m in data.get("messages") or []],
                   failure=Failure.from_dict(failure) if failure else None,
                   started_at=data.get("started_at"))

    @property
    def level(self) -> str:
        return {Status.FAIL: "error", Status.WARN: "warn"}.get(self.status, "info")

    def emit(self, level: str | None = None, **extra: Any) -> None:
        events.emit(level or self.level, STAGE, **self.to_dict(), **extra)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> StageResult | None:
        """The result in a stage's end event; None for any other line (a user's library
        may log an event named "stage" too: it must not take the supervisor down)."""
        if event.get("event") != STAGE or event.get("status") in (None, Status.START):
            return None
        try:
            return cls.from_dict(event)
        except (KeyError, ValueError, TypeError, AttributeError):
            return None


class StageStart(NamedTuple):
    stage: str
    side: str
    deadline_s: float
    fail_exit_code: int

    def emit(self) -> None:
        events.emit("info", STAGE, stage=self.stage, status=str(Status.START), side=self.side,
                    deadline_s=self.deadline_s, fail_exit_code=self.fail_exit_code)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> StageStart | None:
        if event.get("event") != STAGE or event.get("status") != Status.START:
            return None
        try:
            return cls(str(event["stage"]), str(event.get("side", "")),
                       float(event.get("deadline_s") or 0),
                       int(event.get("fail_exit_code") or ExitCode.CUSTOM_STAGE))
        except (KeyError, ValueError, TypeError):
            return None


def emit_message(stage: str, message: Message) -> None:
    """A stage's check message as its own event, for the console and for log searches."""
    level = {Level.DEBUG: "debug", Level.INFO: "info", Level.WARNING: "warn"}.get(
        message.level, "error")
    events.emit(level, MESSAGE, stage=stage, **{
        ("code" if key == "id" else key): value
        for key, value in message.to_dict().items() if key != "level"})


def emit_heartbeat(stage: str, elapsed_s: int) -> None:
    """A stage is still running: six minutes of silence look the same as a hang."""
    events.emit("info", HEARTBEAT, stage=stage, elapsed_s=elapsed_s,
                msg=f"still running, {elapsed_s} s")


def emit_ready(**facts: Any) -> None:
    """The worker hands over to the handler: the boot is complete."""
    events.emit("info", READY, msg="worker ready; handing requests to the handler", **facts)


def is_ready(event: dict[str, Any]) -> bool:
    return event.get("event") == READY


def emit_worker_stopped(signal: str) -> None:
    events.emit("warn", WORKER_STOPPED, signal=signal, msg="stopped on request")


class DeadlinePassed(NamedTuple):
    """Announced by whoever enforces a deadline, before it stops the stage."""

    stage: str
    deadline_s: float
    stack: str

    def emit(self, msg: str) -> None:
        events.emit("error", DEADLINE, stage=self.stage, deadline_s=self.deadline_s, msg=msg,
                    stack=self.stack)
