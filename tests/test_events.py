from __future__ import annotations

import io
import json
import logging

import pytest

from bootstrap import events, redaction


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


def test_a_closed_stdout_does_not_raise() -> None:
    stream = Pipe()
    events.configure("json", stream)
    stream.close()
    events.emit("info", "boot")  # must not raise: a log line never takes the worker down
