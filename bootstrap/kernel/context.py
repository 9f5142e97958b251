"""What every stage receives: the configuration, the boot's identity, and what earlier
stages in the same process handed on, each as a typed attribute named for its writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bootstrap.kernel.config import Config

if TYPE_CHECKING:
    from pathlib import Path

    from bootstrap.environment.envbuild import Wanted
    from bootstrap.ioprobe import Rates
    from bootstrap.storage import Storage


@dataclass
class Context:
    config: Config
    run_id: str
    worker_id: str
    # True under `bootstrap check`: stages must not create, install, download or write.
    dry_run: bool = False
    # -- the supervisor's stages ----------------------------------------------------------
    platform: str | None = None  # dry_run.py: the platform `bootstrap check --platform` names
    volume_io: Rates | None = None  # stages/volume.py: the I/O probe's figures, when it ran
    wanted: Wanted | None = None  # stages/venv.py, for install: the environment to build
    env: Path | None = None  # envbuild.use_env (venv, install): the environment in use
    python: Path | None = None  # envbuild, stages/hydrate.py: the worker's interpreter
    # -- the worker's generic stages -------------------------------------------------------
    device: str | None = None  # stages/cuda.py: "cuda:0", or "cpu" where allowed
    storage: Storage | None = None  # stages/storage.py: the bucket, when one is configured
    # stages/handler_file.py: the config a RunPod handler file passed to runpod.serverless.start
    served: dict[str, Any] | None = None
    # -- the app's stages: an instance of its App.state, for its handler -------------------
    app_state: Any = None

    def __post_init__(self) -> None:
        if self.app_state is None:
            from bootstrap.kernel import app as apps

            self.app_state = apps.load(self.config.app).state()
