"""The part of an environment a boot uses, packed on its own beside the full pack.

Unpacking the full pack (``envpack.py``) is bound by creating its files on the container
disk, not by the volume: 44,700 of them for a torch model stack, ~3.6 s of kernel time for a
boot that opens ~5,500 (docs/performance.md, "Second round"). So the first boot that runs
from a full copy records, once ready, which directories it opened files in: on the copy,
the files whose access time is later than their change time (tar sets both at creation;
``relatime``, Linux's default, updates the access time on a file's first read or map).
It packs those directories' files from the copy (``.bootstrap-used-<id>.tar[.zst]``)
and names the directories no file was opened in, each to be one link to the volume.
Later boots unpack that: a complete view of the environment whose unused directories
still work, through the volume, if a boot ever needs them.

It is a hint like the read-ahead's record (``prefetch.py``), written after publishing:
the pack file is written under a name of its own and renamed into place before the
record (``.bootstrap-used.json``) that names it and its size is linked into place, so a
reader sees a whole pack or none; the first record stays, and a worker that finds one
made meanwhile removes its own pack. A record that does not parse, names another build,
or whose pack has another size is no record; a pack tar cannot read sends the boot to
the full pack and is forgotten, so that a later boot from a full copy records it again.
Found nothing (a disk mounted ``noatime``): nothing is recorded, and boots unpack all.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.environment import envpack
from bootstrap.kernel import command

RECORD = ".bootstrap-used.json"
PREFIX = ".bootstrap-used-"
# Always copied whole: bin/ holds the interpreter and the scripts the copy retargets.
ALWAYS = frozenset({".", "bin"})
# A directory no boot opened a file in is linked only when it holds this many entries or
# more: a small one costs little to copy, and a boot may still look into it without
# opening anything (importlib.metadata asks every *.dist-info for entry_points.txt; a
# missing file leaves no access time), which through a link is a round trip per path
# component on the volume.
LINK_MIN_ENTRIES = 64
# A file no boot opened, in a directory one did, is linked rather than packed when it is
# this large: unpacking costs by the byte (a torch model stack's used directories hold
# ~180 MB of libraries and data no boot read), and a link costs nothing until it is read.
# Python sources stay: an import looks at a module's .py (its time validates the .pyc)
# without opening it, and through a link that look is a round trip per path component.
LINK_UNOPENED_BYTES = 128 << 10


@dataclass(frozen=True)
class Used:
    pack: envpack.Pack  # its files and links, as envpack unpacks any pack
    of: dict[str, Any]  # the full copy's identity (hydrate.identity) it was made from
    scripts_at: str  # the copy's path its bin/ scripts name, retargeted on unpacking
    dirs: int  # directories a boot opened files in

    def to_dict(self) -> dict[str, Any]:
        return {**self.pack.to_dict(), "of": self.of, "scripts_at": self.scripts_at,
                "dirs": self.dirs}


def find(env: Path, of: dict[str, Any]) -> tuple[Used | None, str | None]:
    """The used pack recorded beside ``env`` for the build ``of`` names, or None and why
    not (None, None: none recorded)."""
    try:
        data = json.loads((env / RECORD).read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{RECORD} cannot be read: {exc}"
    try:
        name = str(data["file"])
        if not name.startswith(PREFIX) or "/" in name:
            return None, f"{RECORD} names {name!r}"
        pack = envpack.Pack(env / name, int(data["size"]), int(data["files"]),
                            int(data["linked"]), int(data["unpacked"]))
        used = Used(pack, data["of"], str(data["scripts_at"]), int(data["dirs"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, f"{RECORD} is not a record of a used pack"
    if used.of != of:
        return None, f"{RECORD} was made from another build"
    damaged = envpack.damage(used.pack)
    if damaged is not None:
        return None, damaged
    return used, None


def used_dirs(copy: Path, made_at: float, linked: set[str]) -> set[str]:
    """Directories of ``copy`` (relative) holding a file opened since the unpack: access
    time later than change time. Files changed after ``made_at`` (a .pyc the worker wrote)
    and what the copy links to the volume are not the copy's own and say nothing."""
    found: set[str] = set()
    for root, dirs, files in os.walk(copy):
        rel = os.path.relpath(root, copy)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in linked]
        for name in dirs:
            # a directory a boot listed (an import looks a package's directory over): its
            # own access time, read before this walk lists it
            with contextlib.suppress(OSError):
                if _opened(os.lstat(os.path.join(root, name)), made_at):
                    found.add(os.path.normpath(os.path.join(rel, name)))
        for name in files:
            with contextlib.suppress(OSError):
                if _opened(os.lstat(os.path.join(root, name)), made_at):
                    found.add(rel)
                    break
    return found


def _opened(st: os.stat_result, made_at: float) -> bool:
    """Read (or listed) since the unpack: tar set the access time with the change time,
    and ``relatime`` moves it on a first read. Changed since ``made_at``: not unpacked."""
    return st.st_atime_ns > st.st_ctime_ns and st.st_ctime <= made_at


def _with_parents(dirs: set[str]) -> set[str]:
    out = set(ALWAYS)
    for rel in dirs:
        parts = Path(rel).parts if rel != "." else ()
        for i in range(len(parts) + 1):
            out.add(os.path.join(*parts[:i]) if i else ".")
    return out


