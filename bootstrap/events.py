"""Structured events: one JSON object per line on stdout, flushed at once.

The whole event system is this module. Every event is a flat dict
(``ts, level, event, run_id, worker_id, stage, status, duration_ms, ...``), passes the
redactor, and is written as one line and flushed: stdout is a pipe on the platform and a
buffered line dies with a killed process. On a TTY (or on request) a console form is
written instead. Stdlib logging, and every library that uses it, goes through here too.

Why not structlog: importing it costs 80-130 ms on the 2-core reference machine (it pulls
asyncio and its dev renderers), paid by the supervisor and again by the worker on every
boot, which alone would spend the whole 150 ms overhead budget (docs/performance.md).
What we need from it -- bound context, processors, a JSON and a console renderer -- is
the 100 lines below.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from bootstrap import redaction

KEY_ORDER = ("ts", "level", "event", "run_id", "worker_id", "stage", "status", "duration_ms")
LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40, "critical": 50}
# Fields the console form leaves out of the key=value tail: shown elsewhere or noise.
_CONSOLE_HIDDEN = {"ts", "level", "event", "run_id", "worker_id", "stage", "status", "msg"}
_COLOURS = {"debug": "2", "info": "36", "warn": "33", "error": "31", "critical": "1;31"}
_MULTILINE = ("traceback", "stack")

_bound: dict[str, Any] = {}  # one process is one boot: context is shared by every thread
_stream: TextIO = sys.stdout
_format = "json"
_min_level = LEVELS["info"]
# Re-entrant: a signal handler (the supervisor's stop handler) runs on the main thread and
# emits an event, possibly while that same thread is inside emit() holding the lock.
_write_lock = threading.RLock()
_captured: list[dict[str, Any]] | None = None


def resolve_format(fmt: str, stream: TextIO) -> str:
    if fmt == "auto":
        return "console" if stream.isatty() else "json"
    return fmt


def configure(fmt: str = "auto", stream: TextIO | None = None, level: str = "info") -> None:
    """Set up events for this process. ``fmt`` is json, console or auto (console on a TTY)."""
    global _stream, _format, _min_level
    _stream = stream or sys.stdout
    _format = resolve_format(fmt, _stream)
    _min_level = LEVELS[level]
    root = logging.getLogger()
    root.handlers[:] = [_LoggingHandler()]
    root.setLevel(logging.INFO)


def bind(**context: Any) -> None:
    """Bind fields (run_id, worker_id, stage) to every later event of this process."""
    _bound.update(context)


def unbind(*keys: str) -> None:
    for key in keys:
        _bound.pop(key, None)


def timestamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def emit(level: str, event: str, **fields: Any) -> None:
    """Write one event at ``level`` (debug, info, warn, error, critical)."""
    if LEVELS.get(level, 20) < _min_level:
        return
    record: dict[str, Any] = {"ts": timestamp(), "level": level, "event": event}
    record.update(_bound)
    record.update(fields)
    record = redaction.redact(record)
    ordered = {key: record.pop(key) for key in KEY_ORDER if key in record}
    ordered.update(record)
    if _captured is not None:
        _captured.append(ordered)
        return
    line = render_console(ordered, _stream.isatty()) if _format == "console" else (
        json.dumps(ordered, separators=(",", ":"), default=str, ensure_ascii=False))
    # A lone surrogate (JSON carries them in from a client) cannot be written as UTF-8:
    # the event would be lost. Written as \udXXX it is kept, and readable.
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    with _write_lock, contextlib.suppress(OSError, ValueError):
        # A closed or broken stdout must not take the worker down with it.
        _stream.write(line + "\n")
        _stream.flush()


def render_console(event: dict[str, Any], colour: bool) -> str:
    level = str(event.get("level", "info"))
    head = " ".join(str(event[k]) for k in ("event", "stage", "status") if event.get(k))
    if colour:
        head = f"\033[{_COLOURS.get(level, '0')}m{head}\033[0m"
    parts = [str(event.get("ts", ""))[11:23], f"{level:<5}", head]
    if event.get("msg"):
        parts.append(f"- {event['msg']}")
    tail = [f"{k}={v}" for k, v in event.items()
            if k not in _CONSOLE_HIDDEN and k not in _MULTILINE]
    text = " ".join(parts + tail)
    for key in _MULTILINE:
        if event.get(key):
            text += "\n    " + str(event[key]).replace("\n", "\n    ")
    return text


class _LoggingHandler(logging.Handler):
    """Routes stdlib logging (and the libraries that use it) into events."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = {10: "debug", 20: "info", 30: "warn", 40: "error"}.get(record.levelno,
                                                                          "critical")
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["traceback"] = logging.Formatter().formatException(record.exc_info)
            emit(level, "log", msg=record.getMessage(), **fields)
        except Exception:  # a log line must never take the worker down
            self.handleError(record)


@contextlib.contextmanager
def capture() -> Iterator[list[dict[str, Any]]]:
    """Collect events (redacted, as they would be written) instead of writing them."""
    global _captured
    previous, _captured = _captured, []
    try:
        yield _captured
    finally:
        _captured = previous


def parse_line(line: str) -> dict[str, Any] | None:
    """The event in a line of a worker's stdout, or None when it is plain output."""
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if isinstance(data, dict) and "event" in data:
        return data
    return None
