"""Reads the memory cgroup this process lives in: its limit and its OOM-kill counter.

The kernel's OOM killer sends SIGKILL and writes nothing the container's console shows;
the only trace is a counter in the cgroup (``oom_kill`` in ``memory.events`` on v2, in
``memory.oom_control`` on v1). Reading it before and after the worker dies tells an OOM
kill from any other SIGKILL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
PROC_MOUNTINFO = Path("/proc/self/mountinfo")
UNLIMITED = 1 << 60  # v1 reports "no limit" as a huge page-aligned number


@dataclass(frozen=True)
class MemoryCgroup:
    version: int  # 1 or 2
    path: Path  # the cgroup's directory under the cgroup filesystem

    def oom_kills(self) -> int | None:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (self.path / name).read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return None

    def limit_bytes(self) -> int | None:
        name = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        try:
            text = (self.path / name).read_text().strip()
        except OSError:
            return None
        if text == "max" or not text.isdigit() or int(text) >= UNLIMITED:
            return None
        return int(text)


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) for every cgroup mount."""
    out = []
    for line in PROC_MOUNTINFO.read_text().splitlines():
        head, _, tail = line.partition(" - ")
        fields, tail_fields = head.split(), tail.split()
        if len(tail_fields) >= 3 and tail_fields[0] in ("cgroup", "cgroup2"):
            out.append((fields[3], fields[4], tail_fields[0], set(tail_fields[2].split(","))))
    return out


def _under(mount_root: str, mount_point: str, cgroup_path: str) -> Path:
    # Inside a container the mount's root is often the container's own cgroup, and
    # /proc/self/cgroup names the path from the host's root; strip the shared prefix.
    relative = cgroup_path
    if mount_root != "/" and cgroup_path.startswith(mount_root):
        relative = cgroup_path[len(mount_root):]
    return Path(mount_point) / relative.lstrip("/")


def memory_cgroup() -> MemoryCgroup | None:
    """This process's memory cgroup, v1 preferred when its controller is mounted."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
        mounts = _mounts()
    except OSError:
        return None
    v1_path = v2_path = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            v1_path = path
        elif controllers == "":
            v2_path = path
    for root, point, fstype, options in mounts:
        if fstype == "cgroup" and v1_path is not None and "memory" in options:
            return MemoryCgroup(1, _under(root, point, v1_path))
    for root, point, fstype, _ in mounts:
        if fstype == "cgroup2" and v2_path is not None:
            candidate = _under(root, point, v2_path)
            if (candidate / "memory.events").exists():
                return MemoryCgroup(2, candidate)
    return None
