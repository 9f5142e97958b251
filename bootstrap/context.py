"""What every stage receives: the configuration, the boot's identity, and what earlier
stages in the same process handed on, each as a typed attribute named for its writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootstrap.config import Config

if TYPE_CHECKING:
    from bootstrap.storage import Storage


@dataclass
class Context:
    config: Config
    run_id: str
    worker_id: str
    # True under `bootstrap check`: stages must not create, install, download or write.
    dry_run: bool = False
    # Values supervisor stages hand to later ones (the interpreter, the environment).
    state: dict[str, Any] = field(default_factory=dict)
    # -- the worker's generic stages -------------------------------------------------------
    device: str | None = None  # stages/cuda.py: "cuda:0", or "cpu" where allowed
    storage: Storage | None = None  # stages/storage.py: the bucket, when one is configured
    # -- the app's stages: an instance of its App.state, for its handler -------------------
    app_state: Any = None

    def __post_init__(self) -> None:
        if self.app_state is None:
            from bootstrap import app as apps

            self.app_state = apps.load(self.config.app).state()
