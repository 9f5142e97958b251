"""The environment a boot runs in, as the venv and install stages hand it on.

The venv stage only looks: it works out the key (``bootstrap.environment.envkey``) and reuses a
healthy environment, or hands the install stage a :class:`Wanted`: the environment to
build, and why. It takes no lease and writes nothing. The install stage builds it as one
transaction, in one function (``stages/install.py: build``): lease → look again → create →
install → verify → publish → release, the lease held by a ``with`` block, so no stage, no
failure and no stop signal can leave a build half done.

Every value these stages hand to later ones (``ctx.env``, ``ctx.python``, ``ctx.wanted``)
is written here and nowhere else, but for the hydrate stage's local interpreter.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.environment.installer import Installer
from bootstrap.environment.lease import Lease
from bootstrap.environment.requirements import Requirements
from bootstrap.kernel.context import Context
from bootstrap.kernel.output import Output


@dataclass(frozen=True)
class Wanted:
    """The environment this boot's inputs call for, missing or unhealthy when the venv
    stage looked."""

    key: str
    inputs: dict[str, Any]
    final: Path
    installer: Installer
    requirements: Requirements
    reason: str  # why it is built: "missing", or why the one there is unhealthy


@dataclass(frozen=True)
class Build:
    """A build under way: only inside the install stage's lease block."""

    wanted: Wanted
    staging: Path
    lease: Lease

    @property
    def key(self) -> str:
        return self.wanted.key

    @property
    def python(self) -> Path:
        return self.staging / "bin" / "python"


# -- what the stages hand on ------------------------------------------------------------------

ENV: Output[Path] = Output("env", __name__)  # venv, install: the environment in use
PYTHON: Output[Path] = Output("python", __name__)  # venv, install, hydrate: the worker's
WANTED: Output[Wanted] = Output("wanted", __name__)  # venv, for install: what to build

def use_env(ctx: Context, env: Path) -> None:
    """The worker runs from the published environment ``env``."""
    ENV.set(ctx, env)
    PYTHON.set(ctx, env / "bin" / "python")


def use_this_interpreter(ctx: Context) -> None:
    """No environment: the worker runs in the interpreter running bootstrap."""
    ENV.set(ctx, None)
    PYTHON.set(ctx, Path(sys.executable))


def env_in_use(ctx: Context) -> Path | None:
    return ENV.get(ctx)


def python_in_use(ctx: Context) -> Path:
    return PYTHON.get(ctx) or Path(sys.executable)


def want(ctx: Context, wanted: Wanted) -> None:
    WANTED.set(ctx, wanted)


def wanted(ctx: Context) -> Wanted | None:
    """The build the venv stage asked for, taken: it is built at most once."""
    found = WANTED.get(ctx)
    WANTED.set(ctx, None)
    return found
