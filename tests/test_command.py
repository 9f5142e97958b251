"""The one subprocess wrapper: streams, tails, timeouts that end the whole tree, and
failures rendered the same way every time, with secrets masked."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from bootstrap.kernel import command, redaction


def test_output_is_streamed_line_by_line() -> None:
    seen: list[tuple[str, str]] = []
    result = command.run([sys.executable, "-c",
                          "import sys; print('one'); print('two', file=sys.stderr)"],
                         on_line=lambda stream, line: seen.append((stream, line)))
    assert result.returncode == 0
    assert sorted(seen) == [("stderr", "two"), ("stdout", "one")]


def test_a_failure_renders_command_code_and_tails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_PASSWORD", "hunter2-secret")
    redaction.reset()
    script = ("import sys; print('resolving'); "
              "print('401 for https://me:hunter2-secret@pypi.example', file=sys.stderr); "
              "sys.exit(3)")
    with pytest.raises(command.CommandFailed) as info:
        command.run([sys.executable, "-c", script])
    text = info.value.render()
    assert text.startswith("command exited with 3: ")
    assert "--- stdout (last 40 lines) ---\nresolving" in text
    assert "401 for https://[redacted]@pypi.example" in text
    assert "hunter2-secret" not in text
    assert info.value.result.returncode == 3


def test_a_timeout_kills_the_whole_process_tree() -> None:
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              "print(p.pid, flush=True); time.sleep(60)")
    pids: list[int] = []
    with pytest.raises(command.CommandFailed) as info:
        command.run([sys.executable, "-c", script], timeout_s=2,
                    on_line=lambda _, line: pids.append(int(line)))
    assert info.value.timed_out
    assert "timed out after 2 s" in info.value.render()
    assert not alive(pids[0]), "the grandchild must die with its parent"


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for init to reap it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


def test_check_false_returns_the_failure() -> None:
    result = command.run([sys.executable, "-c", "raise SystemExit(5)"], check=False)
    assert result.returncode == 5
