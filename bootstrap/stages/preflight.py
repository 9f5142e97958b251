"""preflight: what this machine is, before anything is written or loaded.

Python and platform, CPUs, memory (host and the cgroup's limit), free space on the
container disk and in the temp dir, the worker's identity from RunPod's variables, and
whether the platform's cold-start limit leaves room for this boot.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, error, info, warning
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed
from bootstrap.supervision import cgroup

MIN_PYTHON = (3, 11)
# RunPod marks a worker unhealthy after 7 minutes of cold start unless RUNPOD_INIT_TIMEOUT
# says otherwise.
RUNPOD_DEFAULT_INIT_TIMEOUT_S = 420
# Warn when the expected boot uses more than this share of the platform's limit.
INIT_TIMEOUT_MARGIN = 0.8
CONTAINER_DISK = Path("/")

E001 = error("preflight.E001", "Python {found} is too old; bootstrap needs {need}",
             "use a base image with Python {need} or newer")
E002 = error("preflight.E002", "{free_mb} MB free on the container disk, {need_mb} MB needed",
             "raise the endpoint's container disk size, or lower BOOTSTRAP_MIN_FREE_DISK_MB")
E003 = error("preflight.E003", "{free_mb} MB free in the temp dir, {need_mb} MB needed",
             "point TMPDIR at a disk with room, or raise the container disk size")
W001 = warning("preflight.W001",
               "boot expected to take {expected} s of the {limit} s cold-start limit",
               "set RUNPOD_INIT_TIMEOUT above {suggest} s in the endpoint's environment")
W002 = warning("preflight.W002", "RUNPOD_INIT_TIMEOUT={value!r} is not a number of seconds",
               "set RUNPOD_INIT_TIMEOUT to whole seconds, e.g. 900")
I001 = info("preflight.I001", "not running on RunPod (RUNPOD_POD_ID is not set)",
            "expected on a developer machine; on RunPod this variable is always set")


def _free_mb(path: Path) -> int:
    return shutil.disk_usage(path).free // (1 << 20)


def _init_timeout(ctx: Context) -> tuple[float, list[Message]]:
    raw = os.environ.get("RUNPOD_INIT_TIMEOUT")
    if raw is None:
        return RUNPOD_DEFAULT_INIT_TIMEOUT_S, []
    try:
        return float(raw), []
    except ValueError:
        return RUNPOD_DEFAULT_INIT_TIMEOUT_S, [W002.at("RUNPOD_INIT_TIMEOUT", value=raw)]


def check(ctx: Context) -> list[Message]:
    messages: list[Message] = []
    if sys.version_info[:2] < MIN_PYTHON:
        messages.append(E001.at(sys.executable, found=platform.python_version(),
                                need=".".join(map(str, MIN_PYTHON))))
    need = ctx.config.min_free_disk_mb
    if (free := _free_mb(CONTAINER_DISK)) < need:
        messages.append(E002.at(CONTAINER_DISK, free_mb=free, need_mb=need))
    tmp = Path(tempfile.gettempdir())
    if (free := _free_mb(tmp)) < need:
        messages.append(E003.at(tmp, free_mb=free, need_mb=need))
    limit, problems = _init_timeout(ctx)
    messages += problems
    expected = ctx.config.expected_boot_s
    if expected > limit * INIT_TIMEOUT_MARGIN:
        messages.append(W001.at("RUNPOD_INIT_TIMEOUT", expected=int(expected), limit=int(limit),
                                suggest=int(expected / INIT_TIMEOUT_MARGIN) + 60))
    # `bootstrap check --platform runpod` predicts the platform, where the variable is set.
    if "RUNPOD_POD_ID" not in os.environ and ctx.platform != "runpod":
        messages.append(I001.at("RUNPOD_POD_ID"))
    return messages


def facts() -> dict[str, Any]:
    import psutil  # only here: the worker imports this module too, and never needs it

    memory = psutil.virtual_memory()
    group = cgroup.memory_cgroup()
    limit = group.limit_bytes() if group else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "memory_total_mb": memory.total >> 20,
        "memory_available_mb": memory.available >> 20,
        "memory_limit_mb": limit >> 20 if limit else None,
        "container_disk_free_mb": _free_mb(CONTAINER_DISK),
        "tmp_free_mb": _free_mb(Path(tempfile.gettempdir())),
        "runpod": {key: os.environ[key] for key in (
            "RUNPOD_POD_ID", "RUNPOD_ENDPOINT_ID", "RUNPOD_GPU_COUNT", "RUNPOD_DC_ID",
            "RUNPOD_INIT_TIMEOUT") if key in os.environ},
    }


def run(ctx: Context) -> Outcome:
    messages = check(ctx)
    for message in messages:
        if message.is_serious:
            raise StageFailed(message)
    return Outcome(facts=facts(), messages=messages)


STAGE = Stage(name="preflight", run=run, check=check, side=Side.SUPERVISOR,
              exit_code=ExitCode.PREFLIGHT, deadline_s=60)
