"""`bootstrap check` on a broken model setup reports the id `bootstrap run` fails with,
and leaves the volume as it was (the volume stages' cases are in tests/environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bootstrap.stages import cuda
from f5worker.handler import tiny_model
from f5worker.stages import model
from tests.boots import REPO, snapshot


def bootstrap(command: str, volume: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOTSTRAP_MODE": "local", "BOOTSTRAP_VOLUME": str(volume),
           "BOOTSTRAP_LOG_FORMAT": "json", "BOOTSTRAP_SKIP": "serve"}
    env.update({f"BOOTSTRAP_{k.upper()}": v for k, v in tiny_model.settings(volume).items()})
    env.update({f"BOOTSTRAP_{k.upper()}": v for k, v in settings.items()})
    args = ["--output", "json"] if command == "check" else []
    return subprocess.run([sys.executable, "-m", "bootstrap", command, *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def predicts(volume: Path, **settings: str) -> tuple[set[str], dict[str, Any]]:
    before = snapshot(volume)
    checked = bootstrap("check", volume, **settings)
    ids = {m["id"] for m in json.loads(checked.stdout)["messages"]}
    assert snapshot(volume) == before, "the check changed the volume"
    ran = bootstrap("run", volume, **settings)
    return ids, json.loads(ran.stdout.splitlines()[-1])


def test_a_missing_checkpoint(volume: Path) -> None:
    (volume / "models" / "tiny" / "model.safetensors").unlink()
    ids, summary = predicts(volume)
    assert model.E001.id in ids
    assert summary["code"] == model.E001.id


def test_no_gpu_when_the_cpu_is_not_allowed(volume: Path) -> None:
    ids, summary = predicts(volume, allow_cpu="0")
    assert cuda.E004.id in ids
    assert summary["code"] == cuda.E004.id


def test_a_missing_aligner_when_timings_are_enabled(volume: Path) -> None:
    (volume / tiny_model.ALIGNER / "model.pt").unlink()
    ids, summary = predicts(volume, timings="1")
    assert model.E014.id in ids
    assert summary["code"] == model.E014.id
