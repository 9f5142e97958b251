"""Runs one stage: one start event, one end event with duration and outcome, a heartbeat
while it works, and every way it can fail turned into a :class:`StageResult`.
"""

from __future__ import annotations

import time
import traceback

from bootstrap import events, redaction
from bootstrap.context import Context
from bootstrap.heartbeat import Heartbeat
from bootstrap.message import Level, Message
from bootstrap.stage import Failure, Stage, StageFailed, StageResult, Status


class Shutdown(BaseException):
    """Raised in the main thread when SIGTERM/SIGINT asks the process to stop.

    A BaseException, so that a stage's ``except Exception`` cannot swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _emit_messages(stage: str, messages: list[Message]) -> None:
    for message in messages:
        level = {Level.DEBUG: "debug", Level.INFO: "info", Level.WARNING: "warn"}.get(
            message.level, "error")
        events.emit(level, "message", stage=stage, **{
            ("code" if key == "id" else key): value
            for key, value in message.to_dict().items() if key != "level"})


def _status(messages: list[Message]) -> Status:
    return Status.WARN if any(m.level >= Level.WARNING for m in messages) else Status.OK


def run_stage(stage: Stage, ctx: Context) -> StageResult:
    """Run ``stage`` and report it. Never raises, except :class:`Shutdown`."""
    events.bind(stage=stage.name)
    # The supervisor follows these fields: the deadline it enforces, the code it exits
    # with if the worker dies in this stage without a word.
    events.emit("info", "stage", status="start", side=str(stage.side),
                deadline_s=ctx.config.deadline_for(stage.name, stage.deadline_s),
                fail_exit_code=int(stage.exit_code))
    started = time.monotonic()
    started_at = time.time()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with Heartbeat(stage.name, ctx.config.heartbeat_s):
            outcome = stage.run(ctx)
    except StageFailed as exc:
        failure = Failure(stage.name, stage.exit_code, exc.message.msg, exc.message.hint,
                          exc.message.id, exc.cause)
    except SystemExit as exc:
        if exc.code in (0, None):  # a clean end, e.g. the RunPod SDK after a test job
            result = StageResult(stage.name, Status.OK, elapsed_ms(), started_at=started_at)
            events.emit("info", "stage", status="ok", duration_ms=result.duration_ms)
            events.unbind("stage")
            return result
        failure = Failure(
            stage.name, stage.exit_code, msg=f"the stage called sys.exit({exc.code!r})",
            hint="a stage should raise StageFailed with a message; the traceback shows where",
            cause="sys.exit", traceback=redaction.redact(traceback.format_exc()))
    except Shutdown:
        events.emit("warn", "stage", status="fail", duration_ms=elapsed_ms(),
                    msg="interrupted by a request to stop")
        events.unbind("stage")
        raise
    except Exception as exc:  # an unexpected error inside a stage is still that stage's failure
        failure = Failure(
            stage.name, stage.exit_code,
            msg=f"{type(exc).__name__}: {exc}"[:300],
            hint="an unexpected error; the traceback below and the boot report say where",
            cause="exception",
            traceback=redaction.redact(traceback.format_exc()),
        )
    else:
        result = StageResult(stage.name, Status.OK, elapsed_ms(), started_at=started_at)
        if outcome is not None:
            result.facts, result.messages = outcome.facts, outcome.messages
            result.status = Status.SKIP if outcome.skipped else _status(outcome.messages)
        _emit_messages(stage.name, result.messages)
        events.emit("info", "stage", status=str(result.status), duration_ms=result.duration_ms,
                    **({"facts": result.facts} if result.facts else {}))
        events.unbind("stage")
        return result

    result = StageResult(stage.name, Status.FAIL, elapsed_ms(), failure=failure,
                         started_at=started_at)
    events.emit("error", "stage", status="fail", duration_ms=result.duration_ms,
                **failure.to_dict())
    events.unbind("stage")
    return result


def skip_stage(stage: Stage, reason: str) -> StageResult:
    events.emit("info", "stage", stage=stage.name, status="skip", reason=reason)
    return StageResult(stage.name, Status.SKIP, 0, facts={"reason": reason},
                       started_at=time.time())
