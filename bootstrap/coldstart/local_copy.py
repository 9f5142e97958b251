"""The local copy of a published environment, on the container disk.

A worker running its environment from a network volume pays one round trip per metadata
operation, ~100,000 of them for torch and a model library. A local copy is unpacked from the
environment's packed form (``packs.py``): one open, one sequential read. Whether
that wins is the plan's to say (``plan.py``); its layout under ``hydrate_dir`` is in
``records.py``.

Where an earlier boot recorded what it used (``used_part.py``), the copy is unpacked from
that smaller pack: the directories a boot opened files in, the others linked to the
volume; a used pack tar cannot read falls back to the full one. Either is a complete view.
Its large modules come in a pack of their own (``used_part.Later``), linked at first:
``unpack_later`` unpacks them while the worker starts, and renames each over its link.
Every moment the copy is complete, each of them a link or the whole file; a copy reused
with links left (the unpacking was killed) unpacks them again.

A copy is trusted only when its record names the same pack (key, size, build time) and its
Python runs: a copy is renamed to ``<key>`` only after tar succeeded and the record was
written, so a SIGKILL at any point leaves only a ``.tmp-`` directory, which the next copier
removes. Two workers on one disk copy one at a time: the second waits for the lock, finds
the first one's copy and uses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap import diskspace
from bootstrap.coldstart import packs, records, used_part
from bootstrap.environment import envstore

RECORD = records.COPY
# Room left on the container disk beyond the copy itself, for the worker's own writes.
SPARE_MB = 512
# A slow volume still streams at this rate at least; bounds tar's timeout.
MIN_MB_S = 5.0


def need_mb(pack: packs.Pack, later: used_part.Later | None = None) -> int:
    return ((pack.disk_bytes + (0 if later is None else later.pack.disk_bytes)) >> 20) + SPARE_MB


def made_from(local: Path) -> str | None:
    """How the copy at ``local`` was made: "full", "used", or None (no record)."""
    try:
        record = json.loads((local / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return str(record.get("form", "full")) if isinstance(record, dict) else None


def identity(marker: dict[str, Any], pack: packs.Pack) -> dict[str, Any]:
    """What a local copy must match to be used: the same build of the same key."""
    return {"key": marker.get("key"), "created": marker.get("created"), "size": pack.size}


def trusted(local: Path, want: dict[str, Any]) -> str | None:
    """None when ``local`` is a complete copy of the pack ``want`` describes and runs;
    otherwise why not."""
    try:
        record = json.loads((local / RECORD).read_text())
    except (OSError, ValueError):
        return "missing" if not local.exists() else "no record: an unfinished copy"
    if not isinstance(record, dict) or record.get("of") != want:
        return "a copy of another build"
    return envstore.health(local)


@dataclass(frozen=True)
class Copied:
    made: bool  # False: another worker's copy finished while this one waited for the lock
    removed: list[str]  # leftovers of interrupted copies, removed
    form: str | None = None  # "used" or "full": what this copy was unpacked from
    used_failed: str | None = None  # why the used pack failed, and the full one was used


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One copier per key on this disk at a time. The container disk is local, where
    ``flock`` is reliable (unlike on the volume: bootstrap.environment.lease), and the kernel drops
    the lock of a killed process, so a SIGKILL leaves no stale lock behind."""
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield


