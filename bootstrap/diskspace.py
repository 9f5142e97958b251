"""Free space, and disk-full errors translated into which disk and how much.

ENOSPC and EDQUOT arrive as a bare errno from our own writes, or as a line of text in an
installer's stderr; either way the operator needs the disk, its free space and what the
work needed, not "[Errno 28]".
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from bootstrap import mounts

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How installers (pip: Python's strerror; uv: Rust's io::Error) word a full disk or quota.
FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")


def free_mb(path: Path) -> int:
    """Free MB for this user at ``path`` or its nearest existing parent."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free >> 20


def fullest(paths: list[Path]) -> Path:
    """Of the disks an install writes to, the one with the least free space: the one that
    filled up, since an installer's message seldom says which."""
    return min(paths, key=free_mb)


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def text_says_full(text: str) -> bool:
    lower = text.lower()
    return any(marker in lower for marker in FULL_TEXT)


def quota_in(text: str) -> bool:
    lower = text.lower()
    return "quota" in lower or "os error 122" in lower


def used_mb(path: Path) -> int:
    """Bytes under ``path`` (not following links), in MB; what a failed build had written.
    A file hard-linked twice (uv's cache and the environment) counts once, as for ``du``."""
    total, seen = 0, set()
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            with contextlib.suppress(OSError):  # removed while we walk
                stat = os.lstat(os.path.join(root, name))
                if (stat.st_dev, stat.st_ino) not in seen:
                    seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_size
    return total >> 20


def describe_disk(path: Path) -> str:
    """``/runpod-volume (nfs4 from host:/x)``: the mount holding ``path``, for messages."""
    mount = mounts.mount_of(path)
    if mount is None:
        return str(path)
    return f"{mount.point} ({mount.fstype})"
