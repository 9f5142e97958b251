from __future__ import annotations

import asyncio
import inspect
import io
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import structlog

from bootstrap.kernel import events, redaction
from bootstrap.stages.serve import with_job_context
from tests.boots import MODEL_STAGES, boot


class Pipe(io.StringIO):
    """A stream that is not a TTY and counts flushes."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture
def pipe() -> Pipe:
    stream = Pipe()
    events.configure("auto", stream)
    yield stream
    events.unbind("run_id", "stage")


def test_each_event_is_one_flushed_json_line_with_fields_in_order(pipe: Pipe) -> None:
    events.bind(run_id="r1")
    events.emit("info", "stage", stage="volume", status="ok", duration_ms=5, extra=1)
    events.emit("warn", "heartbeat", msg="still running, 30 s")
    lines = pipe.getvalue().splitlines()
    assert pipe.flushes == 2
    first = json.loads(lines[0])
    assert list(first)[:7] == ["ts", "level", "event", "run_id", "stage", "status",
                               "duration_ms"]
    assert first["extra"] == 1 and first["run_id"] == "r1"
    assert json.loads(lines[1])["level"] == "warn"


def test_secrets_are_redacted_before_writing(pipe: Pipe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_0123456789")
    redaction.reset()
    events.emit("error", "summary", msg="failed with rpa_0123456789",
                nested={"url": "https://u:rpa_0123456789@example.com"})
    assert "rpa_0123456789" not in pipe.getvalue()


def test_stdlib_logging_goes_through_events(pipe: Pipe) -> None:
    logging.getLogger("f5_tts").warning("vocab has %d tokens", 70)
    event = json.loads(pipe.getvalue())
    assert (event["event"], event["level"], event["logger"], event["msg"]) == (
        "log", "warn", "f5_tts", "vocab has 70 tokens")


def test_console_form_is_short_and_keeps_the_stack_readable() -> None:
    text = events.render_console({"ts": "2026-11-28T10:00:00.123Z", "level": "error",
                                  "event": "summary", "stage": "model", "status": "fail",
                                  "msg": "checkpoint missing", "exit_code": 16,
                                  "traceback": "line 1\nline 2"}, colour=False)
    assert text.splitlines() == [
        "10:00:00.123 error summary model fail - checkpoint missing exit_code=16",
        "    line 1", "    line 2"]


def test_capture_collects_events_instead_of_writing(pipe: Pipe) -> None:
    with events.capture() as captured:
        events.emit("info", "boot", mode="local")
    assert [e["event"] for e in captured] == ["boot"]
    assert pipe.getvalue() == ""


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_closed_stdout_does_not_raise(fmt: str) -> None:
    stream = Pipe()
    events.configure(fmt, stream)
    stream.close()
    events.emit("info", "boot")  # must not raise: a log line never takes the worker down


# -- the job's context in a real boot -------------------------------------------------------

def _boot_with(volume: Path, handler: str, request: dict[str, object]) -> list[dict[str, object]]:
    result = boot(volume, (), skip=",".join(MODEL_STAGES), handler=f"handler_logs:{handler}",
                  test_input=json.dumps(request))
    assert result.returncode == 0, result.stdout
    return result.events


def test_a_handlers_structlog_and_stdlib_lines_carry_the_boot_and_the_job(volume: Path) -> None:
    """`bootstrap run --test-input` with a handler that logs as an app author would: its
    lines come out of the boot's one JSON stream with the run id, the worker's stage and
    the job's id and action (the SDK names a test job `local_test`)."""
    stream = _boot_with(volume, "make_handler", {"action": "speak", "text": "hi"})
    (said,) = [e for e in stream if e["event"] == "app.said"]
    (library,) = [e for e in stream if e["event"] == "log" and e.get("logger") == "app.library"]
    run_id = next(e["run_id"] for e in stream if e["event"] == "summary")
    for line in (said, library):
        assert (line["run_id"], line["process"], line["stage"]) == (run_id, "worker", "serve")
        assert (line["job_id"], line["action"]) == ("local_test", "speak")
    assert said["words"] == 3 and said["level"] == "info"
    assert (library["level"], library["msg"]) == ("warn", "a library line for this job")
    # the job's fields end with the job: the worker's last event, serve's end, has none
    (served,) = [e for e in stream if e["event"] == "stage" and e["status"] == "ok"
                 and e["stage"] == "serve"]
    assert "job_id" not in served and "voice" not in served


