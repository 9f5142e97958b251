"""A test bed that behaves like a RunPod network volume: a FUSE passthrough of a local
directory that adds a fixed latency to every metadata operation and caps read bandwidth.

A RunPod volume is MooseFS: a FUSE client (mfsmount) whose metadata operations (lookup,
getattr, open, readdir, create, ...) are round trips to the master, and whose data comes
from chunkservers at network speed. What makes an import slow there is the number of round
trips, not the bytes; this file system reproduces exactly that, with a knob per cost.

Kernel caching is set as mfsmount sets it by default (its ``-h`` text, MooseFS 3/4):

- ``mfsattrcacheto`` 1.0 s  -> ``attr_timeout=1``: the kernel trusts attributes for 1 s;
- ``mfsentrycacheto`` 0.0 s -> ``entry_timeout=0``: every path walk revalidates each
  component with a LOOKUP (the high-level libfuse API turns it into ``getattr``);
- ``mfsnegentrycacheto`` 0.0 s -> ``negative_timeout=0``: a missing name is asked again
  every time (imports probe many missing names);
- ``mfsdirentrycacheto`` 1.0 s: not a kernel cache but mfsmount's own: after a READDIR it
  answers LOOKUPs of that directory's entries from the listing for 1 s without asking the
  master. Modelled here: a ``getattr`` of a path whose parent was listed less than 1 s ago
  costs no added latency;
- ``mfscachemode=AUTO``: file data stays in the page cache across opens while the file is
  unchanged -> libfuse's ``auto_cache``.

Reads are paced by one token bucket for the whole mount (``--mb-s``), as a network link is.
Writes are not paced (the builds that write here are not what is measured).

    python tests/environment/slowfs.py BACKING MOUNTPOINT [--latency-ms 1] [--mb-s 1000]

runs in the foreground until unmounted (``fusermount3 -u MOUNTPOINT``) or signalled;
``mounted()`` does both for a test or a bench.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# mfsmount's defaults (see the module docstring)
ATTR_TIMEOUT_S = 1.0
ENTRY_TIMEOUT_S = 0.0
NEGATIVE_TIMEOUT_S = 0.0
DIRENTRY_CACHE_S = 1.0


class Pacer:
    """Reads share one link of ``mb_s``: each read waits until the link has carried the
    bytes before it (a token bucket with no burst beyond one read)."""

    def __init__(self, mb_s: float) -> None:
        self.bytes_per_s = mb_s * 1e6 if mb_s > 0 else 0.0
        self.free_at = 0.0
        self.lock = threading.Lock()

    def take(self, size: int) -> None:
        if not self.bytes_per_s:
            return
        with self.lock:
            start = max(self.free_at, time.monotonic())
            self.free_at = start + size / self.bytes_per_s
            wait = self.free_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)


def operations(backing: Path, latency_s: float, mb_s: float) -> Any:
    import mfusepy

    class SlowVolume(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True

        def __init__(self) -> None:
            self.root = str(backing)
            self.pacer = Pacer(mb_s)
            self.listed: dict[str, float] = {}  # directory -> when its listing expires
            self.counts: dict[str, int] = {}

        # -- the costs ------------------------------------------------------------------

        def _trip(self, op: str) -> None:
            """One round trip to the metadata server."""
            self.counts[op] = self.counts.get(op, 0) + 1
            if latency_s > 0:
                time.sleep(latency_s)

        def _full(self, path: str) -> str:
            return self.root + path

        # -- metadata -------------------------------------------------------------------

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            parent = os.path.dirname(path)
            if self.listed.get(parent, 0.0) < time.monotonic():
                self._trip("getattr")
            st = os.lstat(self._full(path)) if fh is None else os.fstat(fh)
            attrs = {k: getattr(st, k) for k in (
                "st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino", "st_blocks")}
            # mfusepy reads the times under their plain names, in ns with ``use_ns``; under
            # any other name they are dropped and every file looks made in 1970 (a .py
            # older than its .pyc's record: Python recompiled every module it imported)
            attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns,
                         st_ctime=st.st_ctime_ns)
            return attrs

        def readlink(self, path: str) -> str:
            self._trip("readlink")
            return os.readlink(self._full(path))

        def opendir(self, path: str) -> int:
            self._trip("opendir")
            return 0

        def readdir(self, path: str, fh: int) -> list[str]:
            self._trip("readdir")
            names = [".", "..", *os.listdir(self._full(path))]
            self.listed[path] = time.monotonic() + DIRENTRY_CACHE_S
            return names

        def statfs(self, path: str) -> dict[str, int]:
            st = os.statvfs(self._full(path))
            return {k: getattr(st, k) for k in (
                "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                "f_files", "f_flag", "f_frsize", "f_namemax")}

        def access(self, path: str, amode: int) -> None:
            self._trip("access")
            if not os.access(self._full(path), amode):
                raise mfusepy.FuseOSError(errno.EACCES)

        # -- changes (a build writes here too) ------------------------------------------

        def _changed(self, path: str) -> None:
            self.listed.pop(os.path.dirname(path), None)

        def chmod(self, path: str, mode: int) -> None:
            self._trip("chmod")
            os.chmod(self._full(path), mode)

        def chown(self, path: str, uid: int, gid: int) -> None:
            self._trip("chown")
            os.chown(self._full(path), uid, gid)

        def mknod(self, path: str, mode: int, dev: int) -> None:
            self._trip("mknod")
            self._changed(path)
            os.mknod(self._full(path), mode, dev)

        def mkdir(self, path: str, mode: int) -> None:
            self._trip("mkdir")
            self._changed(path)
            os.mkdir(self._full(path), mode)

        def rmdir(self, path: str) -> None:
            self._trip("rmdir")
            self._changed(path)
            self.listed.pop(path, None)
            os.rmdir(self._full(path))

        def unlink(self, path: str) -> None:
            self._trip("unlink")
            self._changed(path)
            os.unlink(self._full(path))

        def symlink(self, target: str, source: str) -> None:
            self._trip("symlink")
            self._changed(target)
            os.symlink(source, self._full(target))

        def link(self, target: str, source: str) -> None:
            self._trip("link")
            self._changed(target)
            os.link(self._full(source), self._full(target))

        def rename(self, old: str, new: str) -> None:
            self._trip("rename")
            self._changed(old)
            self._changed(new)
            self.listed.pop(old, None)
            os.rename(self._full(old), self._full(new))

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
            self._trip("utimens")
            # mfusepy hands UTIME_NOW (``touch``) on as a tiny number of ns, not as "now":
            # anything before 2001 is taken as now (nothing here sets such times on purpose)
            if times is None or min(times) < 10**18:
                os.utime(self._full(path))  # now (``ns=None`` is a TypeError, not "now")
            else:
                os.utime(self._full(path), ns=times)

        def truncate(self, path: str, length: int, fh: int | None = None) -> None:
            self._trip("truncate")
            if fh is None:
                os.truncate(self._full(path), length)
            else:
                os.ftruncate(fh, length)

        # -- data -----------------------------------------------------------------------

        def open(self, path: str, flags: int) -> int:
            self._trip("open")
            return os.open(self._full(path), flags)

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            self._trip("create")
            self._changed(path)
            return os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            data = os.pread(fh, size, offset)
            self.pacer.take(len(data))
            return data

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            return os.pwrite(fh, data, offset)

        def flush(self, path: str, fh: int) -> None:
            return None

        def fsync(self, path: str, datasync: int, fh: int) -> None:
            self._trip("fsync")
            os.fsync(fh)

        def release(self, path: str, fh: int) -> None:
            os.close(fh)

    return SlowVolume()


def serve(backing: Path, mountpoint: Path, latency_ms: float, mb_s: float) -> None:
    import mfusepy

    mfusepy.FUSE(operations(backing, latency_ms / 1000.0, mb_s), str(mountpoint),
                 foreground=True, allow_other=True, default_permissions=True,
                 attr_timeout=ATTR_TIMEOUT_S, entry_timeout=ENTRY_TIMEOUT_S,
                 negative_timeout=NEGATIVE_TIMEOUT_S, auto_cache=True, fsname="slowfs",
                 subtype="slowfs")


def is_mounted(mountpoint: Path) -> bool:
    target = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


@contextlib.contextmanager
def mounted(backing: Path, mountpoint: Path, latency_ms: float = 1.0,
            mb_s: float = 1000.0, timeout_s: float = 30.0) -> Iterator[Path]:
    """``backing`` served at ``mountpoint`` (created) by a slowfs process of its own, until
    the block ends; then unmounted and the process reaped."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, __file__, str(backing), str(mountpoint),
         "--latency-ms", str(latency_ms), "--mb-s", str(mb_s)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not is_mounted(mountpoint):
            if proc.poll() is not None:
                raise RuntimeError(f"slowfs exited {proc.returncode}: {proc.stderr.read()}"
                                   if proc.stderr else f"slowfs exited {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"slowfs did not mount {mountpoint} in {timeout_s} s")
            time.sleep(0.05)
        yield mountpoint
    finally:
        if is_mounted(mountpoint):
            # lazy: a test that failed may still hold a file open under the mount
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False,
                           capture_output=True)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def drop_caches() -> None:
    """Forget every cached page, dentry and inode (root): the next boot is a cold one."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backing", type=Path)
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--latency-ms", type=float, default=1.0,
                        help="added to each metadata operation")
    parser.add_argument("--mb-s", type=float, default=1000.0,
                        help="read bandwidth of the whole mount, MB/s (0: unlimited)")
    args = parser.parse_args()
    serve(args.backing.resolve(), args.mountpoint, args.latency_ms, args.mb_s)


if __name__ == "__main__":
    main()
