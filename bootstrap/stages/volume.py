"""volume: is the shared volume there, writable by this user, big and fast enough, and
holding what the boot expects where it expects it (FAILURES.md 4, 11, 16).

Reads ``/proc/self/mountinfo`` for the mount and its filesystem, writes one probe file
(removed again) to prove create/fsync/read/delete, compares free space with what the boot
needs, measures small-file and sequential I/O (``run`` only), looks one or two levels down
for expected files that landed under a doubled prefix, and names a mount that hides
content the image provides (the image manifest).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from bootstrap import diskspace, ioprobe, mounts
from bootstrap.environment import requirements
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, error, info, warning
from bootstrap.kernel.output import Output
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed

VOLUME_IO: Output[ioprobe.Rates] = Output("volume_io", __name__)  # the I/O probe's figures

# Below these the volume is slow enough to dominate a boot that installs or imports from it.
SLOW_SMALL_FILES_PER_S = 200
SLOW_MB_S = 20

E001 = error("volume.E001", "volume {path} does not exist",
             "attach a network volume to the endpoint (mounted at /runpod-volume; "
             "/workspace on a pod) or set BOOTSTRAP_VOLUME")
E002 = error("volume.E002", "volume {path} is not a directory",
             "point BOOTSTRAP_VOLUME at the volume's mount point")
E003 = error("volume.E003", "volume {path} is read-only ({fs})",
             "mount the volume read-write, or bake packages into the image "
             "(BOOTSTRAP_MODE=image)")
E004 = error("volume.E004", "cannot write to {path}: {reason}",
             "{path} is owned by uid {uid} gid {gid}, mode {mode}; this process runs as "
             "uid {me} gid {my_gid}: chown the volume or run the container as its owner")
E005 = error("volume.E005", "{free_mb} MB free on volume {path}, {need_mb} MB needed",
             "free space on the volume (old environments: .bootstrap/envs) or enlarge it; "
             "BOOTSTRAP_MIN_FREE_VOLUME_MB sets what is needed")
W001 = warning("volume.W001", "{path} is not a mount point: writes land on the container disk",
               "attach the network volume to the endpoint, or every boot builds from scratch")
W002 = warning("volume.W002", "slow volume: {small} small files/s, {write} MB/s write",
               "expect a slow install and slow imports; consider BOOTSTRAP_MODE=image")
W003 = warning("volume.W003", "{rel} is under a doubled prefix: {found}",
               "move the contents of {prefix} up into {path}; the upload went one level "
               "too deep")
W004 = warning("volume.W004", "{rel} is not on the volume",
               "upload it to {path}/{rel}, or remove it from BOOTSTRAP_VOLUME_EXPECT")
W005 = warning("volume.W005", "the mount at {mount} hides {count} path(s) the image provides",
               "e.g. {first}: mount the volume elsewhere (BOOTSTRAP_VOLUME) or keep image "
               "content out of the volume's mount point")
W006 = warning("volume.W006", "volume {path} is read-only ({fs}): nothing is kept there",
               "fine for reading; this mode builds nothing there, reports go to the fallback")
W007 = warning("volume.W007", "cannot write to {path}: {reason}",
               "{path} is owned by uid {uid} gid {gid}, mode {mode}; this process runs as "
               "uid {me} gid {my_gid}; this mode builds nothing there")
I001 = info("volume.I001", "no volume at {path}; {mode} mode does not need one",
            "set BOOTSTRAP_VOLUME to use one")
I002 = info("volume.I002", "volume {path}: {fs}, {free_mb} MB free",
            "")


def _owner_hint(path: Path, reason: str, template: Message) -> Message:
    st = path.stat()
    return template.at(path, path=path, reason=reason, uid=st.st_uid, gid=st.st_gid,
                   mode=stat.filemode(st.st_mode), me=os.geteuid(), my_gid=os.getegid())


def _write(path: Path, mount: mounts.Mount | None, need_mb: int, fatal: bool) -> list[Message]:
    """Prove this user can write to the volume. A failure is an error only where the boot
    writes there (``fatal``); elsewhere (image mode, local mode without an environment) a
    read-only volume can be deliberate, and it is a warning."""
    fs = mount.describe() if mount else "unknown filesystem"
    read_only = E003 if fatal else W006
    if mount is not None and mount.read_only:
        return [read_only.at(path, path=path, fs=fs)]
    try:
        ioprobe.write_probe(path)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return [read_only.at(path, path=path, fs=fs)]
        if diskspace.is_full(exc):
            return [E005.at(path, path=path, free_mb=diskspace.free_mb(path), need_mb=need_mb)]
        return [_owner_hint(path, exc.strerror or str(exc), E004 if fatal else W007)]
    return []


def _writes_there(ctx: Context) -> bool:
    if ctx.config.mode != "local":
        return ctx.config.mode == "volume"
    try:
        return requirements.load(ctx.config).configured
    except requirements.RequirementsMissing:
        return True  # the venv stage names it; judge the volume as if it were there


def _doubled(path: Path, expect: tuple[str, ...]) -> list[Message]:
    messages = []
    for rel in expect:
        if (path / rel).exists():
            continue
        found = [p for pattern in (f"*/{rel}", f"*/*/{rel}") for p in path.glob(pattern)
                 if ".bootstrap" not in p.relative_to(path).parts]
        if found:
            prefix = Path(str(found[0])[: -len(rel)].rstrip("/"))
            messages.append(W003.at(rel, rel=rel, found=found[0], prefix=prefix, path=path))
        else:
            messages.append(W004.at(rel, rel=rel, path=path))
    return messages


def _hidden(manifest: Path, table: list[mounts.Mount]) -> list[Message]:
    try:
        lines = manifest.read_text().splitlines()
    except OSError:
        return []  # no manifest: an image that declares nothing
    hidden: dict[Path, list[str]] = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("/") or os.path.lexists(line):
            continue
        mount = mounts.mount_of(Path(line), table)
        if mount is not None and mount.point != Path("/"):
            hidden.setdefault(mount.point, []).append(line)
    return [W005.at(point, mount=point, count=len(paths), first=paths[0])
            for point, paths in hidden.items()]


def _inspect(ctx: Context) -> tuple[list[Message], dict[str, Any]]:
    config = ctx.config
    path = config.volume
    table = mounts.table()
    messages = _hidden(config.image_manifest, table)
    if not path.exists():
        if config.mode == "volume":
            return [E001.at(path, path=path), *messages], {"path": str(path)}
        return [I001.at(path, path=path, mode=config.mode), *messages], {"path": str(path)}
    if not path.is_dir():
        return [E002.at(path, path=path)], {"path": str(path)}
    mount = mounts.mount_of(path, table)
    is_mount = mounts.is_mount_point(path, table)
    facts: dict[str, Any] = {"path": str(path), "mount_point": is_mount}
    if mount is not None:
        facts.update(mount=str(mount.point), fstype=mount.fstype, source=mount.source,
                     read_only=mount.read_only)
    if config.mode == "volume" and not is_mount:
        messages.append(W001.at(path, path=path))
    writes_there = _writes_there(ctx)
    messages += _write(path, mount, config.min_free_volume_mb, writes_there)
    facts["builds_there"] = writes_there
    facts["writable"] = not any(m.id in (E003.id, E004.id, W006.id, W007.id) for m in messages)
    free = diskspace.free_mb(path)
    facts["free_mb"] = free
    if free < config.min_free_volume_mb and not any(m == E005.at(path) for m in messages):
        messages.append(E005.at(path, path=path, free_mb=free, need_mb=config.min_free_volume_mb))
    messages += _doubled(path, config.volume_expect)
    return messages, facts


def check(ctx: Context) -> list[Message]:
    messages, facts = _inspect(ctx)
    if "free_mb" in facts:
        fs = f"{facts.get('fstype', '?')} from {facts.get('source', '?')}"
        messages.append(I002.at(ctx.config.volume, path=ctx.config.volume, fs=fs,
                                free_mb=facts["free_mb"]))
    return messages


def run(ctx: Context) -> Outcome:
    messages, facts = _inspect(ctx)
    for message in messages:
        if message.is_serious:
            raise StageFailed(message)
    # the I/O probe costs tens of ms: only worth it where the boot installs to the volume
    if facts.get("writable") and facts.get("builds_there"):
        try:
            rates = ioprobe.rates(ctx.config.volume)
        except OSError as exc:  # a nearly full volume: the free-space check already spoke
            facts["io"] = f"not measured: {exc.strerror or exc}"
            return Outcome(facts=facts, messages=messages)
        facts["io"] = rates.to_dict()
        VOLUME_IO.set(ctx, rates)  # the hydrate stage decides by it
        if rates.small_files_per_s < SLOW_SMALL_FILES_PER_S or rates.write_mb_s < SLOW_MB_S:
            messages.append(W002.at(ctx.config.volume, small=round(rates.small_files_per_s),
                                    write=round(rates.write_mb_s, 1)))
    return Outcome(facts=facts, messages=messages)


STAGE = Stage(name="volume", run=run, check=check, side=Side.SUPERVISOR,
              exit_code=ExitCode.VOLUME, deadline_s=120)
