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


def test_what_a_check_prints_is_not_a_finding(volume: Path) -> None:
    """The worker's findings come on its events channel: a line a stage prints on stdout,
    however much it looks like one, is not read as a finding."""
    messages = check(volume, "stage_checked:prints_a_message")
    assert not [m for m in messages if m["id"] == "fixture.E999"]
    assert [m for m in messages if m["id"] == "check.I002"]


def test_a_check_that_raises_is_a_finding(volume: Path) -> None:
    messages = check(volume, "stage_checked:check_raises")
    (found,) = [m for m in messages if m["id"] == "check.E001"]
    assert found["stage"] == "check_raises"
    assert "KeyError: 'model_path'" in found["msg"]


def test_the_boot_order_names_the_apps_stages_and_marks_the_skipped(volume: Path) -> None:
    """The supervisor's stages, then the worker's as the worker's interpreter loads them:
    the app's (the F5-TTS app's, which the tests' conftest names), a user's extra stage,
    and serve; the skipped ones in brackets."""
    messages = check(volume, "stage_passes:passes")
    (order,) = [m for m in messages if m["id"] == "check.I002"]
    assert order["msg"] == (
        "boot order (app f5worker.app:APP): preflight -> volume -> venv -> install -> "
        "hydrate -> [cuda] -> [audio] -> [model] -> [warmup] -> storage -> passes -> serve")


def test_a_volume_environment_not_built_yet_leaves_the_workers_order_unknown(
        tmp_path: Path) -> None:
    env = {**os.environ, "BOOTSTRAP_REQUIREMENTS_TEXT": "click"}
    result = subprocess.run([sys.executable, "-m", "bootstrap", "check", "--mode", "volume",
                             "--volume", str(tmp_path), "--output", "json"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    messages = json.loads(result.stdout)["messages"]
    (order,) = [m for m in messages if m["id"] == "check.I002"]
    assert order["msg"].endswith("hydrate -> (the worker's stages, once its environment "
                                 "is built)"), order