def test_an_app_that_replaces_the_structlog_setup_is_put_back_and_named(volume: Path) -> None:
    """``structlog.configure`` is process-wide. A stage and a handler factory that call it
    would leave every later line without the redactor and outside the JSON stream; each is
    named in a warning, bootstrap's setup is restored, and the job's lines are JSON with the
    boot's and the job's fields."""
    result = boot(volume, ("stage_reconfigures:reconfigures",),
                  skip=",".join(MODEL_STAGES),
                  handler="handler_logs:make_reconfiguring_handler",
                  test_input=json.dumps({"action": "speak", "text": "hi"}))
    assert result.returncode == 0, result.stdout + result.stderr
    restored = [e for e in result.events if e["event"] == "events.restored"]
    assert [e["msg"].split(" replaced")[0] for e in restored] == [
        "stage reconfigures", "the handler factory handler_logs:make_reconfiguring_handler"]
    assert all(e["level"] == "warn" and "docs/apps.md" in e["hint"] for e in restored)
    (said,) = [e for e in result.events if e["event"] == "app.said"]
    assert (said["job_id"], said["stage"], said["process"]) == ("local_test", "serve", "worker")
    assert not [line for line in result.stdout.splitlines()
                if line.strip() and not line.startswith("{")], "every line is an event"


# The SDK's own job runners (rp_job.run_job, run_job_generator), as its worker loop calls
# them: each job an asyncio task. (Its local --test_input mode never iterates a generator.)

def _job(job_id: str, action: str) -> dict[str, object]:
    return {"id": job_id, "input": {"action": action}}


def test_concurrent_jobs_each_log_their_own_context_and_leave_none_behind() -> None:
    rp_job = pytest.importorskip("runpod.serverless.modules.rp_job")

    async def slow(job: dict[str, object]) -> dict[str, object]:
        structlog.get_logger().info("app.start")
        await asyncio.sleep(0.05)  # the other job runs meanwhile
        structlog.contextvars.bind_contextvars(voice=job["id"])
        structlog.get_logger().info("app.end")
        return {}

    def plain(job: dict[str, object]) -> dict[str, object]:
        structlog.contextvars.bind_contextvars(voice="leaked?")
        structlog.get_logger().info("app.plain")
        return {}

    async def both() -> None:
        await asyncio.gather(rp_job.run_job(with_job_context(slow), _job("j1", "speak")),
                             rp_job.run_job(with_job_context(slow), _job("j2", "add")))
        await rp_job.run_job(with_job_context(plain), _job("j3", "list"))
        events.emit("info", "after")

    with events.capture() as seen:
        asyncio.run(both())
    fields = [(e["event"], e.get("job_id"), e.get("action"), e.get("voice")) for e in seen]
    assert sorted(fields[:4], key=str) == sorted([
        ("app.start", "j1", "speak", None), ("app.start", "j2", "add", None),
        ("app.end", "j1", "speak", "j1"), ("app.end", "j2", "add", "j2")], key=str)
    assert fields[4:] == [("app.plain", "j3", "list", "leaked?"), ("after", None, None, None)]


def test_a_streaming_handler_logs_with_its_job_at_every_step() -> None:
    rp_job = pytest.importorskip("runpod.serverless.modules.rp_job")

    def stream(job: dict[str, object]) -> Iterator[int]:
        for part in range(2):
            structlog.get_logger().info("app.part", part=part)
            yield part

    async def parts_of(handler: Callable[..., object]) -> list[object]:
        return [item async for item in rp_job.run_job_generator(handler, _job("j9", "talk"))]

    async def astream(job: dict[str, object]) -> AsyncIterator[int]:
        for item in stream(job):
            yield item

    for handler in (stream, astream):
        wrapped = with_job_context(handler)
        assert inspect.isgeneratorfunction(wrapped) == inspect.isgeneratorfunction(handler)
        assert inspect.isasyncgenfunction(wrapped) == inspect.isasyncgenfunction(handler)
        with events.capture() as seen:
            assert asyncio.run(parts_of(wrapped)) == [{"output": 0}, {"output": 1}]
            events.emit("info", "after")
        assert [(e["event"], e.get("job_id"), e.get("action")) for e in seen] == [
            ("app.part", "j9", "talk"), ("app.part", "j9", "talk"), ("after", None, None)]


def test_the_boot_context_reaches_events_from_other_threads(pipe: Pipe) -> None:
    """The heartbeat and the lease's heartbeat emit from threads of their own, which start
    with an empty contextvars context: the boot's fields must still be there."""
    events.bind(run_id="r7", stage="install")
    thread = threading.Thread(target=events.emit, args=("info", "heartbeat"))
    thread.start()
    thread.join()
    event = json.loads(pipe.getvalue())
    assert (event["run_id"], event["stage"]) == ("r7", "install")


def test_a_lone_surrogate_is_written_escaped_not_lost(pipe: Pipe) -> None:
    structlog.get_logger().warning("job.refused", text="a\udc80b")
    line = pipe.getvalue()
    assert "\\udc80" in line and json.loads(line)["level"] == "warn"


def test_a_signal_handler_may_emit_while_an_event_is_being_written() -> None:
    """The stop handler runs on the main thread, possibly inside a write: the lock is
    re-entrant, so the nested event is written (before the outer one finishes)."""

    class Reentrant(Pipe):
        def write(self, text: str) -> int:
            if "outer" in text and "inner" not in self.getvalue():
                events.emit("warn", "inner")  # what a signal handler would do here
            return super().write(text)

    stream = Reentrant()
    events.configure("json", stream)
    events.emit("info", "outer")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "inner", "outer"]
