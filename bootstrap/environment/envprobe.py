"""Run *inside* an environment's Python (stdlib only, as a script): import the key modules
one by one, timing each, list the installed distributions, and check the requirements
against them. Prints one JSON object.

Used after an install (volume and local modes) and instead of one (image mode). It runs in
a child process because the supervisor must never import torch and friends itself.

    python -I envprobe.py '{"imports": ["torch"], "requirements": ["torch>=2.4"]}'
"""

from __future__ import annotations

import importlib
import json
import platform
import re
import sys
import time
from typing import Any

NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(modules: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for module in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(module)
        except BaseException as exc:  # SystemExit from a module is a failed import too
            out[module] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            out[module] = {"ms": round((time.perf_counter() - started) * 1000, 1)}
    return out


def _unmet(requirements: list[str], versions: dict[str, str]) -> list[str]:
    Requirement: Any = None  # packaging if the environment has it, else pip's copy
    for module in ("packaging.requirements", "pip._vendor.packaging.requirements"):
        try:
            Requirement = importlib.import_module(module).Requirement
            break
        except ImportError:
            continue
    unmet = []
    for line in requirements:
        if line.startswith("-"):
            continue  # an installer option (--extra-index-url ...), not a requirement
        if Requirement is None:
            match = NAME.match(line)
            if match and _canonical(match.group(1)) not in versions:
                unmet.append(f"{line} (not installed)")
            continue
        try:
            req = Requirement(line)
        except Exception:
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        found = versions.get(_canonical(req.name))
        if found is None:
            unmet.append(f"{line} (not installed)")
        elif req.specifier and not req.specifier.contains(found, prereleases=True):
            unmet.append(f"{line} (found {found})")
    return unmet


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    import importlib.metadata  # here, not at the top: the boot pays for every module import

    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(_canonical(name), dist.version)
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "versions": dict(sorted(versions.items())),
        "imports": _imports(spec.get("imports", [])),
        "unmet": _unmet(spec.get("requirements", []), versions),
    }


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))))
