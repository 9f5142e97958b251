"""Every exit code the framework uses. ``docs/exit-codes.md`` is tested against this table
and the apps' own: an app's stage sets its code, from ``APP_CODES`` (15-17 are taken by
an app that used them before apps existed; the page lists it).

Never a bare 1: a container that exits 1 says nothing, and that is the failure this
project exists to end. A worker killed by signal N makes the supervisor exit 128+N,
as a shell would report it.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    USAGE = 2  # bad command line or configuration (click also uses 2)
    CHECK_FAILED = 3  # `bootstrap check` found issues at or above --fail-level
    NO_REPORT = 4  # `bootstrap report` found no boot report where it looked
    PREFLIGHT = 10
    VOLUME = 11
    VENV = 12
    INSTALL = 13
    CUDA = 14
    SERVE = 18
    CUSTOM_STAGE = 19  # a stage added through configuration (`extra_stages`)
    DEADLINE = 20  # a stage ran past its deadline and was stopped (either process)
    WORKER_START = 21  # the worker process died before it reached its first stage
    # A stage's code, though after 20 and 21: the stage block 10-19 was full when it came.
    STORAGE = 22
    INTERNAL = 70  # a bug in bootstrap itself (EX_SOFTWARE)
    SIGNAL_BASE = 128  # 128+N: the worker was killed by signal N


# The codes an app's own stages may use.
APP_CODES = range(30, 64)


def for_signal(signum: int) -> int:
    return int(ExitCode.SIGNAL_BASE) + signum
