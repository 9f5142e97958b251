"""Structured events: one JSON object per line on stdout, flushed at once.

Configured once, here. stdout is a pipe on the platform, so every event is flushed as it
is written; a console renderer is used on a TTY or on request. Every event passes the
redactor last, so no processor can leak a secret. Stdlib logging (and the libraries that
use it) is routed through the same processors.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any, TextIO

import structlog
from structlog.typing import EventDict

from bootstrap import redaction

KEY_ORDER = ("ts", "level", "event", "run_id", "worker_id", "stage", "status", "duration_ms")
LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "critical": 50}


def _timestamp(_: Any, __: str, event: EventDict) -> EventDict:
    if "ts" not in event:
        now = time.time()
        event["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + (
            f".{int(now % 1 * 1000):03d}Z"
        )
    return event


def _level(_: Any, method: str, event: EventDict) -> EventDict:
    if "level" not in event:
        event["level"] = "warn" if method == "warning" else method
    return event


def _redact(_: Any, __: str, event: EventDict) -> EventDict:
    redacted: EventDict = redaction.redact(dict(event))
    return redacted


def _ordered(_: Any, __: str, event: EventDict) -> EventDict:
    head = {key: event.pop(key) for key in KEY_ORDER if key in event}
    head.update(event)
    return head


def _compact_json(obj: Any, **_: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str, ensure_ascii=False)


def resolve_format(fmt: str, stream: IO[str]) -> str:
    if fmt == "auto":
        return "console" if stream.isatty() else "json"
    return fmt


def configure(fmt: str = "auto", stream: TextIO | None = None, level: str = "info") -> None:
    """Set up events for this process. ``fmt`` is json, console or auto (console on a TTY)."""
    stream = stream or sys.stdout
    renderer: Any
    if resolve_format(fmt, stream) == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_compact_json)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _timestamp,
            _level,
            structlog.processors.format_exc_info,
            _redact,
            _ordered,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        # PrintLogger flushes after every line: stdout is a pipe on the platform.
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging()


class _StructlogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = structlog.get_logger()
            log.log(record.levelno, record.getMessage(), logger=record.name)
        except Exception:  # a log line must never take the worker down
            self.handleError(record)


def _route_stdlib_logging() -> None:
    root = logging.getLogger()
    root.handlers[:] = [_StructlogHandler()]
    root.setLevel(logging.INFO)


def bind(**context: Any) -> None:
    """Bind fields (run_id, worker_id, stage) to every later event of this process."""
    structlog.contextvars.bind_contextvars(**context)


def unbind(*keys: str) -> None:
    structlog.contextvars.unbind_contextvars(*keys)


def get_logger() -> Any:
    return structlog.get_logger()


def emit(level: str, event: str, **fields: Any) -> None:
    """Write one event at ``level`` (debug, info, warn, error, critical)."""
    get_logger().log(LEVELS[level], event, **fields)


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
