"""The worker's interpreter finds bootstrap through the PYTHONPATH the supervisor gives it,
not through an install in the environment: a slim image's environment on the volume has
no bootstrap of its own (the container test's local-mode boot is the end-to-end case)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bootstrap
from bootstrap.kernel.config import Config
from bootstrap.supervision import worker


def test_the_worker_finds_this_bootstrap_through_its_pythonpath_alone(tmp_path: Path) -> None:
    env = worker.environment(Config(), "run", "worker", tmp_path, events_fd=1)
    env["PYTHONPATH"] = env["PYTHONPATH"].split(os.pathsep)[0]  # only what the worker adds
    # -S: no site-packages, so no installed or editable bootstrap answers instead
    found = subprocess.run(
        [sys.executable, "-S", "-c",
         "import importlib.util as u; print(u.find_spec('bootstrap.supervision.worker').origin)"],
        env=env, capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == Path(worker.__file__).resolve()
    assert Path(bootstrap.__file__).resolve().parent.parent == worker.PACKAGE_ROOT
