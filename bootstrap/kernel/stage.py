"""The stage contract, its result, and the boot's lifecycle.

A stage is one module under ``bootstrap/stages/`` exposing ``STAGE = Stage(...)`` with two
entry points:

- ``check(ctx) -> list[Message]``: read-only; ``bootstrap check`` and the start of ``run``;
- ``run(ctx) -> Outcome | None``: does the work, idempotent on a warm volume; a failure is
  raised as :class:`StageFailed` carrying the message that names it.

The stage loop (``bootstrap.kernel.runner``) turns either into a
:class:`~bootstrap.kernel.protocol.StageResult` with timings.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message

if TYPE_CHECKING:
    from bootstrap.kernel.context import Context


class Side(enum.StrEnum):
    """Which process runs a stage: the light supervisor or the worker in the environment."""

    SUPERVISOR = "supervisor"
    WORKER = "worker"


class Phase(enum.StrEnum):
    """Where a boot is. Transitions are guarded in one place: ``Lifecycle.advance``."""

    STARTING = "starting"
    BOOTING = "booting"
    READY = "ready"
    SETUP_FAILED = "setup_failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


_ALLOWED = {
    Phase.STARTING: {Phase.BOOTING, Phase.SETUP_FAILED, Phase.STOPPING},
    Phase.BOOTING: {Phase.READY, Phase.SETUP_FAILED, Phase.STOPPING, Phase.STOPPED},
    Phase.READY: {Phase.STOPPING, Phase.STOPPED, Phase.SETUP_FAILED},
    Phase.STOPPING: {Phase.STOPPED, Phase.SETUP_FAILED},
    Phase.SETUP_FAILED: set(),
    Phase.STOPPED: set(),
}


class Lifecycle:
    def __init__(self) -> None:
        self.phase = Phase.STARTING

    def advance(self, to: Phase) -> None:
        if to is self.phase:
            return
        if to not in _ALLOWED[self.phase]:
            raise RuntimeError(f"illegal lifecycle transition {self.phase} -> {to}")
        self.phase = to

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.SETUP_FAILED, Phase.STOPPED)


class StageFailed(Exception):
    """A named failure: the message says what and how to fix it, ``cause`` says why.

    ``transient`` marks failures worth retrying inside the stage (network, 5xx); a
    permanent one (a missing file) will not fix itself on restart.
    """

    def __init__(self, message: Message, cause: str = "", *, transient: bool = False) -> None:
        super().__init__(message.msg)
        self.message = message
        self.cause = cause
        self.transient = transient


class Task:
    """Work a stage leaves behind when it returns, in a thread of its own (unpacking the
    rest of a copy, recording a hint for later boots). The process that ran the stage
    knows only this: it calls ``ready`` once the boot is ready (or, in a boot that does not
    serve, has run its stages), and ``finish`` before its summary, the boot's last line:
    the task then says its result as an event, or that it still runs."""

    def ready(self) -> None:
        """The boot is ready: work that waits for that starts now."""

    def finish(self, wait_s: float) -> None:
        """Wait at most ``wait_s`` for the work, then say how it ended, as an event."""
        raise NotImplementedError


@dataclass
class Outcome:
    """What a stage's ``run`` hands back: facts worth reporting, non-fatal messages, and
    the background work it leaves running."""

    facts: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    skipped: bool = False
    tasks: list[Task] = field(default_factory=list)


def _no_checks(ctx: Context) -> list[Message]:
    return []


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], Outcome | None]
    check: Callable[[Context], list[Message]] = _no_checks
    side: Side = Side.WORKER
    exit_code: int = ExitCode.CUSTOM_STAGE
    deadline_s: float = 600.0  # default; `deadlines` in the configuration overrides it
