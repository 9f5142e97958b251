"""Environments on the shared volume: ``<volume>/.bootstrap/envs/<key>/``.

A build happens in ``<key>.tmp-<worker>-<pid>`` and is published by ``rename``; the marker
(``.bootstrap-env.json``, written to a staging name then ``os.replace``d) is written before
that rename, so a directory at the final name is complete or was damaged later, never
half built. "Usable" means marker present **and** the health check passes. Removal renames
a directory aside first, so no reader ever sees a half-deleted environment.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from bootstrap.kernel import command
from bootstrap.kernel.command import CommandFailed

MARKER = ".bootstrap-env.json"
# Touched by every boot that uses the environment; without it, the marker's time counts.
LAST_USED = ".bootstrap-last-used"
# Its name in an earlier bootstrap, still read: a worker of that version may be serving
# from the environment, which garbage collection must then leave.
LAST_USED_BEFORE = ".bootstrap-used"
# Garbage collection never removes an environment some boot used more recently than this:
# a worker may still be running from it (it has no way to say so while it serves).
GC_MIN_IDLE_S = 24 * 3600.0
# -S: no site import; the version is all we ask, and a warm boot pays for this start
VERSION_CODE = "import sys; print(sys.version.split()[0])"


class Store:
    def __init__(self, volume: Path) -> None:
        self.root = volume / ".bootstrap" / "envs"
        self.locks = volume / ".bootstrap" / "locks"

    def path(self, key: str) -> Path:
        return self.root / key

    def staging(self, key: str, worker_id: str) -> Path:
        return self.root / f"{key}.tmp-{worker_id}-{os.getpid()}"

    # -- state --------------------------------------------------------------------------

    def identity(self, path: Path) -> tuple[int, int] | None:
        """Changes whenever an environment is published at ``path``."""
        try:
            st = (path / MARKER).stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def others(self, key: str) -> list[Path]:
        """Published environments other than ``key``, newest use first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir()
                 if p.name != key and "." not in p.name and (p / MARKER).is_file()]
        return sorted(found, key=last_used, reverse=True)

    # -- changes ------------------------------------------------------------------------

    def discard(self, path: Path) -> None:
        """Remove ``path``: rename aside (atomic for readers), then delete."""
        if not path.exists():
            return
        aside = path.with_name(f"{path.name}.trash-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        shutil.rmtree(aside, ignore_errors=True)

    def clean_leftovers(self, key: str) -> list[str]:
        """Remove interrupted builds of ``key`` and interrupted removals; only while holding
        the key's lease, when no build of it can be running."""
        if not self.root.is_dir():
            return []
        removed = []
        for path in self.root.iterdir():
            if path.name.startswith(f"{key}.tmp-") or ".trash-" in path.name:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    def publish(self, staging: Path, key: str) -> Path:
        """Move a complete build to its final name. Raises FileExistsError when another
        worker published the same key first (then the caller uses theirs)."""
        final = self.path(key)
        retarget_scripts(staging / "bin", staging, final)
        try:
            os.rename(staging, final)
        except OSError as exc:
            if final.is_dir() and exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise FileExistsError(final) from exc
            raise
        mark_used(final)
        return final

    def gc(self, keep: int, current: str, busy: set[str]) -> list[str]:
        """Remove environments beyond the ``keep`` most recently used, never ``current``,
        one being built (``busy``: keys with a lease), or one used within GC_MIN_IDLE_S."""
        removed = []
        for path in self.others(current)[max(keep - 1, 0):]:
            if path.name in busy or time.time() - last_used(path) < GC_MIN_IDLE_S:
                continue
            self.discard(path)
            removed.append(path.name)
        return removed


def write_marker(env: Path, record: dict[str, Any]) -> None:
    staging = env / f"{MARKER}.tmp"
    with open(staging, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staging, env / MARKER)


def read_marker(env: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((env / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def mark_used(env: Path) -> None:
    with contextlib.suppress(OSError):
        (env / LAST_USED).touch()


def last_used(env: Path) -> float:
    times = []
    for name in (LAST_USED, LAST_USED_BEFORE):
        with contextlib.suppress(OSError):
            times.append((env / name).stat().st_mtime)
    if times:
        return max(times)
    with contextlib.suppress(OSError):
        return (env / MARKER).stat().st_mtime
    return 0.0


def pyvenv_version(env: Path) -> str | None:
    """The Python version ``pyvenv.cfg`` records (venv writes ``version``, uv ``version_info``)."""
    try:
        text = (env / "pyvenv.cfg").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() in ("version", "version_info"):
            return value.strip()
    return None


def health(env: Path, python_version: str | None = None) -> str | None:
    """None when ``env`` can be used; otherwise the human reason to rebuild it."""
    want = python_version or platform.python_version()
    if not env.is_dir():
        return "missing"
    marker = read_marker(env)
    if marker is None:
        return "no completion marker: the build was interrupted"
    recorded = pyvenv_version(env)
    if recorded is None:
        return "pyvenv.cfg is missing or names no version"
    if recorded != want:
        return f"pyvenv.cfg names Python {recorded}, this worker runs {want}"
    python = env / "bin" / "python"
    if not python.exists():  # exists() follows the link: a dangling one is False
        target = os.path.realpath(python) if python.is_symlink() else python
        return f"bin/python points at {target}, which does not exist"
    try:
        result = command.run([python, "-I", "-S", "-c", VERSION_CODE], timeout_s=60)
    except (CommandFailed, OSError) as exc:
        return f"bin/python does not run: {str(exc).splitlines()[0]}"
    found = result.stdout.strip()
    if found != want:
        return f"bin/python runs Python {found}, this worker runs {want}"
    return None


def retarget_scripts(bin_dir: Path, old: Path, new: Path) -> None:
    """Point the scripts an installer wrote (shebangs, activate) at the final path."""
    if not bin_dir.is_dir():
        return
    before, after = str(old).encode(), str(new).encode()
    for path in bin_dir.iterdir():
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        data = path.read_bytes()
        if before in data:
            mode = path.stat().st_mode
            path.write_bytes(data.replace(before, after))
            path.chmod(mode)
