"""The key of an environment: a hash of everything that decides what it contains.

An environment built for another Python, ABI, platform, requirement set or installer is
a different environment (FAILURES.md 5): it gets another directory instead of being
reused and found broken at import time.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import sysconfig
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bootstrap.environment.requirements import Requirements
from bootstrap.kernel.config import Config


def strip_credentials(url: str) -> str:
    """``https://user:token@host/simple`` → ``https://host/simple``: rotating a token must
    not rebuild the environment, and the key inputs are written to the marker."""
    if "@" not in url:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def inputs(config: Config, requirements: Requirements, installer: str) -> dict[str, Any]:
    # Only when there are any: the keys of environments without overrides stay as they were.
    overrides = {"overrides": list(requirements.overrides)} if requirements.overrides else {}
    return {
        **overrides,
        "python": platform.python_version(),
        "abi": sysconfig.get_config_var("SOABI") or sys.implementation.cache_tag,
        "platform": sysconfig.get_platform(),
        "libc": "-".join(platform.libc_ver()),
        "requirements": requirements.text(),
        "installer": installer,
        "system_site_packages": config.system_site_packages,
        "index_url": strip_credentials(config.index_url),
        "find_links": [strip_credentials(link) for link in config.find_links],
        "no_index": config.no_index,
    }


def key(values: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
    return f"{sys.implementation.cache_tag}-{digest[:16]}"


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Which inputs changed between two environments, for "why a new one is built"."""
    return sorted(k for k in new.keys() | old.keys() if old.get(k) != new.get(k))
