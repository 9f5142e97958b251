"""What every stage receives: the configuration, the boot's identity, and what earlier
stages in the same process handed on.

The handed-on values are the stages' outputs (``bootstrap/kernel/output.py``): each is
declared, with its type, in the module of the stage that writes it, and kept here in one
mapping, so the kernel names none of them. ``ctx.<name>`` reads and writes a declared output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootstrap.kernel.config import Config
from bootstrap.kernel.output import DECLARED


@dataclass
class Context:
    config: Config
    run_id: str
    worker_id: str
    # True under `bootstrap check`: stages must not create, install, download or write.
    dry_run: bool = False
    platform: str | None = None  # the platform `bootstrap check --platform` names
    # Every stage's outputs by name (the typed way in: the writer's ``Output``).
    outputs: dict[str, Any] = field(default_factory=dict)
    # -- the app's stages: an instance of its App.state, for its handler -------------------
    app_state: Any = None

    def __post_init__(self) -> None:
        if self.app_state is None:
            from bootstrap.kernel import app as apps

            self.app_state = apps.load(self.config.app).state()

    def __getattr__(self, name: str) -> Any:
        # Only called for a name that is not a field: an output, None until its stage sets it.
        outputs = self.__dict__.get("outputs", {})
        if name in outputs or name in DECLARED:
            return outputs.get(name)
        raise AttributeError(f"Context has no {name!r}: no field, and no stage declares an "
                             "output of that name (bootstrap/kernel/output.py)")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dataclass_fields__:
            object.__setattr__(self, name, value)
        else:  # a stage's output, whichever way it is written
            self.outputs[name] = value