def _members(copy: Path, keep: set[str], linked: set[str],
             made_at: float) -> tuple[list[str], list[str], int]:
    """What the used pack holds (the kept directories and their own files) and what it
    links (the other directories under kept ones, the large files in kept ones, and their
    files of ``LINK_UNOPENED_BYTES`` or more that no boot opened)."""
    packed: list[str] = []
    links: list[str] = []
    size = 0
    entries = _entries(copy, linked)
    for root, dirs, files in os.walk(copy):
        rel = os.path.normpath(os.path.relpath(root, copy))
        descend = []
        for name in sorted(dirs):
            child = os.path.normpath(os.path.join(rel, name))
            if child in linked:
                links.append(child)
            elif os.path.islink(os.path.join(root, name)):
                packed.append(child)  # a link the environment itself holds (lib64 -> lib)
            elif child in keep or entries.get(child, 0) < LINK_MIN_ENTRIES:
                packed.append(child)
                descend.append(name)
            else:
                links.append(child)
        dirs[:] = descend
        for name in sorted(files):
            child = os.path.normpath(os.path.join(rel, name))
            if rel == "." and name.startswith(".bootstrap-"):
                continue  # the copy's own records, and the marker it copies itself
            if child in linked:
                links.append(child)
                continue
            st = os.lstat(os.path.join(root, name))
            if st.st_ctime > made_at:
                continue  # written by the worker, not unpacked (a .pyc compiled since)
            if (st.st_size >= LINK_UNOPENED_BYTES and not _opened(st, made_at)
                    and not name.endswith(".py") and not stat.S_ISLNK(st.st_mode)):
                links.append(child)  # never opened: left on the volume
                continue
            packed.append(child)
            size += st.st_size
    return packed, links, size


def _entries(copy: Path, linked: set[str]) -> dict[str, int]:
    """Entries (files, links, directories) under each directory of ``copy``, relative."""
    counts: dict[str, int] = {}
    for root, dirs, files in os.walk(copy, topdown=False):
        rel = os.path.normpath(os.path.relpath(root, copy))
        below = 0
        for name in dirs:
            child = os.path.normpath(os.path.join(rel, name))
            below += 1 + (0 if child in linked else counts.get(child, 0))
        counts[rel] = below + len(files)
    return counts


def write(env: Path, copy: Path, of: dict[str, Any], made_at: float,
          timeout_s: float = 600) -> Used | None:
    """Record what a boot used of the full copy ``copy`` of ``env``: the used pack and its
    record, beside ``env``. None when no file was found opened (atime not kept)."""
    found = envpack.tar()
    if found is None:
        raise envpack.PackFailed("no tar program on PATH")
    linked = set((copy / envpack.LINKED).read_text().splitlines())
    opened = used_dirs(copy, made_at, linked)
    if not opened - ALWAYS:
        return None
    packed, links, size = _members(copy, _with_parents(opened), linked, made_at)
    compress = envpack.zstd() is not None
    # a name of its own: a pack, once renamed into place, is never written again
    name = f"{PREFIX}{uuid.uuid4().hex[:12]}.tar" + (".zst" if compress else "")
    listing = copy / f"{PREFIX}list"
    target = env / name
    staging = env / f"{name}.tmp"
    try:
        # the links the used copy makes, inside the pack under the name envpack reads
        (copy / f"{PREFIX}linked").write_text("".join(f"{rel}\n" for rel in links))
        listing.write_bytes(b"".join(f"./{rel}".encode() + b"\0" for rel in packed))
        command.run([found, "--create", *envpack.compression(compress),
                     f"--directory={copy}", "--no-recursion", "--null",
                     f"--blocking-factor={envpack.BLOCKING}", f"--file={staging}",
                     f"--transform=s,^\\./{PREFIX}linked$,./{envpack.LINKED},",
                     f"--files-from={listing}", f"./{PREFIX}linked"], timeout_s=timeout_s)
        with open(staging, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staging, target)
    except (command.CommandFailed, OSError) as exc:
        with contextlib.suppress(OSError):
            staging.unlink()
        raise envpack.PackFailed(envpack.first_line(exc)) from exc
    finally:
        for leftover in (listing, copy / f"{PREFIX}linked"):
            with contextlib.suppress(OSError):
                leftover.unlink()
    pack = envpack.Pack(target, target.stat().st_size, len(packed) + 1, len(links),
                        size + 512 * (len(packed) + 1))
    used = Used(pack, of, str(copy), len(opened))
    record = env / f"{RECORD}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with open(record, "w") as f:
            json.dump(used.to_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        try:
            # a hard link fails where the name exists: of workers recording at once, the
            # first to get here is recorded, and no pack is left that no record names
            os.link(record, env / RECORD)
        except FileExistsError:
            first = find(env, of)[0]
            if first is not None:  # another worker recorded meanwhile: the first one stays
                target.unlink(missing_ok=True)
                return first
            os.replace(record, env / RECORD)  # a record of another build, or of a lost pack
        except OSError:  # a file system without hard links: the last record wins
            os.replace(record, env / RECORD)
    except OSError:
        target.unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            record.unlink()
    return used


def forget(env: Path, used: Used) -> None:
    """Remove the record of ``used``, a pack tar could not read, so that a boot from a full
    copy records it again; a record naming another pack (a newer one) is left."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads((env / RECORD).read_text()).get("file") == used.pack.path.name:
            (env / RECORD).unlink()
            used.pack.path.unlink(missing_ok=True)
