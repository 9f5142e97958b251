"""`bootstrap check` runs each stage's check on the side the stage runs on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.boots import FIXTURES, MODEL_STAGES, REPO


def check(volume: Path, *stages: str) -> list[dict[str, str]]:
    env = {**os.environ, "BOOTSTRAP_EXTRA_STAGES": ",".join(stages),
           "BOOTSTRAP_SKIP": ",".join(MODEL_STAGES),
           "PYTHONPATH": str(FIXTURES)}
    result = subprocess.run([sys.executable, "-m", "bootstrap", "check", "--mode", "local",
                             "--volume", str(volume), "--output", "json"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    messages: list[dict[str, str]] = json.loads(result.stdout)["messages"]
    return messages


def test_worker_stages_are_checked_in_the_workers_interpreter(volume: Path) -> None:
    messages = check(volume, "stage_checked:reports_interpreter")
    (found,) = [m for m in messages if m["id"] == "fixture.I901"]
    assert found["stage"] == "reports_interpreter"
    assert found["obj"] == sys.executable  # local mode: the worker runs this interpreter


def test_a_check_that_raises_is_a_finding(volume: Path) -> None:
    messages = check(volume, "stage_checked:check_raises")
    (found,) = [m for m in messages if m["id"] == "check.E001"]
    assert found["stage"] == "check_raises"
    assert "KeyError: 'model_path'" in found["msg"]
