"""The packed form of an environment: one tar file inside it, ``.bootstrap-pack.tar``.

On a network volume every metadata operation is a round trip (MooseFS: to its master), and
an import of torch makes ~100,000 of them; copying the environment file by file makes as
many. One file is one open and a sequential read at the volume's bandwidth. So the install
stage writes the environment once more as a tar, inside the staging directory before the
marker, and the hydrate stage (``coldstart/local_copy.py``) unpacks it onto the container disk.

Being inside the environment, the pack follows the environment's rules with nothing added:
written under the build lease, published by the same ``rename``, trusted only when the
marker (written after it, recording its size) says so, removed with the environment.
GNU tar does the work: it is in every Debian-based image, and Python's ``tarfile`` costs
several times its CPU time on 80,000 members.

The tar is compressed with zstd when the build finds the ``zstd`` program (the image
installs it): a torch model stack's 900 MB pack becomes 250 MB, which a volume streams in a
quarter of the time, and zstd decompresses it at ~1 GB/s on one core while tar writes
the files on another (docs/performance.md, "Cold start from the volume": the unpack went
from 4.2 to ~2 s at 1 ms per round trip). Without zstd the pack is a plain tar; a boot
that finds a compressed pack but no zstd program runs from the volume (hydrate.W003).

Files of ``LARGE_BYTES`` or more, and directories named in ``LINKED_DIRS``, are left out and
listed in ``LINKED`` instead: the copy links them back to the volume. The large files are
few (a torch model stack: 89 of 69,500 files) but hold most of the bytes (7.3 of 8.5 GB: CUDA
libraries, libtorch), and a boot maps them and touches a fraction of their pages; copying
them would cost more than the few round trips their lookups do. What remains is ~1.2 GB
in one file. A large Python extension module is packed all the same (extmodule.py says
why: each module name costs a boot dozens of round trips when linked).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.coldstart import extmodule, records
from bootstrap.kernel import command

PACK, PACK_ZSTD, LINKED = records.PACK, records.PACK_ZSTD, records.LINKED
# zstd's default level: at higher levels the build pays seconds per 100 MB saved, while
# decompression costs the same.
ZSTD = "zstd"
# 1 MiB records: the volume sees large sequential reads, not tar's default 10 KiB ones.
BLOCKING = "2048"
# The pipe from zstd to tar when unpacking: Linux's default is 64 KB, and 1 MB is what an
# unprivileged process may ask for (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# How long zstd may take to end by itself once tar has failed (the pipe closed): it is
# decoding what it had read, and says why the stream is damaged when it is.
ZSTD_GRACE_S = 5.0
# The marker's entry for the pack.
RECORD = records.PACK_ENTRY
# Files this large stay on the volume, linked from the copy (see the module docstring).
LARGE_BYTES = 4 << 20
# Directories a running program does not read (C headers, test suites): left on the volume
# whole, one link each. A torch model stack has 18,600 files in them, a quarter of the pack's
# members for 3 % of its bytes; each costs a file creation on every copy.
LINKED_DIRS = frozenset({"include", "tests", "test"})


class PackFailed(Exception):
    """The pack could not be written or read; the message says why, in one line."""


@dataclass(frozen=True)
class Pack:
    path: Path
    size: int  # bytes of the pack file, as the marker recorded them
    files: int  # members: what a file-by-file copy would cost in round trips
    linked: int = 0  # files and directories left on the volume (LINKED)
    unpacked: int = 0  # bytes of the members once unpacked (0: an older record; use size)

    @property
    def compressed(self) -> bool:
        return self.path.name.endswith(".zst")

    @property
    def disk_bytes(self) -> int:
        """What unpacking writes to the container disk."""
        return max(self.size, self.unpacked)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path.name, "size": self.size, "files": self.files,
                "linked": self.linked, "unpacked": self.unpacked}


def tar() -> str | None:
    return shutil.which("tar")


def zstd() -> str | None:
    return shutil.which(ZSTD)


def compression(compressed: bool) -> list[str]:
    """tar's option for the pack's format: zstd runs as tar's filter, in its own process,
    so the two overlap."""
    return [f"--use-compress-program={ZSTD}"] if compressed else []


def _members(env: Path) -> tuple[list[str], list[str], int]:
    """What goes into the pack (directories, links, files under LARGE_BYTES; parents before
    children) and what is left out to be linked (large files, LINKED_DIRS), as paths
    relative to ``env``."""
    packed: list[str] = []
    linked: list[str] = []
    size = 0
    for root, dirs, files in os.walk(env):
        rel = os.path.relpath(root, env)
        for name in sorted(dirs):
            is_link = os.path.islink(os.path.join(root, name))
            (linked if name in LINKED_DIRS and not is_link else packed).append(
                os.path.normpath(os.path.join(rel, name)))
        dirs[:] = sorted(name for name in dirs if name not in LINKED_DIRS)
        for name in sorted(files):
            path = os.path.join(rel, name)
            if rel == "." and name.startswith((PACK, LINKED)):
                continue
            full = os.path.join(root, name)
            st = os.lstat(full)
            large = (not os.path.islink(full) and st.st_size >= LARGE_BYTES
                     and not extmodule.is_python_module(full))
            (linked if large else packed).append(os.path.normpath(path))
            if not large:
                size += st.st_size
    return packed, linked, size


def write(env: Path, timeout_s: float, compress: bool | None = None) -> Pack:
    """Pack ``env`` (a staging directory) into ``env/PACK`` (``PACK_ZSTD`` when compressed:
    by default, when the zstd program is on PATH); the caller records the result in the
    marker. A failure removes what was written and raises PackFailed."""
    found = tar()
    if found is None:
        raise PackFailed("no tar program on PATH")
    if compress is None:
        compress = zstd() is not None
    name = PACK_ZSTD if compress else PACK
    staging = env / f"{PACK}.tmp"
    listing = env / f"{PACK}.list"
    try:
        packed, linked, size = _members(env)
        (env / LINKED).write_text("".join(f"{rel}\n" for rel in linked))
        listing.write_bytes(b"".join(f"./{rel}".encode() + b"\0" for rel in [*packed, LINKED]))
        # --directory first: tar applies it to the names that follow it
        command.run([found, "--create", *compression(compress), f"--directory={env}",
                     "--no-recursion", "--null", f"--blocking-factor={BLOCKING}",
                     f"--file={staging}", f"--files-from={listing}"], timeout_s=timeout_s)
        with open(staging, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staging, env / name)
    except (command.CommandFailed, OSError) as exc:
        with contextlib.suppress(OSError):
            staging.unlink()
        raise PackFailed(first_line(exc)) from exc
    finally:
        with contextlib.suppress(OSError):
            listing.unlink()
    # the tar's own bytes: a 512-byte header per member (long names need more; the spare
    # room the hydrate stage asks for covers those)
    unpacked = size + 512 * (len(packed) + 1)
    return Pack(env / name, (env / name).stat().st_size, len(packed) + 1, len(linked),
                unpacked)


def find(env: Path, marker: dict[str, Any]) -> Pack | None:
    """The pack the marker records, or None when it records none (an environment built
    before packs, or with hydrate = never)."""
    record = marker.get(RECORD)
    if not isinstance(record, dict):
        return None
    # only the two names this module writes: the marker names no other path
    name = PACK_ZSTD if record.get("file") == PACK_ZSTD else PACK
    return Pack(env / name, int(record.get("size", -1)), int(record.get("files", 0)),
                int(record.get("linked", 0)), int(record.get("unpacked", 0)))


def damage(pack: Pack) -> str | None:
    """Why ``pack`` cannot be trusted before reading it, or None."""
    try:
        size = pack.path.stat().st_size
    except OSError as exc:
        return f"{pack.path.name}: {exc.strerror or exc}"
    if size != pack.size:
        return f"{pack.path.name} has {size} bytes, the marker recorded {pack.size}"
    if pack.compressed and zstd() is None:
        return f"{pack.path.name} is compressed with zstd and no zstd program is on PATH"
    return None


def unpack(pack: Pack, env: Path, into: Path, timeout_s: float) -> None:
    """Extract ``pack`` into the existing directory ``into`` and link the large files it
    left out back to ``env`` on the volume. Raises PackFailed (tar names a truncated or
    corrupt archive; a list that names what is not there) or OSError for a full disk."""
    extract(pack, into, timeout_s)
    try:
        linked = (into / LINKED).read_text().splitlines()
    except OSError as exc:
        raise PackFailed(f"{LINKED} is missing from the pack") from exc
    if len(linked) != pack.linked:
        raise PackFailed(f"{LINKED} lists {len(linked)} files, the marker {pack.linked}")
    for rel in linked:
        target = into / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not target.parent.is_dir():
            raise PackFailed(f"{LINKED} names {rel}, outside the copy's directories")
        os.symlink(env / rel, target)


def extract(pack: Pack, into: Path, timeout_s: float) -> None:
    """Extract ``pack``'s members into the existing directory ``into``, nothing more.
    Raises PackFailed (a truncated or corrupt archive) or OSError for a full disk."""
    found = tar()
    if found is None:
        raise PackFailed("no tar program on PATH")
    argv = [found, "--extract", f"--blocking-factor={BLOCKING}", f"--directory={into}"]
    try:
        if pack.compressed:
            _extract_through_pipe(pack, argv, timeout_s)
        else:
            command.run([*argv, f"--file={pack.path}"], timeout_s=timeout_s)
    except command.CommandFailed as exc:
        text = exc.render()
        if "no space left" in text.lower() or "quota" in text.lower():
            raise OSError(errno.ENOSPC, "No space left on device", str(into)) from exc
        raise PackFailed(first_line(exc)) from exc


def _extract_through_pipe(pack: Pack, extract: list[str], timeout_s: float) -> None:
    """zstd decompresses into a pipe that tar reads: the same as tar's own
    ``--use-compress-program``, but through a 1 MB pipe rather than a 64 KB one, so the
    two processes trade 1 MB at a time. On the development machine that took ~0.4 s off a
    1 GB unpack (docs/performance.md, "Fourth round"). zstd's failure is named first: tar
    only sees its input end early. zstd is started here, not through ``command.run``,
    which waits for the one process it runs: zstd has to run beside it."""
    program = zstd()
    if program is None:
        raise PackFailed(f"{pack.path.name} is compressed with zstd and no zstd program is "
                         "on PATH")
    read, write = os.pipe()
    with contextlib.suppress(OSError):  # a smaller pipe still works, only slower
        fcntl.fcntl(write, F_SETPIPE_SZ, PIPE_BYTES)
    try:
        decompress = subprocess.Popen([program, "-q", "-d", "-c", "--", str(pack.path)],
                                      stdout=write, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        os.close(read)
        raise
    finally:
        os.close(write)
    try:
        command.run([*extract, "--file=-"], timeout_s=timeout_s, stdin=read)
    except command.CommandFailed:
        # The pipe's last reader gone, zstd ends by itself: with its own error when the
        # stream is damaged (tar may have failed first, on what zstd wrote before it could
        # tell), by SIGPIPE when tar failed for a reason of its own.
        os.close(read)
        read = -1
        problem = _stop(decompress, grace_s=ZSTD_GRACE_S)
        if decompress.returncode not in (0, -signal.SIGKILL, -signal.SIGPIPE) and problem:
            raise PackFailed(f"zstd: {problem}") from None
        raise
    except BaseException:  # a stop request: zstd goes down with tar
        _stop(decompress)
        raise
    finally:
        if read >= 0:
            os.close(read)
    try:
        _, said = decompress.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        _stop(decompress)
        raise PackFailed("zstd did not end after tar had read the whole archive") from None
    # SIGPIPE: tar had read the archive to its end and left the rest (padding) unread
    if decompress.returncode not in (0, -signal.SIGPIPE):
        raise PackFailed(f"zstd exited with {decompress.returncode}: "
                         f"{said.decode(errors='replace').strip()[:160]}")


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 0) -> str:
    """End ``proc`` if it still runs after ``grace_s``; the first line of what it wrote to
    stderr."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _, problem = proc.communicate()
    lines = problem.decode(errors="replace").strip().splitlines()
    return lines[0][:160] if lines else ""


def first_line(exc: BaseException) -> str:
    if isinstance(exc, command.CommandFailed):
        lines = [line for line in exc.result.stderr.splitlines() if line.strip()]
        if lines:
            return lines[0][:160]
        return str(exc).splitlines()[0][:160]
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    return str(exc).splitlines()[0][:160]
