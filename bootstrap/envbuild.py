"""A build in progress, handed from the venv stage (which took the lease and created the
empty environment) to the install stage (which fills, verifies and publishes it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.installer import Installer
from bootstrap.lease import Lease
from bootstrap.requirements import Requirements

STATE = "env_build"  # the ctx.state key


@dataclass
class Build:
    key: str
    inputs: dict[str, Any]
    staging: Path
    final: Path
    lease: Lease
    installer: Installer
    requirements: Requirements
    reason: str  # why this build happens: "missing", or why the old one was unhealthy

    @property
    def python(self) -> Path:
        return self.staging / "bin" / "python"
