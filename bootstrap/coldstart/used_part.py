"""The part of an environment a boot uses, packed on its own beside the full pack.

Unpacking the full pack (``packs.py``) is bound by creating its files on the container
disk, not by the volume: 44,700 of them for a torch model stack, ~3.6 s of kernel time for a
boot that opens ~5,500 (docs/performance.md, "Second round"). So the first boot that runs
from a full copy records, once ready, which directories it opened files in: on the copy,
the files whose access time is later than their change time (tar sets both at creation;
``relatime``, Linux's default, updates the access time on a file's first read or map).
It packs those directories' files from the copy (``.bootstrap-used-part-<id>.tar[.zst]``),
except the compiled modules (.pyc) no boot loaded, and names the directories no file was
opened in, each to be one link to the volume.
Later boots unpack that: a complete view of the environment whose unused directories
still work, through the volume, if a boot ever needs them.

It is a hint like the read-ahead's record (``readahead.py``), written after publishing:
the pack file is written under a name of its own and renamed into place before the
record (``.bootstrap-used-part.json``) that names it and its size is linked into place, so a
reader sees a whole pack or none; the first record stays, and a worker that finds one
made meanwhile removes its own pack. A record that does not parse, names another build,
or whose pack has another size is no record; a pack tar cannot read sends the boot to
the full pack and is forgotten, so that a later boot from a full copy records it again.
Found nothing (a disk mounted ``noatime``): nothing is recorded, and boots unpack all.

The large Python extension modules a boot opened (``LATER_BYTES``) go into a second pack,
``.bootstrap-used-part-<id>-later.tar[.zst]``, that a boot unpacks after its worker has
started: the copy links them to the volume first, and each is renamed over its link once
unpacked (``local_copy.unpack_later``). The record names both packs; either one damaged is no
record.
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

from bootstrap.coldstart import packs, records
from bootstrap.kernel import command

RECORD = records.USED_PART
PREFIX = records.USED_PART_PACK
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
# A compiled module (.pyc) no boot opened is left out, neither packed nor linked: its
# source is packed, and an import that needs it compiles the source and writes the .pyc,
# as Python does for any module imported the first time. In the used directories of a
# torch model stack they are 6,300 of 11,200 .pyc files, a fifth of the members, and
# creating files is what unpacking costs (docs/performance.md, "Fifth round"). A .pyc of
# LINK_UNOPENED_BYTES or more no boot opened is linked, by the rule above.

# A file a boot opened this large is a large Python extension module: the full pack links
# every other file this large, and packs these only because a module linked to the volume
# costs a boot dozens of round trips per name (extmodule.py). They are packed apart and
# unpacked while the worker starts: they are 474 of a torch model stack's 1,060 used MB
# (triton's library alone 401), and a worker needs them seconds into its stages, not at
# its start (docs/performance.md, "Fifth round").
LATER_BYTES = packs.LARGE_BYTES
LATER = records.LATER


@dataclass(frozen=True)
class Later:
    """The used part's large modules, packed apart: linked to the volume in the copy until
    ``local_copy.unpack_later`` renames each, unpacked, over its link."""

    pack: packs.Pack
    members: tuple[str, ...]  # files, relative to the environment

    def to_dict(self) -> dict[str, Any]:
        return {**self.pack.to_dict(), "members": list(self.members)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path) -> Later:
        """Raises ValueError, KeyError or TypeError for what is not a record of one."""
        name = str(data["file"])
        if not name.startswith(PREFIX) or "/" in name:
            raise ValueError(f"names {name!r}")
        members = tuple(str(rel) for rel in data["members"])
        for rel in members:
            if os.path.isabs(rel) or ".." in Path(rel).parts:
                raise ValueError(f"names {rel!r}, outside the environment")
        return cls(packs.Pack(directory / name, int(data["size"]), int(data["files"]), 0,
                                int(data["unpacked"])), members)


@dataclass(frozen=True)
class Used:
    pack: packs.Pack  # its files and links, as packs.py unpacks any pack
    of: dict[str, Any]  # the full copy's identity (local_copy.identity) it was made from
    scripts_at: str  # the copy's path its bin/ scripts name, retargeted on unpacking
    dirs: int  # directories a boot opened files in
    later: Later | None = None  # its large modules, unpacked after the worker starts

    def to_dict(self) -> dict[str, Any]:
        return {**self.pack.to_dict(), "of": self.of, "scripts_at": self.scripts_at,
                "dirs": self.dirs, "later": None if self.later is None else self.later.to_dict()}


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
        pack = packs.Pack(env / name, int(data["size"]), int(data["files"]),
                            int(data["linked"]), int(data["unpacked"]))
        later = (None if data.get("later") is None
                 else Later.from_dict(data["later"], env))
        used = Used(pack, data["of"], str(data["scripts_at"]), int(data["dirs"]), later)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, f"{RECORD} is not a record of a used pack"
    if used.of != of:
        return None, f"{RECORD} was made from another build"
    for part in (used.pack, *([] if used.later is None else [used.later.pack])):
        damaged = packs.damage(part)
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


@dataclass
class _Members:
    packed: list[str]  # into the used pack
    links: list[str]  # linked to the volume by the copy (the later ones included)
    size: int  # bytes of the packed files
    later: list[str]  # into the later pack
    later_size: int


def _members(copy: Path, keep: set[str], linked: set[str], made_at: float) -> _Members:
    """What the used pack holds (the kept directories and their own files), what it links
    (the other directories under kept ones, the large files in kept ones, and their files
    of ``LINK_UNOPENED_BYTES`` or more that no boot opened), and what waits for the later
    pack (opened files of ``LATER_BYTES`` or more, linked until it is unpacked). The .pyc
    files no boot opened are in neither."""
    packed: list[str] = []
    links: list[str] = []
    later: list[str] = []
    size = later_size = 0
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
            if name.endswith(".pyc") and not _opened(st, made_at):
                continue  # never loaded: should a boot import its module, Python compiles it
            if (st.st_size >= LATER_BYTES and stat.S_ISREG(st.st_mode)
                    and not name.endswith(".py")):
                links.append(child)  # a large module: linked until the later pack is unpacked
                later.append(child)
                later_size += st.st_size
                continue
            packed.append(child)
            size += st.st_size
    return _Members(packed, links, size, later, later_size)


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
    """Record what a boot used of the full copy ``copy`` of ``env``: the used pack (and its
    later part) and their record, beside ``env``. None when no file was found opened
    (atime not kept)."""
    found = packs.tar()
    if found is None:
        raise packs.PackFailed("no tar program on PATH")
    linked = set((copy / packs.LINKED).read_text().splitlines())
    opened = used_dirs(copy, made_at, linked)
    if not opened - ALWAYS:
        return None
    members = _members(copy, _with_parents(opened), linked, made_at)
    compress = packs.zstd() is not None
    # names of their own: a pack, once renamed into place, is never written again
    name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
    suffix = ".tar" + (".zst" if compress else "")
    target = env / f"{name}{suffix}"
    later_target = env / f"{name}{LATER}{suffix}"
    try:
        # the links the used copy makes, inside the pack under the name packs.py reads
        (copy / records.USED_PART_LINKED).write_text("".join(f"{rel}\n" for rel in members.links))
        _tar(found, copy, [*members.packed, records.USED_PART_LINKED], target, compress, timeout_s,
             [f"--transform=s,^\\./{records.USED_PART_LINKED}$,./{packs.LINKED},"])
        if members.later:
            _tar(found, copy, members.later, later_target, compress, timeout_s)
    except (command.CommandFailed, OSError) as exc:
        for written in (target, later_target):
            written.unlink(missing_ok=True)
        raise packs.PackFailed(packs.first_line(exc)) from exc
    finally:
        with contextlib.suppress(OSError):
            (copy / records.USED_PART_LINKED).unlink()
    pack = packs.Pack(target, target.stat().st_size, len(members.packed) + 1,
                        len(members.links), members.size + 512 * (len(members.packed) + 1))
    later = None
    if members.later:
        later = Later(packs.Pack(later_target, later_target.stat().st_size,
                                   len(members.later), 0,
                                   members.later_size + 512 * len(members.later)),
                      tuple(members.later))
    used = Used(pack, of, str(copy), len(opened), later)
    return _record(env, of, used)


def _tar(found: str, copy: Path, members: list[str], target: Path, compress: bool,
         timeout_s: float, options: tuple[str, ...] | list[str] = ()) -> None:
    """Pack ``members`` (relative to ``copy``, in this order) into ``target``: written under
    a name of its own, synced, then renamed. Raises CommandFailed or OSError."""
    listing = target.with_name(f"{target.name}.list")
    staging = target.with_name(f"{target.name}.tmp")
    try:
        listing.write_bytes(b"".join(f"./{rel}".encode() + b"\0" for rel in members))
        command.run([found, "--create", *packs.compression(compress),
                     f"--directory={copy}", "--no-recursion", "--null",
                     f"--blocking-factor={packs.BLOCKING}", f"--file={staging}", *options,
                     f"--files-from={listing}"], timeout_s=timeout_s)
        with open(staging, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staging, target)
    finally:
        for leftover in (listing, staging):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _parts(used: Used) -> list[Path]:
    return [used.pack.path, *([] if used.later is None else [used.later.pack.path])]


def _record(env: Path, of: dict[str, Any], used: Used) -> Used:
    """Link the record of ``used`` (its packs in place) into place beside ``env``: the
    first record stays, and this one's packs go when another worker's came first."""
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
                for part in _parts(used):
                    part.unlink(missing_ok=True)
                return first
            os.replace(record, env / RECORD)  # a record of another build, or of a lost pack
        except OSError:  # a file system without hard links: the last record wins
            os.replace(record, env / RECORD)
    except OSError:
        for part in _parts(used):
            part.unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            record.unlink()
    return used


def forget(env: Path, name: str) -> None:
    """Remove the record of the used pack ``name`` (the file name of a pack, or of its later
    part, that tar could not read) and its packs, so that a boot from a full copy records
    it again; a record naming other packs (newer ones) is left."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        data = json.loads((env / RECORD).read_text())
        parts = [str(data["file"])]
        if data.get("later") is not None:
            parts.append(str(data["later"]["file"]))
        if name not in parts or any("/" in part for part in parts):
            return
        (env / RECORD).unlink()
        for part in parts:
            (env / part).unlink(missing_ok=True)
