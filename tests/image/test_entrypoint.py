"""entrypoint.sh on the host, with fake interpreters standing in for a broken image: each
failure is one JSON summary line in bootstrap's event shape with a documented exit code,
and a good Python replaces the shell (``exec``) with the arguments passed through.

The same script in the real image, under tini and podman: tests/image/test_container.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel.exit_codes import ExitCode

ENTRYPOINT = Path(__file__).resolve().parents[2] / "entrypoint.sh"
SUMMARY_KEYS = ["ts", "level", "event", "run_id", "worker_id", "stage", "status", "exit_code",
                "code", "msg", "hint", "cause"]


def fake_python(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def run_entrypoint(python: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOTSTRAP_PYTHON": str(python), "RUNPOD_POD_ID": "pod-abc"}
    return subprocess.run([str(ENTRYPOINT), *args], env=env, capture_output=True, text=True,
                          timeout=30)


def only_event(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    event: dict[str, Any] = json.loads(lines[0])
    assert list(event)[: len(SUMMARY_KEYS)] == SUMMARY_KEYS
    assert event["event"] == "summary"
    assert event["status"] == "fail"
    assert event["stage"] == "entrypoint"
    assert event["worker_id"] == "pod-abc"
    assert event["exit_code"] == result.returncode
    return event


def test_a_missing_python_is_named_with_the_preflight_exit_code() -> None:
    result = run_entrypoint("python3.99-not-installed")
    event = only_event(result)
    assert result.returncode == ExitCode.PREFLIGHT
    assert event["code"] == "entrypoint.E001"
    assert "python3.99-not-installed" in event["msg"]
    assert "BOOTSTRAP_PYTHON" in event["hint"]


def test_a_python_older_than_3_11_is_named_with_its_version(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "echo 3.10.14")
    result = run_entrypoint(python)
    event = only_event(result)
    assert result.returncode == ExitCode.PREFLIGHT
    assert event["code"] == "entrypoint.E002"
    assert event["version"] == "3.10.14"
    assert event["python"] == str(python)


def test_a_python_that_cannot_run_trips_the_err_trap_with_line_command_and_status(
    tmp_path: Path,
) -> None:
    # A quote and a backslash in its stderr and the command must not break the JSON line.
    python = fake_python(tmp_path, 'echo "exec format \\"error\\"" >&2; exit 126')
    result = run_entrypoint(python)
    event = only_event(result)
    assert result.returncode == ExitCode.INTERNAL
    assert event["code"] == "entrypoint.E003"
    assert event["command_exit_code"] == 126
    assert "sys.version_info" in event["command"]
    source = ENTRYPOINT.read_text().splitlines()
    assert "python_path" in source[event["line"] - 1]


def test_a_good_python_replaces_the_shell_and_gets_the_arguments(tmp_path: Path) -> None:
    """`exec`: the interpreter runs as the entrypoint's own process, so signals reach it."""
    python = fake_python(tmp_path, 'case "$1" in -c) echo 3.11.2 ;; *) echo "$$ $*" ;; esac')
    proc = subprocess.Popen([str(ENTRYPOINT), "check", "--output", "json"],
                            env={**os.environ, "BOOTSTRAP_PYTHON": str(python)},
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.split() == [str(proc.pid), "-m", "bootstrap", "check", "--output", "json"]


def test_without_arguments_it_runs_bootstrap_run(tmp_path: Path) -> None:
    python = fake_python(tmp_path, 'case "$1" in -c) echo 3.12.0 ;; *) echo "$*" ;; esac')
    result = run_entrypoint(python)
    assert result.returncode == 0
    assert result.stdout.split() == ["-m", "bootstrap", "run"]


@pytest.mark.parametrize("code", [int(ExitCode.VOLUME), 143])
def test_the_exit_status_of_bootstrap_comes_back_unchanged(tmp_path: Path, code: int) -> None:
    python = fake_python(tmp_path, f'case "$1" in -c) echo 3.11.2 ;; *) exit {code} ;; esac')
    result = run_entrypoint(python)
    assert result.returncode == code
    assert result.stdout == ""  # bootstrap's own summary, not the entrypoint's, reports it


def test_a_program_as_first_argument_runs_instead_of_bootstrap(tmp_path: Path) -> None:
    """What a pod's start command needs (`sleep infinity`, `bash`): the program, exec'd."""
    python = fake_python(tmp_path, 'case "$1" in -c) echo 3.11.2 ;; *) echo bootstrap ;; esac')
    result = run_entrypoint(python, "echo", "a", "program")
    assert (result.returncode, result.stdout) == (0, "a program\n")
    # `report` is not a program on PATH: it goes to bootstrap.
    assert run_entrypoint(python, "report").stdout == "bootstrap\n"
