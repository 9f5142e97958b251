"""The one stage loop, for the supervisor, the worker and ``bootstrap check``.

One rule for skipping (a stage named in ``skip`` neither runs nor is checked), one start
event with the deadline, a heartbeat while a stage works, its deadline enforced (here by
a watchdog thread in the supervisor; from outside, by the supervisor's Monitor, for the
worker), and every way a stage can end turned into one
:class:`~bootstrap.kernel.protocol.StageResult`, written as the stage's end event.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence

from bootstrap.kernel import events, redaction
from bootstrap.kernel.context import Context
from bootstrap.kernel.heartbeat import Heartbeat
from bootstrap.kernel.message import Level, Message, error
from bootstrap.kernel.protocol import (
    Failure,
    StageResult,
    StageStart,
    Status,
    emit_message,
)
from bootstrap.kernel.stage import Stage, StageFailed, Task
from bootstrap.kernel.watchdog import DeadlineInterrupt, Watchdog

CHECK_RAISED = error("check.E001", "the check of stage {stage} raised: {error}",
                     "a bug in that stage's check; `bootstrap run` would meet the same error")
SKIPPED = "skipped by configuration"

Found = list[tuple[str, Message]]
OnStuck = Callable[[Failure], None]


class Shutdown(BaseException):
    """Raised in the main thread when SIGTERM/SIGINT asks the process to stop.

    A BaseException, so that a stage's ``except Exception`` cannot swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def skipped(stage: Stage, ctx: Context) -> bool:
    """The one skip rule: the configuration names the stage."""
    return stage.name in ctx.config.skip


class StageLoop:
    """Runs stages in order until one fails.

    ``watch``: enforce deadlines in this process (the supervisor). The worker leaves its
    deadlines to the supervisor's Monitor, which can stop a process this one cannot (a
    crash, a native library holding the interpreter). ``on_stuck``: what ends the boot
    when an interrupted stage does not stop (see ``bootstrap.kernel.watchdog``).
    """

    def __init__(self, ctx: Context, *, watch: bool = False, on_stuck: OnStuck | None = None,
                 on_result: Callable[[StageResult], None] | None = None) -> None:
        self.ctx = ctx
        self.watch = watch
        self.on_stuck = on_stuck
        self.on_result = on_result
        self.current: Stage | None = None  # where a stop request finds the loop
        self.started_at: float | None = None  # when the current stage started (epoch)
        self.tasks: list[Task] = []  # what the stages left running, for the loop's owner

    def run(self, stages: Sequence[Stage]) -> StageResult | None:
        """Every stage in turn; the failed stage's result, or None when all passed."""
        for stage in stages:
            self.current, self.started_at = stage, time.time()
            result = skip_stage(stage, SKIPPED) if skipped(stage, self.ctx) else self._run(stage)
            if self.on_result is not None:
                self.on_result(result)
            if result.status is Status.FAIL:
                return result
        self.current = self.started_at = None
        return None

    def check(self, stages: Sequence[Stage]) -> Found:
        """Every stage's read-only check; a stage that will not run has nothing to say."""
        return [(stage.name, message) for stage in stages if not skipped(stage, self.ctx)
                for message in checks_of(stage, self.ctx)]

    def _run(self, stage: Stage) -> StageResult:
        if not self.watch:
            return run_stage(stage, self.ctx, tasks=self.tasks)
        return run_stage(stage, self.ctx, Watchdog(
            stage.name, deadline_of(stage, self.ctx), self.ctx.config.stop_grace_s,
            self.on_stuck), tasks=self.tasks)


def deadline_of(stage: Stage, ctx: Context) -> float:
    """The stage's own deadline, unless the configuration (`deadlines`) overrides it."""
    return ctx.config.deadline_for(stage.name, stage.deadline_s)


def checks_of(stage: Stage, ctx: Context) -> list[Message]:
    """A stage's check; a check that raises is itself a finding, not a crash."""
    try:
        return stage.check(ctx)
    except Exception as exc:
        return [CHECK_RAISED.at(stage.name, stage=stage.name, error=f"{type(exc).__name__}: "
                                f"{exc}"[:200])]


def _status(messages: list[Message]) -> Status:
    return Status.WARN if any(m.level >= Level.WARNING for m in messages) else Status.OK


def run_stage(stage: Stage, ctx: Context, watchdog: Watchdog | None = None,
              tasks: list[Task] | None = None) -> StageResult:
    """Run ``stage`` and report it. Never raises, except :class:`Shutdown`.

    ``watchdog``: enforces the deadline in this process; without one, only a watcher
    outside (the supervisor's Monitor) does. ``tasks``: where the work the stage leaves
    running goes."""
    events.bind(stage=stage.name)
    # The supervisor follows these fields: the deadline it enforces, the code it exits
    # with if the worker dies in this stage without a word.
    StageStart(stage.name, str(stage.side), deadline_of(stage, ctx), int(stage.exit_code)).emit()
    started = time.monotonic()
    started_at = time.time()

    def ended(status: Status, failure: Failure | None = None) -> StageResult:
        return StageResult(stage.name, status, int((time.monotonic() - started) * 1000),
                           failure=failure, started_at=started_at)

    try:
        if watchdog is None:
            with Heartbeat(stage.name, ctx.config.heartbeat_s):
                outcome = stage.run(ctx)
        else:
            # The watchdog is armed before its heartbeat thread starts, which then keeps it.
            with watchdog, Heartbeat(stage.name, ctx.config.heartbeat_s, watchdog):
                outcome = stage.run(ctx)
    except StageFailed as exc:
        result = ended(Status.FAIL, Failure(
            stage.name, stage.exit_code, exc.message.msg, exc.message.hint, exc.message.id,
            exc.cause))
    except DeadlineInterrupt as exc:
        result = ended(Status.FAIL, exc.failure)
    except SystemExit as exc:
        if exc.code in (0, None):  # a clean end, e.g. the RunPod SDK after a test job
            result = ended(Status.OK)
        else:
            result = ended(Status.FAIL, Failure(
                stage.name, stage.exit_code, msg=f"the stage called sys.exit({exc.code!r})",
                hint="a stage should raise StageFailed with a message; the traceback shows "
                     "where", cause="sys.exit", traceback=redaction.redact(traceback.format_exc())))
    except Shutdown:
        ended(Status.FAIL).emit("warn", msg="interrupted by a request to stop")
        events.unbind("stage")
        raise
    except Exception as exc:  # an unexpected error inside a stage is still that stage's failure
        result = ended(Status.FAIL, Failure(
            stage.name, stage.exit_code,
            msg=f"{type(exc).__name__}: {exc}"[:300],
            hint="an unexpected error; the traceback below and the boot report say where",
            cause="exception",
            traceback=redaction.redact(traceback.format_exc()),
        ))
    else:
        result = ended(Status.OK)
        if outcome is not None:
            result.facts, result.messages = outcome.facts, outcome.messages
            result.status = Status.SKIP if outcome.skipped else _status(outcome.messages)
            if tasks is not None:
                tasks.extend(outcome.tasks)
    events.restore_if_replaced(f"stage {stage.name}")
    for message in result.messages:
        emit_message(stage.name, message)
    result.emit()
    events.unbind("stage")
    return result


def skip_stage(stage: Stage, reason: str) -> StageResult:
    # No duration: it never ran. Its time places it on the timeline where the loop passed it.
    result = StageResult(stage.name, Status.SKIP, None, facts={"reason": reason},
                         started_at=time.time())
    result.emit()
    return result
