"""The environment a boot runs in, as the venv and install stages hand it on.

The venv stage only looks: it works out the key (``bootstrap.envkey``) and reuses a
healthy environment, or hands the install stage a :class:`Wanted`: the environment to
build, and why. It takes no lease and writes nothing. The install stage builds it as one
transaction, in one function (``stages/install.py: build``): lease → look again → create →
install → verify → publish → release, the lease held by a ``with`` block, so no stage, no
failure and no stop signal can leave a build half done.

Every value these stages hand to later ones (``ctx.state``) is written here and nowhere
else: the environment in use and its interpreter, and the build the venv stage asks for.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.context import Context
from bootstrap.installer import Installer
from bootstrap.lease import Lease
from bootstrap.requirements import Requirements

# ctx.state keys
ENV = "env"  # the published environment in use (str), absent without one
PYTHON = "python"  # the interpreter the worker runs (str)
WANTED = "env_wanted"  # the Wanted the venv stage hands to the install stage


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


# -- what the stages hand on (ctx.state) ---------------------------------------------------

def use_env(ctx: Context, env: Path) -> None:
    """The worker runs from the published environment ``env``."""
    ctx.state[ENV] = str(env)
    ctx.state[PYTHON] = str(env / "bin" / "python")


def use_this_interpreter(ctx: Context) -> None:
    """No environment: the worker runs in the interpreter running bootstrap."""
    ctx.state[PYTHON] = sys.executable


def env_in_use(ctx: Context) -> Path | None:
    env = ctx.state.get(ENV)
    return Path(env) if env else None


def python_in_use(ctx: Context) -> Path:
    return Path(str(ctx.state.get(PYTHON, sys.executable)))


def want(ctx: Context, wanted: Wanted) -> None:
    ctx.state[WANTED] = wanted


def wanted(ctx: Context) -> Wanted | None:
    """The build the venv stage asked for, taken: it is built at most once."""
    found = ctx.state.pop(WANTED, None)
    return found if isinstance(found, Wanted) else None
