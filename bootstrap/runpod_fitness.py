"""RunPod's fitness checks, run by the serve stage before the SDK starts, so a failed one
is a named failure instead of a bare exit 1.

On the platform ``runpod.serverless.start`` runs its fitness checks (runpod 1.12,
``rp_fitness.run_fitness_checks``: memory, disk, network, and on a GPU machine CUDA's
version, initialization and a benchmark, plus any the handler registered) and, on the
first that raises, logs ``Fitness check failed: ...`` and calls ``os._exit(1)``. Here the
same registered checks run first, in the same order; a failure raises StageFailed with the
check's own id and the ``RUNPOD_*`` setting that governs it. Passed, they are cleared, so
the SDK does not run them twice. The SDK's registry is not public API: where it is missing
(another SDK version) the SDK runs its checks itself, as before.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shlex
from collections.abc import Callable
from typing import Any

from bootstrap.kernel.config import Config
from bootstrap.kernel.message import Message, error
from bootstrap.kernel.stage import StageFailed

E001 = error("fitness.E001", "RunPod's fitness check {check} failed: {reason}",
             "the container has less free memory than RUNPOD_MIN_MEMORY_GB asks (default 4): "
             "give the endpoint more RAM, or lower RUNPOD_MIN_MEMORY_GB")
E002 = error("fitness.E002", "RunPod's fitness check {check} failed: {reason}",
             "the root filesystem has less free space than RUNPOD_MIN_DISK_PERCENT asks "
             "(default 10%): a larger container disk, or lower RUNPOD_MIN_DISK_PERCENT")
E003 = error("fitness.E003", "RunPod's fitness check {check} failed: {reason}",
             "the worker could not reach 8.8.8.8:53 within RUNPOD_NETWORK_CHECK_TIMEOUT "
             "(default 5 s): the host's network; RUNPOD_SKIP_AUTO_SYSTEM_CHECKS=true skips "
             "the memory, disk and network checks together")
E004 = error("fitness.E004", "RunPod's fitness check {check} failed: {reason}",
             "the GPU or its driver failed RunPod's check (RUNPOD_MIN_CUDA_VERSION for the "
             "driver's CUDA, RUNPOD_GPU_TEST_TIMEOUT and RUNPOD_GPU_BENCHMARK_TIMEOUT for "
             "its tests; RUNPOD_SKIP_GPU_CHECK=true skips the memory test): usually one "
             "host's fault; restrict the endpoint's CUDA versions if it is the driver")
E005 = error("fitness.E005", "the fitness check {check} failed: {reason}",
             "a check the handler registered (runpod.serverless.register_fitness_check) "
             "refused this worker; its message says why")

# The SDK's check names (rp_system_fitness, rp_gpu_fitness) and the message for each.
SDK_CHECKS = {
    "_memory_check": E001,
    "_disk_check": E002,
    "_network_check": E003,
    "_cuda_version_check": E004,
    "_cuda_init_check": E004,
    "_benchmark_check": E004,
    "_gpu_health_check": E004,
}


def runs_checks(config: Config) -> bool:
    """The SDK's own rule (worker._is_local, start): fitness checks run only in its
    production loop, on the platform without a test job, a local API or a realtime port."""
    args = shlex.split(config.serve_args)
    return bool(os.environ.get("RUNPOD_WEBHOOK_GET_JOB") and not config.test_input
                and "--rp_serve_api" not in args and not os.environ.get("RUNPOD_REALTIME_PORT")
                and not any(arg.startswith("--test_input") for arg in args))


def message_for(check: str, reason: str) -> Message:
    return SDK_CHECKS.get(check, E005).at(check, check=check, reason=reason)


async def _first_failure(checks: list[Callable[[], Any]]) -> tuple[str, str] | None:
    for check in checks:
        try:
            result = check()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            return check.__name__, f"{type(exc).__name__}: {exc}"
    return None


def run(config: Config) -> None:
    """Run the SDK's registered fitness checks now; a failure raises StageFailed."""
    if not runs_checks(config):
        return
    from runpod.serverless.modules import rp_fitness  # the serve stage has imported runpod

    registry = getattr(rp_fitness, "_fitness_checks", None)
    register = [getattr(rp_fitness, name, None) for name in
                ("_ensure_gpu_check_registered", "_ensure_system_checks_registered")]
    if not isinstance(registry, list) or not all(callable(f) for f in register):
        return  # another SDK: its own checks run in start(), unnamed
    for ensure in register:
        ensure()  # type: ignore[misc]
    failed = asyncio.run(_first_failure(list(registry)))
    if failed is not None:
        check, reason = failed
        report = getattr(rp_fitness, "_report_unhealthy", None)
        if callable(report):  # what the SDK tells the platform before it exits
            report(check, reason)
        raise StageFailed(message_for(check, reason), cause=reason)
    registry.clear()  # passed: start() finds none left to run again
