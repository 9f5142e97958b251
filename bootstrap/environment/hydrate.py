"""The local copy of a published environment, on the container disk.

A worker running its environment from a network volume pays one round trip per metadata
operation, ~100,000 of them for torch and a model library. A local copy is unpacked from the
environment's packed form (``envpack.py``): one open, one sequential read. Whether
that wins is decided per boot (``decide``) from what the boot measured: the volume's
lookup latency, the pack's size and member count, the room on the container disk.

Layout, under ``hydrate_dir`` (the container disk):

    <key>/                  a complete copy; .bootstrap-hydrated.json says of which pack
    <key>.tmp-<pid>/        an unpack in progress (or what a killed one left)
    <key>.lock              held (flock) by the one worker copying this key
    <key>.later.tmp/        the later part being unpacked (below)
    <key>.later.lock        held by the one worker unpacking the later part

Where an earlier boot recorded what it used (``usedpack.py``), the copy is unpacked from
that smaller pack: the directories a boot opened files in, the others linked to the
volume; a used pack tar cannot read falls back to the full one. Either is a complete view.
Its large modules come in a pack of their own (``usedpack.Later``), linked at first:
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
from bootstrap.environment import envpack, envstore, usedpack

RECORD = ".bootstrap-hydrated.json"
# Lookups slower than this make running from the volume lose to one sequential read
# (docs/performance.md, "Cold start from the volume": at the lowest latency measured, a
# 0.49 ms lookup, the copy was ready 12x sooner): a local disk answers in a few
# microseconds, any FUSE or network file system in tens to hundreds.
MIN_LOOKUP_MS = 0.05
# Room left on the container disk beyond the copy itself, for the worker's own writes.
SPARE_MB = 512
# Round trips a boot makes per file of the environment it runs from (measured on a torch model
# stack: ~96,000 stats and 14,000 opens over 78,000 files), for the estimate only.
TRIPS_PER_FILE = 1.4
# A slow volume still streams at this rate at least; bounds tar's timeout.
MIN_MB_S = 5.0


@dataclass(frozen=True)
class Plan:
    hydrate: bool
    why: str  # one line: why the copy is made, or why the boot runs from the volume
    pack: envpack.Pack | None
    local: Path
    facts: dict[str, Any]
    used: usedpack.Used | None = None  # the part a recorded boot used, packed: unpacked instead
    used_refused: str | None = None  # why a recorded used pack cannot be used


def local_path(hydrate_dir: Path, key: str) -> Path:
    return hydrate_dir / key


def estimate_s(pack: envpack.Pack, lookup_ms: float,
               read_mb_s: float | None) -> dict[str, float]:
    """What the two ways would cost in I/O alone: the boot's round trips from the volume,
    and one sequential read of the pack."""
    volume = pack.files * TRIPS_PER_FILE * lookup_ms / 1000
    estimate = {"from_volume_s": round(volume, 1)}
    if read_mb_s:  # only where the volume stage's probe measured it
        estimate["copy_s"] = round(pack.size / 1e6 / max(read_mb_s, MIN_MB_S), 1)
    return estimate


def decide(choice: str, env: Path, marker: dict[str, Any], hydrate_dir: Path,
           lookup_ms: float | None, read_mb_s: float | None = None,
           used_only: bool = True) -> Plan:
    """Whether to run from a local copy: ``choice`` is the setting (auto, always, never);
    from the used pack where one is recorded, unless ``used_only`` (hydrate_used) is off."""
    key = str(marker.get("key", env.name))
    local = local_path(hydrate_dir, key)
    facts: dict[str, Any] = {"lookup_ms": None if lookup_ms is None else round(lookup_ms, 3),
                             "local": str(local)}
    if choice == "never":
        return Plan(False, "BOOTSTRAP_HYDRATE=never", None, local, facts)
    pack = envpack.find(env, marker)
    if pack is None:
        return Plan(False, "no packed form", None, local, facts)
    facts.update(pack_mb=pack.size >> 20, files=pack.files, compressed=pack.compressed)
    if lookup_ms is not None:
        facts.update(estimate_s(pack, lookup_ms, read_mb_s))
    if choice == "auto" and (lookup_ms is None or lookup_ms < MIN_LOOKUP_MS):
        measured = "not measured" if lookup_ms is None else f"{lookup_ms:.3f} ms"
        return Plan(False, f"the volume is fast (lookup {measured} < {MIN_LOOKUP_MS} ms)",
                    pack, local, facts)
    measured = "not measured" if lookup_ms is None else f"{lookup_ms:.2f} ms"
    used, refused = (usedpack.find(env, identity(marker, pack)) if used_only
                     else (None, None))
    if used is not None:
        facts.update(form="used", used_files=used.pack.files, used_mb=used.pack.size >> 20,
                     used_linked=used.pack.linked)
        later = ""
        if used.later is not None:
            facts.update(later_files=len(used.later.members),
                         later_mb=used.later.pack.unpacked >> 20)
            count = len(used.later.members)
            later = (f"; its {count} large module{'s' if count != 1 else ''} "
                     f"({used.later.pack.unpacked >> 20} MB) unpacked while the worker starts")
        return Plan(True, f"lookup {measured}; the {used.pack.files} of {pack.files} files "
                          f"a recorded boot used, in one read of {used.pack.size >> 20} MB; "
                          f"{used.pack.linked} directories and large files linked{later}",
                    pack, local, facts, used)
    facts["form"] = "full"
    if refused is not None:
        facts["used_refused"] = refused
    form = ", zstd" if pack.compressed else ""
    return Plan(True, f"lookup {measured}; {pack.files} files in one read of "
                      f"{pack.size >> 20} MB{form}", pack, local, facts, None, refused)


def need_mb(pack: envpack.Pack, later: usedpack.Later | None = None) -> int:
    return ((pack.disk_bytes + (0 if later is None else later.pack.disk_bytes)) >> 20) + SPARE_MB


def made_from(local: Path) -> str | None:
    """How the copy at ``local`` was made: "full", "used", or None (no record)."""
    try:
        record = json.loads((local / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return str(record.get("form", "full")) if isinstance(record, dict) else None


def identity(marker: dict[str, Any], pack: envpack.Pack) -> dict[str, Any]:
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


def copy(env: Path, marker: dict[str, Any], pack: envpack.Pack, local: Path,
         used: usedpack.Used | None = None) -> Copied:
    """Unpack ``used`` (else ``pack``) into ``local``, unless another worker on this disk
    did it while this one waited; a used pack tar cannot read falls back to ``pack``.
    Raises envpack.PackFailed or OSError (a full disk: ``diskspace.is_full``); nothing
    partial is ever left at ``local``."""
    local.parent.mkdir(parents=True, exist_ok=True)
    with _locked(local.with_name(f"{local.name}.lock")):
        if trusted(local, identity(marker, pack)) is None:
            return Copied(False, [])
        # Holding the lock, no copy of this key is in progress: any staging is a leftover.
        removed = []
        for path in local.parent.glob(f"{local.name}.tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
        discard(local)  # not trusted: another build's copy, or damaged
        if used is not None:
            try:
                _unpack(env, marker, pack, local, used)
                return Copied(True, removed, "used")
            except envpack.PackFailed as exc:  # a full disk is no reason to write more
                usedpack.forget(env, used.pack.path.name)
                _unpack(env, marker, pack, local)
                return Copied(True, removed, "full", str(exc) or type(exc).__name__)
        _unpack(env, marker, pack, local)
        return Copied(True, removed, "full")


def _unpack(env: Path, marker: dict[str, Any], pack: envpack.Pack, local: Path,
            used: usedpack.Used | None = None) -> None:
    staging = local.with_name(f"{local.name}.tmp-{os.getpid()}")
    staging.mkdir()
    try:
        source = used.pack if used is not None else pack
        timeout = 120 + source.size / 1e6 / MIN_MB_S
        envpack.unpack(source, env, staging, timeout_s=timeout)
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


def later_of(local: Path) -> usedpack.Later | None:
    """The later part the copy at ``local`` was made with (its record says), or None."""
    try:
        record = json.loads((local / RECORD).read_text())
        if record.get("later") is None:
            return None
        return usedpack.Later.from_dict(record["later"], Path(record["from"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def pending(local: Path, later: usedpack.Later) -> list[str]:
    """The later part's members that are still links to the volume in ``local``."""
    return [rel for rel in later.members if (local / rel).is_symlink()]


