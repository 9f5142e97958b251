"""The one way bootstrap runs a subprocess.

Output is streamed line by line (to events, if asked) and kept as a tail; on failure the
exception renders the command, its return code and the tails of stdout and stderr the same
way every time, with secrets redacted. The child gets its own process group so a timeout
or a stop request ends the whole tree it started, not only the first process.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.kernel import redaction

TAIL_LINES = 40
OnLine = Callable[[str, str], None]  # (stream name, line)


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


class CommandFailed(Exception):
    """A command that exited non-zero or ran past its timeout."""

    def __init__(self, result: CommandResult, timed_out: bool = False) -> None:
        self.result = result
        self.timed_out = timed_out
        super().__init__(self.render())

    def render(self) -> str:
        r = self.result
        what = (f"timed out after {r.duration_s:.0f} s" if self.timed_out
                else f"exited with {r.returncode}")
        lines = [f"command {what}: {' '.join(r.argv)}"]
        for name, text in (("stdout", r.stdout), ("stderr", r.stderr)):
            if text.strip():
                lines.append(f"--- {name} (last {TAIL_LINES} lines) ---")
                lines.append(text.rstrip())
        return redaction.current().text("\n".join(lines))


def _pump(pipe: object, name: str, tail: collections.deque[str], on_line: OnLine | None) -> None:
    for raw in pipe:  # type: ignore[attr-defined]
        line = redaction.current().text(raw.rstrip("\n"))
        tail.append(line)
        if on_line is not None:
            on_line(name, line)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run(
    argv: Sequence[str | Path],
    *,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    on_line: OnLine | None = None,
    stdin: int = subprocess.DEVNULL,
    pass_fds: Sequence[int] = (),
) -> CommandResult:
    """Run ``argv`` to its end; ``stdin`` is a file descriptor to read from (a pipe another
    process writes), else nothing; ``pass_fds`` are descriptors the child inherits."""
    args = [str(a) for a in argv]
    started = time.monotonic()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin,
        text=True, errors="replace", env=dict(env) if env is not None else None, cwd=cwd,
        start_new_session=True, pass_fds=tuple(pass_fds),
    )
    tails: dict[str, collections.deque[str]] = {
        "stdout": collections.deque(maxlen=TAIL_LINES),
        "stderr": collections.deque(maxlen=TAIL_LINES),
    }
    pumps = [
        threading.Thread(target=_pump, args=(pipe, name, tails[name], on_line), daemon=True)
        for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
    ]
    for pump in pumps:
        pump.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    except BaseException:  # a stop request: take the child's whole tree down with us
        _kill_group(proc)
        raise
    for pump in pumps:
        pump.join(timeout=5)
    result = CommandResult(args, proc.returncode, "\n".join(tails["stdout"]),
                           "\n".join(tails["stderr"]), time.monotonic() - started)
    if timed_out or (check and proc.returncode != 0):
        raise CommandFailed(result, timed_out=timed_out)
    return result
