"""Structured events: one JSON object per line on stdout, flushed at once, through structlog.

Every event is a flat dict (``ts, level, event, run_id, worker_id, stage, status,
duration_ms, ...``, in that order: ``KEY_ORDER``) built by one structlog processor chain:

    boot context -> job context (contextvars) -> level, ts -> traceback -> redactor
    -> key order -> structlog's JSON renderer (or the console form on a TTY)

Tests capture the events the chain shapes with structlog's ``capture_logs`` (``capture``).

and written as one line and flushed: stdout is a pipe on the platform and a buffered line
dies with a killed process. bootstrap's own code calls ``emit``; handler and app authors call
``structlog.get_logger()``; stdlib logging, and every library that uses it, is routed into
the same chain. All three carry the same context in the same stream.

Two kinds of context:
- the boot's (run_id, worker_id, process, stage): one process is one boot and runs one
  stage at a time, so these are process-wide (``bind``/``unbind``). They are not
  contextvars because a thread started with ``threading.Thread`` begins with an empty
  context: the heartbeat, the lease's heartbeat and the output pumps would lose the run id.
- a job's (job_id, action, and whatever a handler binds with
  ``structlog.contextvars.bind_contextvars``): contextvars, because the RunPod SDK runs
  concurrent jobs as asyncio tasks in one thread. ``job_context`` binds them around one
  job and they end with it (the serve stage wraps every app's handler in it).

Import cost: ``import structlog`` imports all of its modules, and its dev renderers import
rich (and colorama) when installed (a model stack often has rich, e.g. through gradio): 80-130 ms
here. We hide them while structlog is imported (its dev ConsoleRenderer then shows plain
tracebacks; we use our own console form anyway), which leaves ~45 ms, half of it asyncio
that the worker's RunPod SDK imports anyway. docs/performance.md has the measured budget.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

# What structlog's dev renderers import when installed, and we never use.
_STRUCTLOG_EXTRAS = ("rich", "colorama", "better_exceptions")


def _import_structlog_without_extras() -> None:
    hidden = [name for name in _STRUCTLOG_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import name -> ImportError
    try:
        import structlog  # noqa: F401
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


_import_structlog_without_extras()

import structlog  # noqa: E402
import structlog.contextvars  # noqa: E402
from structlog.typing import EventDict, WrappedLogger  # noqa: E402

from bootstrap.kernel import redaction  # noqa: E402

KEY_ORDER = ("ts", "level", "event", "run_id", "worker_id", "stage", "status", "duration_ms")
LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40, "critical": 50}
# structlog's method names (and the stdlib's level names) in our level names.
_LEVEL_OF_METHOD = {"warning": "warn", "err": "error", "exception": "error",
                    "fatal": "critical", "msg": "info", "failure": "error"}
# Fields the console form leaves out of the key=value tail: shown elsewhere or noise.
_CONSOLE_HIDDEN = {"ts", "level", "event", "run_id", "worker_id", "stage", "status", "msg"}
_COLOURS = {"debug": "2", "info": "36", "warn": "33", "error": "31", "critical": "1;31"}
_MULTILINE = ("traceback", "stack")

# The boot's context, replaced whole on each change so a reader on another thread always
# sees one consistent dict.
_bound: dict[str, Any] = {}
_stream: TextIO = sys.stdout
_format = "json"
_level = "info"
# Re-entrant: a signal handler (the supervisor's stop handler) runs on the main thread and
# emits an event, possibly while that same thread is inside a write holding the lock.
_write_lock = threading.RLock()


def resolve_format(fmt: str, stream: TextIO) -> str:
    if fmt == "auto":
        return "console" if stream.isatty() else "json"
    return fmt


def configure(fmt: str = "auto", stream: TextIO | None = None, level: str = "info") -> None:
    """Set up events for this process. ``fmt`` is json, console or auto (console on a TTY)."""
    global _stream, _format, _level
    _stream = stream or sys.stdout
    _format = resolve_format(fmt, _stream)
    _level = level
    _configure_structlog(level)
    root = logging.getLogger()
    root.handlers[:] = [_LoggingHandler()]
    root.setLevel(logging.INFO)


def _shaping() -> list[Any]:
    """The chain up to the renderer: what an event is, as written or as captured.
    Level and time are ours, not structlog's add_log_level and TimeStamper: the level
    names (warn) and the millisecond timestamps are the documented format."""
    return [_merge_boot_context, structlog.contextvars.merge_contextvars, _add_level_and_time,
            _exc_info_to_traceback, _redact, _order_keys]


# structlog's own renderer, with json.dumps as before: compact, non-ASCII kept.
_render_json = structlog.processors.JSONRenderer(separators=(",", ":"), default=str,
                                                 ensure_ascii=False)


def _configure_structlog(level: str) -> None:
    structlog.configure(
        processors=[*_shaping(), _render_console if _format == "console" else _render_json],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=_writer_factory,
        cache_logger_on_first_use=False,  # tests and the CLI configure more than once
    )


def restore_if_replaced(where: str) -> bool:
    """Put bootstrap's structlog configuration back if an app's code replaced it, and say
    so. ``structlog.configure`` is process-wide: a stage or handler calling it would drop
    the redactor and the JSON lines every later event needs. ``where`` names what ran
    (a stage, the handler factory). True when it had to."""
    if _redact in structlog.get_config()["processors"]:
        return False
    _configure_structlog(_level)
    emit("warn", "events.restored",
         msg=f"{where} replaced bootstrap's structlog configuration; it is restored",
         hint="do not call structlog.configure() in an app: log with structlog.get_logger() "
              "and the lines carry the boot's and the job's fields (docs/apps.md)")
    return True


def bind(**context: Any) -> None:
    """Bind fields (run_id, worker_id, process, stage) to every later event of this process."""
    global _bound
    _bound = {**_bound, **context}


def unbind(*keys: str) -> None:
    global _bound
    _bound = {key: value for key, value in _bound.items() if key not in keys}


def timestamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


_logger = structlog.get_logger("bootstrap")


def emit(level: str, event: str, **fields: Any) -> None:
    """Write one event at ``level`` (debug, info, warn, error, critical)."""
    _logger.log(LEVELS.get(level, 20), event, **fields)


@contextlib.contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Bind a job's fields (job_id, action) to every event logged in this context, in this
    thread or task, until the block ends."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


def bind_to_context(**fields: Any) -> None:
    """Bind fields to every event logged in the current context (thread or task) from now on:
    for a context that is thrown away after (a job's), where nothing needs unbinding."""
    structlog.contextvars.bind_contextvars(**fields)


# -- the processor chain ----------------------------------------------------------------


def _merge_boot_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return {**_bound, **event_dict} if _bound else event_dict


def _add_level_and_time(_: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("level", _LEVEL_OF_METHOD.get(method_name, method_name))
    event_dict.setdefault("ts", timestamp())
    return event_dict


def _exc_info_to_traceback(_: WrappedLogger, method_name: str,
                           event_dict: EventDict) -> EventDict:
    """``log.exception(...)`` or ``exc_info=``: the formatted stack under ``traceback``."""
    exc_info = event_dict.pop("exc_info", None)
    if method_name == "exception" and exc_info is None:
        exc_info = True
    if exc_info:
        if not isinstance(exc_info, tuple):
            exc_info = sys.exc_info() if exc_info is True else (
                type(exc_info), exc_info, exc_info.__traceback__)
        if exc_info[0] is not None:
            event_dict["traceback"] = logging.Formatter().formatException(exc_info)
    return event_dict


def _redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    redacted: EventDict = redaction.redact(event_dict)
    return redacted


def _ordered(event_dict: Mapping[str, Any]) -> dict[str, Any]:
    ordered = {key: event_dict[key] for key in KEY_ORDER if key in event_dict}
    ordered.update((key, value) for key, value in event_dict.items() if key not in ordered)
    return ordered


def _order_keys(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return _ordered(event_dict)


def _render_console(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    colour = False
    with contextlib.suppress(OSError, ValueError):  # a closed stream: the writer copes
        colour = _stream.isatty()
    return render_console(event_dict, colour)


def render_console(event: Mapping[str, Any], colour: bool) -> str:
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


class _Writer:
    """structlog's logger: writes a rendered line to the configured stream and flushes it."""

    def msg(self, line: str) -> None:
        # A lone surrogate (JSON carries them in from a client) cannot be written as UTF-8:
        # the event would be lost. Written as \udXXX it is kept, and readable.
        line = line.encode("utf-8", "backslashreplace").decode("utf-8")
        with _write_lock, contextlib.suppress(OSError, ValueError):
            # A closed or broken stdout must not take the worker down with it.
            _stream.write(line + "\n")
            _stream.flush()

    # structlog calls the method named like the level
    debug = info = warn = warning = err = error = critical = fatal = exception = msg
    failure = log = msg


_WRITER = _Writer()


def _writer_factory(*_: Any) -> _Writer:
    return _WRITER


class _LoggingHandler(logging.Handler):
    """Routes stdlib logging (and the libraries that use it) into the same chain."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name, "msg": record.getMessage()}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            # structlog knows the five standard levels; a custom one counts as the one below
            level = min(max(record.levelno // 10 * 10, logging.DEBUG), logging.CRITICAL)
            _logger.log(level, "log", **fields)
        except Exception:  # a log line must never take the worker down
            self.handleError(record)


@contextlib.contextmanager
def capture() -> Iterator[list[EventDict]]:
    """Collect events (redacted, as they would be written) instead of writing them:
    structlog's ``capture_logs`` behind the same chain. Not thread-safe (structlog's
    configuration is process-wide), like ``capture_logs`` itself."""
    import structlog.testing  # tests only: the boot never imports it

    with structlog.testing.capture_logs(processors=_shaping()) as entries:
        try:
            yield entries
        finally:
            for entry in entries:  # LogCapture's own key: ours is "level"
                entry.pop("log_level", None)


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


# Until the process configures its own: every event is still one JSON line on stdout.
_configure_structlog("info")
