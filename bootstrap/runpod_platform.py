"""What the RunPod serverless runtime will provide, checked from anywhere.

``bootstrap check --platform runpod`` adds these to the stages' own checks, so a run on a
laptop predicts what the worker will meet on the platform: the volume at /runpod-volume,
no local-only settings, a GPU that the installed torch can use.
"""

from __future__ import annotations

import re
from importlib import metadata

from bootstrap.kernel.config import Config
from bootstrap.kernel.message import Message, error, info, warning

SERVERLESS_VOLUME = "/runpod-volume"

E001 = error("platform.E001", "serverless mounts the network volume at /runpod-volume, "
             "not {volume}", "set BOOTSTRAP_VOLUME=/runpod-volume (pods use /workspace)")
E002 = error("platform.E002", "local mode is for developer machines",
             "set BOOTSTRAP_MODE=volume (packages on the volume) or image (baked in)")
E003 = error("platform.E003", "test_input is set: the worker would answer one job and exit",
             "unset BOOTSTRAP_TEST_INPUT in the endpoint's environment")
W001 = warning("platform.W001", "CPU is allowed: without a GPU the model would serve "
               "from the CPU, minutes per request", "unset BOOTSTRAP_ALLOW_CPU")
I001 = info("platform.I001", "torch {torch} needs CUDA {cuda} or newer on the host",
            "allow only CUDA {cuda}+ in the endpoint's settings (GPU types and CUDA versions)")


def torch_cuda() -> tuple[str, str] | None:
    """(torch version, CUDA version) from the installed metadata, without importing torch."""
    try:
        version = metadata.version("torch")
        requires = metadata.requires("torch") or []
    except metadata.PackageNotFoundError:
        return None
    local = re.search(r"\+cu(\d+)(\d)$", version)
    if local:
        return version, f"{local.group(1)}.{local.group(2)}"
    for requirement in requires:  # PyPI's wheels pin the CUDA runtime they were built with
        pinned = re.match(r"nvidia-cuda-runtime-cu\d+\s*==\s*(\d+\.\d+)", requirement)
        if pinned:
            return version, pinned.group(1)
    return None


def check(config: Config) -> list[Message]:
    messages: list[Message] = []
    if config.mode == "local":
        messages.append(E002.at("mode"))
    elif config.mode == "volume" and str(config.volume) != SERVERLESS_VOLUME:
        messages.append(E001.at(config.volume, volume=config.volume))
    if config.test_input:
        messages.append(E003.at("test_input"))
    if config.allow_cpu:
        messages.append(W001.at("allow_cpu"))
    found = torch_cuda()
    if found:
        messages.append(I001.at("torch", torch=found[0], cuda=found[1]))
    return messages
