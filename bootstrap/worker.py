"""The worker process: runs the worker stages in the prepared environment, then serves.

Started by the supervisor as ``<env python> -m bootstrap.worker`` (not through the CLI:
the worker needs none of click, and every import here is paid on every boot). It always writes JSON
events on stdout (the supervisor parses them), keeps faulthandler pointed at a file the
supervisor reads (so a segfault or a hang leaves a Python stack behind), and turns SIGTERM
into a clean, reported stop.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import IO

from bootstrap import events, pipeline
from bootstrap.config import Config
from bootstrap.context import Context
from bootstrap.exit_codes import ExitCode, for_signal
from bootstrap.runner import Shutdown, run_stage, skip_stage
from bootstrap.stage import Status

# Environment the supervisor hands to the worker.
ENV_CONFIG = "BOOTSTRAP_WORKER_CONFIG"
ENV_RUN_ID = "BOOTSTRAP_RUN_ID"
ENV_WORKER_ID = "BOOTSTRAP_WORKER_ID"
ENV_RUN_DIR = "BOOTSTRAP_RUN_DIR"
FAULT_LOG = "faulthandler.log"

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


def main() -> int:
    config = Config.from_env(os.environ[ENV_CONFIG])
    events.configure("json", sys.stdout, level=config.log_level)
    events.bind(run_id=os.environ[ENV_RUN_ID], worker_id=os.environ[ENV_WORKER_ID],
                process="worker")
    _arm_faulthandler(Path(os.environ[ENV_RUN_DIR]))
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)

    ctx = Context(config, os.environ[ENV_RUN_ID], os.environ[ENV_WORKER_ID])
    try:
        for stage in pipeline.worker_stages(config):
            if stage.name in config.skip:
                skip_stage(stage, "skipped by configuration")
                continue
            result = run_stage(stage, ctx)
            if result.status is Status.FAIL:
                return int(result.failure.exit_code if result.failure else ExitCode.INTERNAL)
    except Shutdown as stop:
        events.emit("warn", "worker.stopped", signal=signal.Signals(stop.signum).name,
                    msg="stopped on request")
        return for_signal(stop.signum)
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
