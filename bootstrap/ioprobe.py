"""A short I/O probe of the volume: can this user write there, and how fast.

A network volume can be slow enough to dominate a boot (FAILURES.md 6: thousands of small
files at import, pip on the volume); one figure for small files and one for sequential
throughput say so before the install does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

# Small enough to cost tens of ms on a healthy volume at every boot that builds there, big
# enough that a volume under the warning thresholds takes visibly long.
SMALL_FILES = 20
SMALL_SIZE = 4096
# ... but no longer than this, past the first few files: on a volume where each metadata
# operation is a round trip (a file here is ~8), 20 files cost 0.35 s at 1 ms, on every
# boot; five say "slow" as surely as twenty (a rate under the warning's 200 files/s is
# over 5 ms a file).
SMALL_FILES_MIN = 5
SMALL_BUDGET_S = 0.05
SEQ_MB = 2
# Lookups of names that do not exist: on a network file system each is one round trip to
# the metadata server (MooseFS caches no negative entries by default), on a local disk a
# few microseconds. Imports make tens of thousands of them, so this is the latency that
# decides whether running an environment from the volume is slow (bootstrap/coldstart/plan.py).
LOOKUPS = 20


@dataclass(frozen=True)
class Rates:
    small_files_per_s: float
    write_mb_s: float
    read_mb_s: float
    lookup_ms: float  # the median time of one lookup of a missing name
    small_files: int = SMALL_FILES  # how many small files the rate was measured on

    def to_dict(self) -> dict[str, float]:
        return {"small_files_per_s": round(self.small_files_per_s),
                "small_files": self.small_files,
                "write_mb_s": round(self.write_mb_s, 1), "read_mb_s": round(self.read_mb_s, 1),
                "lookup_ms": round(self.lookup_ms, 3)}


def probe_name(volume: Path) -> Path:
    return volume / f".bootstrap-probe-{os.getpid()}"


def write_probe(volume: Path) -> None:
    """Create, fsync, read back and delete one file. Raises the OSError that stopped it."""
    path = probe_name(volume)
    try:
        with open(path, "xb") as f:
            f.write(b"bootstrap probe\n")
            f.flush()
            os.fsync(f.fileno())
        if path.read_bytes() != b"bootstrap probe\n":
            raise OSError(f"{path} read back different bytes")
    finally:
        path.unlink(missing_ok=True)


def lookup_ms(directory: Path) -> float:
    """The median time to look up a name that is not in ``directory``: writes nothing, so
    ``bootstrap check`` can measure it too."""
    times = []
    for i in range(LOOKUPS):
        started = time.perf_counter()
        os.path.lexists(directory / f".bootstrap-absent-{os.getpid()}-{i}")
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2] * 1000


def rates(volume: Path) -> Rates:
    """Small-file create/stat/read rate and sequential write/read MB/s, in a scratch dir
    that is removed again."""
    scratch = probe_name(volume).with_suffix(".d")
    scratch.mkdir()
    try:
        payload = os.urandom(SMALL_SIZE)
        started = time.perf_counter()
        done = 0
        while done < SMALL_FILES:
            path = scratch / f"f{done}"
            path.write_bytes(payload)
            path.stat()
            path.read_bytes()
            done += 1
            if done >= SMALL_FILES_MIN and time.perf_counter() - started > SMALL_BUDGET_S:
                break
        small = done / max(time.perf_counter() - started, 1e-6)

        big = scratch / "seq"
        block = os.urandom(1 << 20)
        started = time.perf_counter()
        with open(big, "wb") as f:
            for _ in range(SEQ_MB):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        write = SEQ_MB / max(time.perf_counter() - started, 1e-6)
        with open(big, "rb") as f:
            # drop the page cache's copy so the read measures the volume, where the
            # filesystem allows it
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            started = time.perf_counter()
            while f.read(1 << 20):
                pass
        read = SEQ_MB / max(time.perf_counter() - started, 1e-6)
        return Rates(small, write, read, lookup_ms(scratch), small_files=done)
    finally:
        for path in scratch.iterdir():
            path.unlink(missing_ok=True)
        scratch.rmdir()
