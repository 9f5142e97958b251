"""What every stage receives: the configuration, the boot's identity, and a place to hand
values to later stages in the same process (the interpreter to run, the device, the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootstrap.config import Config


@dataclass
class Context:
    config: Config
    run_id: str
    worker_id: str
    # True under `bootstrap check`: stages must not create, install, download or write.
    dry_run: bool = False
    # Values a stage hands to later ones, e.g. state["python"] (the worker's interpreter,
    # set by the venv stage) or state["device"] (set by the cuda stage).
    state: dict[str, Any] = field(default_factory=dict)
