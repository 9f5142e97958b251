"""The image's shell scripts and Dockerfile are shellcheck and hadolint clean, and the
entrypoint cannot be broken by a checkout (FAILURES.md 16: CRLF or a wrong shebang is
`exec format error`, exit 126/127, with nothing in the console)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"


def _tool(name: str) -> str:
    # The dev extra installs them next to the interpreter, which may not be on PATH.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        message = f"{name} is not installed (pip install -e '.[dev]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def _shell_scripts() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", "*.sh"],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    return out.split()


def test_shell_scripts_are_shellcheck_clean() -> None:
    scripts = _shell_scripts()
    assert "entrypoint.sh" in scripts
    result = subprocess.run([_tool("shellcheck"), "--severity=style", *scripts], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run([_tool("hadolint"), "--no-color", "Dockerfile"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", _shell_scripts())
def test_shell_script_has_lf_endings_and_a_bash_shebang_or_is_a_sourced_library(
    script: str,
) -> None:
    data = (REPO / script).read_bytes()
    assert b"\r" not in data
    if not data.startswith(b"#!"):
        # A library for `source`: it must say which shell, or shellcheck guesses.
        assert data.startswith(b"# shellcheck shell=bash\n"), f"{script}: no shebang"
        return
    assert data.startswith(b"#!/usr/bin/env bash\n")
    # The bit git records is the one a fresh checkout (and the image build) gets.
    mode = subprocess.run(["git", "ls-files", "-s", "--", script], cwd=REPO,
                          capture_output=True, text=True).stdout.split(" ", 1)[0]
    assert mode in ("100755", ""), f"{script} is committed as {mode}, not executable"
    assert os.access(REPO / script, os.X_OK)
