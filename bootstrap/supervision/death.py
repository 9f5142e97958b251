"""How the worker died, from its wait status, its rusage and the cgroup's OOM counter.

A process killed by SIGKILL or a segfault cannot say so itself; its parent turns the raw
status into words an operator can act on.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

# What each signal usually means for a worker, and what to do about it.
_SIGNAL_HINTS = {
    signal.SIGSEGV: "a native library crashed; the stack above shows the Python frames. "
                    "Check that torch, CUDA and the driver match",
    signal.SIGABRT: "a native library aborted (often a failed assertion in C++ or CUDA code)",
    signal.SIGBUS: "bad memory access, often a file on the volume truncated while mapped",
    signal.SIGFPE: "a native library divided by zero or hit an illegal arithmetic operation",
    signal.SIGILL: "an illegal instruction: a binary built for a newer CPU than this one",
    signal.SIGKILL: "something outside the worker killed it; the platform or a person",
    signal.SIGTERM: "the worker was asked to stop",
}
OOM_HINT = ("the worker used more memory than the container allows; give the endpoint more "
            "RAM, or load less at once")


@dataclass(frozen=True)
class Death:
    exit_code: int | None  # set when the process exited
    signal: int | None  # set when a signal killed it
    core_dumped: bool = False
    oom_killed: bool = False
    max_rss_mb: float | None = None
    oom_kills_before: int | None = None
    oom_kills_after: int | None = None

    @classmethod
    def from_status(cls, status: int, rusage: Any = None,
                    oom_before: int | None = None, oom_after: int | None = None) -> Death:
        max_rss = rusage.ru_maxrss / 1024 if rusage is not None else None  # KiB on Linux
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            oom = (signum == signal.SIGKILL and oom_before is not None
                   and oom_after is not None and oom_after > oom_before)
            return cls(None, signum, os.WCOREDUMP(status), oom, max_rss, oom_before, oom_after)
        return cls(os.waitstatus_to_exitcode(status), None, False, False, max_rss,
                   oom_before, oom_after)

    @property
    def signal_name(self) -> str:
        if self.signal is None:
            return ""
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    def describe(self) -> str:
        """One line: what happened to the process."""
        if self.signal is None:
            return f"the worker exited with code {self.exit_code}"
        if self.oom_killed:
            return (f"the worker was killed by the OOM killer (SIGKILL; cgroup oom_kill "
                    f"{self.oom_kills_before} -> {self.oom_kills_after})")
        text = f"the worker was killed by {self.signal_name}"
        if self.signal == signal.SIGSEGV:
            text = "the worker crashed with a segmentation fault (SIGSEGV)"
        if self.core_dumped:
            text += ", core dumped"
        return text

    def hint(self) -> str:
        if self.oom_killed:
            return OOM_HINT
        if self.signal is not None:
            return _SIGNAL_HINTS.get(signal.Signals(self.signal), "")
        return ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exit_code": self.exit_code}
        if self.signal is not None:
            out.update(signal=self.signal_name, core_dumped=self.core_dumped,
                       oom_killed=self.oom_killed)
        if self.oom_kills_after is not None:
            out["oom_kills"] = [self.oom_kills_before, self.oom_kills_after]
        if self.max_rss_mb is not None:
            out["max_rss_mb"] = round(self.max_rss_mb, 1)
        return out
