"""Helpers of the environment tests (volume, venv, install, hydrate): what a boot printed,
parsed (``Boot``), the environment a boot runs with (``base_env``), the environments on a
volume (``envs``). The fixtures that use them are in this folder's conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bootstrap import pipeline
from bootstrap.kernel.config import Config

REPO = Path(__file__).resolve().parents[2]
WORKER_STAGES = ",".join(stage.name for stage in pipeline.worker_stages(Config()))
# Root and namespaces are needed for real mounts; CI runs as root, so there a missing
# capability fails instead of hiding behind a skip.
needs_root = pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                                reason="needs root for mount namespaces (CI runs them)")


@dataclass
class Boot:
    returncode: int
    events: list[dict[str, Any]]
    output: str
    stderr: str = ""
    argv: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        assert self.events, f"no events; stderr:\n{self.stderr}"
        last = self.events[-1]
        assert last["event"] == "summary", f"last line is not the summary: {last}"
        return last

    def stage(self, name: str) -> dict[str, Any]:
        """The end event of stage ``name``."""
        ends = [e for e in self.events if e["event"] == "stage" and e.get("stage") == name
                and e.get("status") != "start"]
        assert ends, f"stage {name} did not end:\n{self.output}"
        return ends[-1]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events if "code" in e]


def parse(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def base_env(tmp: Path, wheels: Path, volume: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOOTSTRAP_", "PIP_", "UV_", "RUNPOD_"))}
    env.update({
        # this machine's own pip configuration (extra indexes, find-links) stays out
        "PIP_CONFIG_FILE": os.devnull,
        "UV_CACHE_DIR": str(tmp / "uv-cache"),
        "BOOTSTRAP_VOLUME": str(volume),
        "BOOTSTRAP_LOG_FORMAT": "json",
        # every worker stage: these boots end when the worker has started from the env
        "BOOTSTRAP_SKIP": WORKER_STAGES,
        "BOOTSTRAP_MIN_FREE_VOLUME_MB": "1",
        "BOOTSTRAP_FIND_LINKS": str(wheels),
        "BOOTSTRAP_NO_INDEX": "1",
        "BOOTSTRAP_REQUIREMENTS_TEXT": "bsdemo_a",
        "BOOTSTRAP_FALLBACK_REPORTS": str(tmp / "fallback-reports"),
        "BOOTSTRAP_INSTALL_BACKOFF_S": "0.05",
        # local copies of environments (the hydrate stage) stay in the test's directory
        "BOOTSTRAP_HYDRATE_DIR": str(tmp / "copies"),
        "PYTHONPATH": str(REPO),
    })
    return env


BootFn = Callable[..., Boot]


StartFn = Callable[..., subprocess.Popen[str]]


def envs(volume: Path) -> list[str]:
    root = volume / ".bootstrap" / "envs"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []
