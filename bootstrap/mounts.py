"""Which mount a path lives on, read from ``/proc/self/mountinfo``.

``os.path.ismount`` cannot tell a bind mount of a subdirectory from a plain directory and
says nothing about the filesystem; mountinfo names the mount point, the filesystem type,
its source and whether it is read-only, as this process's mount namespace sees them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Mount:
    point: Path
    fstype: str
    source: str
    options: frozenset[str]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    def describe(self) -> str:
        return f"{self.fstype} from {self.source}" + (" (read-only)" if self.read_only else "")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...)
    return field.encode().decode("unicode_escape") if "\\" in field else field


def parse(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        options = set(fields[5].split(","))
        if len(tail) > 2:
            options |= set(tail[2].split(","))  # superblock options: ro there is ro too
        mounts.append(Mount(Path(_unescape(fields[4])), tail[0], _unescape(tail[1]),
                            frozenset(options)))
    return mounts


def table() -> list[Mount]:
    return parse(MOUNTINFO.read_text())


def mount_of(path: Path, mounts: list[Mount] | None = None) -> Mount | None:
    """The mount holding ``path`` (the longest mount point above it; the last one wins
    when mounts are stacked on one point, as the kernel shows the newest last)."""
    real = Path(os.path.realpath(path))
    best: Mount | None = None
    for mount in mounts if mounts is not None else table():
        holds = real == mount.point or mount.point in real.parents
        if holds and (best is None or len(mount.point.parts) >= len(best.point.parts)):
            best = mount
    return best


def is_mount_point(path: Path, mounts: list[Mount] | None = None) -> bool:
    mount = mount_of(path, mounts)
    return mount is not None and mount.point == Path(os.path.realpath(path))
