"""The one error boundary around every command.

Expected failures (a bad setting) say what happened and what to do; unexpected ones say
"unexpected error" with the traceback; both exit with documented codes, never a bare 1.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator

import click

from bootstrap.kernel import events, redaction
from bootstrap.kernel.config import ConfigError
from bootstrap.kernel.exit_codes import ExitCode


@contextlib.contextmanager
def error_boundary() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        events.emit("error", "summary", status="fail", stage="config",
                    exit_code=int(ExitCode.USAGE), msg=f"configuration error: {exc}",
                    hint="fix the setting named above (flag, BOOTSTRAP_* variable or "
                         "bootstrap.toml); `bootstrap config` shows where each value comes from")
        sys.exit(ExitCode.USAGE)
    except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
        raise
    except Exception as exc:
        events.emit("critical", "summary", status="fail", stage="bootstrap",
                    exit_code=int(ExitCode.INTERNAL),
                    msg=f"unexpected error: {type(exc).__name__}: {exc}",
                    hint="this is a bug in bootstrap; please report it with this traceback",
                    traceback=redaction.redact(traceback.format_exc()))
        sys.exit(ExitCode.INTERNAL)
