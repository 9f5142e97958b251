"""Fixtures of the environment tests: a local wheelhouse (built once per session), and
``boot``/``start``, which run ``bootstrap run`` against a volume and parse its events.
Boots run the supervisor stages and a worker with its stages skipped, so the
environment's Python really starts bootstrap."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.environment import wheelhouse
from tests.environment.envboot import Boot, BootFn, StartFn, base_env, parse


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheelhouse.cached(tmp_path_factory.getbasetemp() / "wheelhouse")


@pytest.fixture(scope="session")
def sdk_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The RunPod SDK and its dependencies, for boots that reach serve (find-links with
    ``wheels``)."""
    return wheelhouse.cached(tmp_path_factory.getbasetemp() / "wheelhouse-sdk",
                             wheelhouse.build_sdk)


@pytest.fixture
def boot(tmp_path: Path, wheels: Path) -> BootFn:
    """``boot(volume, prefix=[...], create=True, args=[...], **env)``: run ``bootstrap run
    *args`` (the volume directory created first unless ``create`` is false) and wait for
    it."""

    def run(volume: Path, prefix: Sequence[str] = (), timeout: float = 240,
            create: bool = True, args: Sequence[str] = (), **env: str) -> Boot:
        if create:
            volume.mkdir(parents=True, exist_ok=True)
        full = base_env(tmp_path, wheels, volume) | env
        argv = [*prefix, sys.executable, "-m", "bootstrap", "run", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=full, cwd=tmp_path,
                              timeout=timeout)
        return Boot(proc.returncode, parse(proc.stdout), proc.stdout, proc.stderr, argv)

    return run


@pytest.fixture
def start(tmp_path: Path, wheels: Path) -> StartFn:
    """``start(volume, **env)``: a boot in the background, in its own process group."""

    def run(volume: Path, **env: str) -> subprocess.Popen[str]:
        volume.mkdir(parents=True, exist_ok=True)
        full = base_env(tmp_path, wheels, volume) | env
        return subprocess.Popen([sys.executable, "-m", "bootstrap", "run"], env=full,
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    return run