def copy(env: Path, marker: dict[str, Any], pack: packs.Pack, local: Path,
         used: used_part.Used | None = None) -> Copied:
    """Unpack ``used`` (else ``pack``) into ``local``, unless another worker on this disk
    did it while this one waited; a used pack tar cannot read falls back to ``pack``.
    Raises packs.PackFailed or OSError (a full disk: ``diskspace.is_full``); nothing
    partial is ever left at ``local``."""
    local.parent.mkdir(parents=True, exist_ok=True)
    with _locked(records.copy_lock(local)):
        if trusted(local, identity(marker, pack)) is None:
            return Copied(False, [])
        # Holding the lock, no copy of this key is in progress: any staging is a leftover.
        removed = []
        for path in local.parent.glob(records.staging_glob(local)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
        discard(local)  # not trusted: another build's copy, or damaged
        if used is not None:
            try:
                _unpack(env, marker, pack, local, used)
                return Copied(True, removed, "used")
            except packs.PackFailed as exc:  # a full disk is no reason to write more
                used_part.forget(env, used.pack.path.name)
                _unpack(env, marker, pack, local)
                return Copied(True, removed, "full", str(exc) or type(exc).__name__)
        _unpack(env, marker, pack, local)
        return Copied(True, removed, "full")


def _unpack(env: Path, marker: dict[str, Any], pack: packs.Pack, local: Path,
            used: used_part.Used | None = None) -> None:
    staging = records.staging(local, os.getpid())
    staging.mkdir()
    try:
        source = used.pack if used is not None else pack
        timeout = 120 + source.size / 1e6 / MIN_MB_S
        packs.unpack(source, env, staging, timeout_s=timeout)
        # Console scripts name the interpreter by its path on the volume (in a used pack:
        # on the copy it was made from); point them here. The worker runs `<copy>/bin/python
        # -m bootstrap.supervision.worker`, which needs only pyvenv.cfg's `home` (the base
        # interpreter), not these.
        envstore.retarget_scripts(staging / "bin", env, local)
        if used is not None and used.scripts_at != str(local):
            envstore.retarget_scripts(staging / "bin", Path(used.scripts_at), local)
        shutil.copyfile(env / envstore.MARKER, staging / envstore.MARKER)
        with open(staging / RECORD, "w") as f:
            json.dump({"of": identity(marker, pack), "from": str(env),
                       "form": "full" if used is None else "used",
                       "later": None if used is None or used.later is None
                       else used.later.to_dict()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(staging, local)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def later_of(local: Path) -> used_part.Later | None:
    """The later part the copy at ``local`` was made with (its record says), or None."""
    try:
        record = json.loads((local / RECORD).read_text())
        if record.get("later") is None:
            return None
        return used_part.Later.from_dict(record["later"], Path(record["from"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def pending(local: Path, later: used_part.Later) -> list[str]:
    """The later part's members that are still links to the volume in ``local``."""
    return [rel for rel in later.members if (local / rel).is_symlink()]


def unpack_later(local: Path, later: used_part.Later) -> list[str]:
    """Unpack ``later`` beside ``local`` and rename each member over its link there; the
    members renamed (none: another worker on this disk did it, or an earlier boot). One
    worker at a time per copy. Raises packs.PackFailed (a damaged pack, a member it
    lacks) or OSError (a full disk); the links left keep working."""
    with _locked(records.later_lock(local)):
        todo = pending(local, later)
        if not todo:
            return []
        staging = records.later_staging(local)
        shutil.rmtree(staging, ignore_errors=True)  # what a killed unpacking left
        staging.mkdir()
        try:
            packs.extract(later.pack, staging, timeout_s=120 + later.pack.size / 1e6 / MIN_MB_S)
            for rel in todo:
                if not (staging / rel).is_file() or (staging / rel).is_symlink():
                    raise packs.PackFailed(f"{later.pack.path.name} lacks {rel}")
            for rel in todo:
                os.replace(staging / rel, local / rel)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return todo


def discard(local: Path) -> None:
    """Remove a copy that is not trusted: renamed aside first, so no reader sees half."""
    if not local.exists():
        return
    aside = records.staging(local, f"{os.getpid()}-aside")
    shutil.rmtree(aside, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rename(local, aside)
    shutil.rmtree(aside, ignore_errors=True)


def room(hydrate_dir: Path, pack: packs.Pack,
         later: used_part.Later | None = None) -> tuple[int, int]:
    """(free MB, needed MB) on the disk that holds ``hydrate_dir``."""
    return diskspace.free_mb(hydrate_dir), need_mb(pack, later)
