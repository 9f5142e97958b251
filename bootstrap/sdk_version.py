"""Whether the worker's RunPod SDK is as new as the docs ask (docs/deploy-runpod.md).

Read from the distribution's metadata, never by importing it: ``bootstrap check`` and the
serve stage judge it before the SDK is loaded. Older SDKs still serve, so this warns.
"""

from __future__ import annotations

import importlib.metadata
import re

MINIMUM = (1, 12)
# What the releases since 1.10.0 fixed, which a worker on an older SDK goes without.
WHY = ("1.10.1 stops the platform funnelling jobs to one worker, 1.11 reports a failed "
       "fitness check to the platform, 1.12 blocks SSRF in its URL downloads and caches "
       "on the network volume")


def installed() -> str | None:
    """The SDK's version in this interpreter, None when it is not installed."""
    try:
        return importlib.metadata.version("runpod")
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def too_old(version: str) -> bool:
    return _release(version) < MINIMUM


def minimum() -> str:
    return ".".join(map(str, MINIMUM))
