"""``bootstrap check``: every stage's read-only checks, on the side each stage runs on.

Supervisor stages are checked here. Worker stages are checked in the worker's own
interpreter (``python -m bootstrap.supervision.worker --check``), because what they check -- torch,
CUDA, the audio stack -- is what that interpreter has, not what the supervisor has. When
that interpreter does not exist yet (a volume environment still to be built), the check
says so instead of guessing.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bootstrap import pipeline, runpod_platform
from bootstrap.environment.envbuild import PYTHON
from bootstrap.kernel import command
from bootstrap.kernel.config import Config
from bootstrap.kernel.context import Context
from bootstrap.kernel.message import Message, error, info
from bootstrap.kernel.runner import Found, StageLoop
from bootstrap.supervision import worker

I001 = info("check.I001", "worker stages not checked: their environment does not exist yet",
            "`bootstrap run` builds it first; run the check again after a boot")
E002 = error("check.E002", "the worker's interpreter {python} could not run its checks: "
             "{cause}", "the venv stage decides which interpreter it is; `bootstrap run` "
             "would fail the same way")
I002 = info("check.I002", "boot order (app {app}): {order}",
            "a stage in brackets is skipped (the skip setting)")
WORKER_CHECK_TIMEOUT_S = 300  # importing torch and probing the GPU, on a slow volume


def collect(config: Config, worker_id: str, platform: str | None = None) -> Found:
    ctx = Context(config, run_id="check", worker_id=worker_id, dry_run=True)
    found: Found = []
    if platform == "runpod":
        ctx.platform = "runpod"
        found += [("platform", m) for m in runpod_platform.check(config)]
    supervisor = pipeline.supervisor_stages()
    found += StageLoop(ctx).check(supervisor)
    worker_found, worker_stages = _worker_side(ctx)
    names = [_named(stage.name, ctx) for stage in supervisor]
    names += [_named(name, ctx) for name in worker_stages] or ["(the worker's stages, once "
                                                              "its environment is built)"]
    order = I002.at("boot", app=ctx.config.app or "none", order=" -> ".join(names))
    return [("check", order), *found, *worker_found]


def _named(name: str, ctx: Context) -> str:
    return f"[{name}]" if name in ctx.config.skip else name


def _worker_side(ctx: Context) -> tuple[Found, list[str]]:
    """The worker stages' findings, in the worker's interpreter, and the stages' names in
    order (none when that interpreter does not exist yet)."""
    python = PYTHON.get(ctx)
    if python is None:
        if ctx.config.mode == "volume":
            return [("worker", I001.at(ctx.config.volume))], []
        python = Path(sys.executable)
    # The findings come on the worker's events channel (here a file it inherits): what a
    # stage's check prints on stdout is not read as one.
    with tempfile.TemporaryDirectory(prefix="bootstrap-check-") as run_dir, \
            tempfile.TemporaryFile("w+", encoding="utf-8") as channel:
        env = worker.environment(ctx.config, ctx.run_id, ctx.worker_id, Path(run_dir),
                                 channel.fileno())
        result = command.run([python, "-m", "bootstrap.supervision.worker", "--check"], env=env,
                             timeout_s=WORKER_CHECK_TIMEOUT_S, check=False,
                             pass_fds=(channel.fileno(),))
        channel.seek(0)
        lines = channel.read().splitlines()
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        return [("worker", E002.at(python, python=python, cause=last[0][:200]))], []
    found: Found = []
    names: list[str] = []
    for line in lines:
        data = json.loads(line)
        if "stages" in data:  # the first line: the worker's stages, in order
            names = [str(name) for name in data["stages"]]
            continue
        found.append((data.pop("stage"), Message.from_dict(data)))
    return found, names
