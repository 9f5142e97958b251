"""The worker process: runs the worker stages in the prepared environment, then serves.

Started by the supervisor as ``<env python> -m bootstrap.supervision.worker`` (not through the CLI:
the worker needs none of click, and every import here is paid on every boot). It writes its JSON
events to a pipe of their own, inherited from the supervisor (``ENV_EVENTS_FD`` names it), so
nothing the app prints on stdout can be read as a message nor glued to one; stdout and stderr
are the app's, relayed as output. It keeps faulthandler pointed at a file the supervisor reads
(so a segfault or a hang leaves a Python stack behind), and turns SIGTERM into a clean,
reported stop.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

import bootstrap
from bootstrap import pipeline
from bootstrap.kernel import events
from bootstrap.kernel.config import Config
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode, for_signal
from bootstrap.kernel.protocol import emit_worker_stopped
from bootstrap.kernel.runner import Shutdown, StageLoop
from bootstrap.kernel.stage import Stage

# Environment the supervisor hands to the worker.
ENV_CONFIG = "BOOTSTRAP_WORKER_CONFIG"
ENV_RUN_ID = "BOOTSTRAP_RUN_ID"
ENV_WORKER_ID = "BOOTSTRAP_WORKER_ID"
ENV_RUN_DIR = "BOOTSTRAP_RUN_DIR"
# The file descriptor the worker writes its events to (the protocol's channel).
ENV_EVENTS_FD = "BOOTSTRAP_EVENTS_FD"
FAULT_LOG = "faulthandler.log"
# The directory holding the bootstrap package, put on the worker's PYTHONPATH so an
# environment built on the volume need not contain bootstrap itself. Taken from the
# package, not from this module's place in it, which a layout change moves.
PACKAGE_ROOT = Path(bootstrap.__file__).resolve().parent.parent

# Kept open for the life of the process: faulthandler writes to its file descriptor.
_fault_file: IO[str] | None = None


def _arm_faulthandler(run_dir: Path) -> None:
    """Crashes and SIGUSR1 dumps write every thread's stack to a file the supervisor reads."""
    global _fault_file
    _fault_file = open(run_dir / FAULT_LOG, "a")  # noqa: SIM115 - must outlive this function
    faulthandler.enable(file=_fault_file, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=_fault_file, all_threads=True, chain=False)


def _on_stop_signal(signum: int, _: FrameType | None) -> None:
    raise Shutdown(signum)


def events_channel() -> TextIO:
    """The stream the supervisor reads events from: the inherited descriptor, line-buffered
    and flushed per event. Not passed on to the worker's own children."""
    fd = int(os.environ[ENV_EVENTS_FD])
    os.set_inheritable(fd, False)
    return open(fd, "w", encoding="utf-8", buffering=1)


def environment(config: Config, run_id: str, worker_id: str, run_dir: Path,
                events_fd: int) -> dict[str, str]:
    """The environment the worker process is started with (by ``run`` and ``check``);
    ``events_fd`` is the descriptor it inherits for its events (``pass_fds``)."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env.update({
        ENV_EVENTS_FD: str(events_fd),
        ENV_CONFIG: config.to_env(),
        ENV_RUN_ID: run_id,
        ENV_WORKER_ID: worker_id,
        ENV_RUN_DIR: str(run_dir),
        "PYTHONPATH": f"{PACKAGE_ROOT}{os.pathsep}{path}" if path else str(PACKAGE_ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def stages(config: Config) -> list[Stage]:
    """The worker's stages: the one place this process asks for them."""
    return pipeline.worker_stages(config)


def check_main() -> int:
    """``bootstrap check``'s half in the worker's interpreter: the worker's stages in order
    (the first line), then every worker stage's read-only checks, one JSON message per
    line, on the events channel: what a stage's check prints stays output. The stages see
    the packages the worker will have, not the supervisor's."""
    config = Config.from_env(os.environ[ENV_CONFIG])
    channel = events_channel()
    events.configure("json", sys.stderr, level=config.log_level)
    ctx = Context(config, os.environ[ENV_RUN_ID], os.environ[ENV_WORKER_ID], dry_run=True)
    ordered = stages(config)
    channel.write(json.dumps({"stages": [stage.name for stage in ordered]}) + "\n")
    for stage, message in StageLoop(ctx).check(ordered):
        channel.write(json.dumps({"stage": stage, **message.to_dict()}) + "\n")
    channel.close()
    return int(ExitCode.OK)


def main() -> int:
    config = Config.from_env(os.environ[ENV_CONFIG])
    events.configure("json", events_channel(), level=config.log_level)
    events.bind(run_id=os.environ[ENV_RUN_ID], worker_id=os.environ[ENV_WORKER_ID],
                process="worker")
    _arm_faulthandler(Path(os.environ[ENV_RUN_DIR]))
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)

    ctx = Context(config, os.environ[ENV_RUN_ID], os.environ[ENV_WORKER_ID])
    try:
        # Deadlines are not watched here: the supervisor's Monitor watches this process.
        failed = StageLoop(ctx).run(stages(config))
    except Shutdown as stop:
        emit_worker_stopped(signal.Signals(stop.signum).name)
        return for_signal(stop.signum)
    if failed is not None:
        return int(failed.failure.exit_code if failed.failure else ExitCode.INTERNAL)
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(check_main() if sys.argv[1:] == ["--check"] else main())
