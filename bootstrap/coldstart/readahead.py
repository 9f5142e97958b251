"""The pages of the environment's large files that a boot reads, read ahead of the worker.

A local copy (``bootstrap.coldstart.local_copy``) leaves the large files (libtorch, the
CUDA libraries) on the volume, linked: copying them would cost gigabytes, and a boot maps
them and touches a fraction of their pages (a torch model stack on a CPU: ~950 MB of 7.3 GB, in
35 of 300 files). The worker then faults those pages in one at a time through the volume,
128 KB per round trip, while it imports: 3-4 s of a boot at 1 ms per round trip
(docs/performance.md, "Cold start from the volume").

So the first boot that runs from a copy records, once it is ready, which pages of those
files are in the page cache (``mincore``: what the boot read, the container having
started with none), as a list of extents in ``<env>/.bootstrap-readahead.json`` on the
volume. Later boots read those extents in a few background threads of the supervisor
while the copy is unpacked and the worker starts: large sequential reads, which a network
volume streams, instead of the worker's page faults. The page cache is the file's own,
shared by every process that reads or maps it, so the worker finds them there.

It is a hint and nothing more: the record is written atomically, a damaged or stale one
reads files that are there or is skipped, and a read that fails stops that thread only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import mmap
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.coldstart import records

RECORD = records.READAHEAD
# Extents closer than this are read as one: fewer, larger reads (a volume's round trip
# costs more than reading the gap).
MERGE_GAP = 1 << 20
# One read: large enough to stream, small enough to spread over threads.
CHUNK = 4 << 20
# Readers at once: a FUSE client serves several requests at a time; more only contend.
THREADS = 4
PAGE = mmap.PAGESIZE

Extent = tuple[int, int]  # (offset, length) in bytes


@dataclass(frozen=True)
class Touched:
    files: dict[str, list[Extent]]  # path relative to the environment -> extents

    @property
    def bytes(self) -> int:
        return sum(length for extents in self.files.values() for _, length in extents)

    def to_dict(self) -> dict[str, Any]:
        return {"files": {rel: [list(e) for e in extents]
                          for rel, extents in self.files.items()}}


def load(env: Path) -> Touched | None:
    """The record an earlier boot left beside ``env``'s files, or None (none, or damaged:
    it is only a hint)."""
    try:
        data = json.loads((env / RECORD).read_text())
        files = {str(rel): [(int(off), int(length)) for off, length in extents]
                 for rel, extents in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Touched(files)


def save(env: Path, touched: Touched) -> None:
    staging = env / f"{RECORD}.tmp-{os.getpid()}"
    try:
        with open(staging, "w") as f:
            json.dump(touched.to_dict(), f)
        os.replace(staging, env / RECORD)
    finally:
        with contextlib.suppress(OSError):
            staging.unlink()


# -- recording ------------------------------------------------------------------------------

_libc: Any = None


def _mincore() -> Any:
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        _libc = libc
    return _libc


def resident(path: Path) -> list[Extent]:
    """The extents of ``path`` in the page cache. Mapping a file reads none of it."""
    libc = _mincore()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return []
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed", str(path))
        try:
            pages = (size + PAGE - 1) // PAGE
            vec = (ctypes.c_ubyte * pages)()
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed", str(path))
            return _extents((i for i in range(pages) if vec[i] & 1), size)
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def _extents(pages: Iterable[int], size: int) -> list[Extent]:
    extents: list[Extent] = []
    for page in pages:
        start = page * PAGE
        if extents and start - (extents[-1][0] + extents[-1][1]) <= MERGE_GAP:
            off, _ = extents[-1]
            extents[-1] = (off, min(start + PAGE, size) - off)
        else:
            extents.append((start, min(PAGE, size - start)))
    return extents


def record(env: Path, linked: Iterable[str]) -> Touched:
    """What is in the page cache of ``env``'s ``linked`` files (relative paths), now."""
    files: dict[str, list[Extent]] = {}
    for rel in linked:
        path = env / rel
        if not path.is_file() or path.is_symlink():
            continue  # a linked directory (tests/, include/): nothing a boot maps
        with contextlib.suppress(OSError):
            extents = resident(path)
            if extents:
                files[rel] = extents
    return Touched(files)


# -- reading ahead --------------------------------------------------------------------------


class Reader:
    """Reads a record's extents from ``env`` in background threads. ``done`` and
    ``read_bytes`` say how far it got; it never raises."""

    def __init__(self, env: Path, touched: Touched, threads: int = THREADS) -> None:
        self.env = env
        self.read_bytes = 0
        self.failed: str | None = None
        self._lock = threading.Lock()
        chunks: list[tuple[str, int, int]] = []
        for rel, extents in touched.files.items():
            for off, length in extents:
                for at in range(off, off + length, CHUNK):
                    chunks.append((rel, at, min(CHUNK, off + length - at)))
        self._work = chunks[::-1]  # popped from the end: record order
        self._threads = [threading.Thread(target=self._run, name=f"prefetch-{i}",
                                          daemon=True) for i in range(threads)]

    def start(self) -> Reader:
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout_s: float | None = None) -> bool:
        for thread in self._threads:
            thread.join(timeout_s)
        return self.done

    @property
    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self._threads)

    def _run(self) -> None:
        buffer = bytearray(CHUNK)
        fds: dict[str, int] = {}
        try:
            while True:
                with self._lock:
                    if not self._work:
                        return
                    rel, off, length = self._work.pop()
                if rel not in fds:
                    fds[rel] = os.open(self.env / rel, os.O_RDONLY)
                got = os.preadv(fds[rel], [memoryview(buffer)[:length]], off)
                with self._lock:
                    self.read_bytes += got
        except OSError as exc:
            self.failed = f"{exc.strerror or exc}"
        finally:
            for fd in fds.values():
                os.close(fd)