def unpack_later(local: Path, later: usedpack.Later) -> list[str]:
    """Unpack ``later`` beside ``local`` and rename each member over its link there; the
    members renamed (none: another worker on this disk did it, or an earlier boot). One
    worker at a time per copy. Raises envpack.PackFailed (a damaged pack, a member it
    lacks) or OSError (a full disk); the links left keep working."""
    with _locked(local.with_name(f"{local.name}.later.lock")):
        todo = pending(local, later)
        if not todo:
            return []
        staging = local.with_name(f"{local.name}.later.tmp")
        shutil.rmtree(staging, ignore_errors=True)  # what a killed unpacking left
        staging.mkdir()
        try:
            envpack.extract(later.pack, staging, timeout_s=120 + later.pack.size / 1e6 / MIN_MB_S)
            for rel in todo:
                if not (staging / rel).is_file() or (staging / rel).is_symlink():
                    raise envpack.PackFailed(f"{later.pack.path.name} lacks {rel}")
            for rel in todo:
                os.replace(staging / rel, local / rel)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return todo


def discard(local: Path) -> None:
    """Remove a copy that is not trusted: renamed aside first, so no reader sees half."""
    if not local.exists():
        return
    aside = local.with_name(f"{local.name}.tmp-{os.getpid()}-aside")
    shutil.rmtree(aside, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rename(local, aside)
    shutil.rmtree(aside, ignore_errors=True)


def room(hydrate_dir: Path, pack: envpack.Pack,
         later: usedpack.Later | None = None) -> tuple[int, int]:
    """(free MB, needed MB) on the disk that holds ``hydrate_dir``."""
    return diskspace.free_mb(hydrate_dir), need_mb(pack, later)
