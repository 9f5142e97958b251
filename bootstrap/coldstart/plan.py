"""The cold start's one decision: where this boot's worker runs from, and how its copy is
made. The hydrate stage's ``check`` says this plan and its ``run`` carries it out.

The plan is one of three ways, each with the refinements an earlier boot's records allow:

    volume   the worker runs from the volume (never set, no pack, a fast volume, a damaged
             pack, no room on the container disk)
    reuse    a trusted copy an earlier boot of this container made
    copy     unpack a pack onto the container disk: the full pack, or
               + the used part an earlier boot recorded (used_part.py), instead of it
               + its large modules, unpacked after the worker starts (``later``)
             and, with either copy,
               + the pages of the linked files an earlier boot read, read ahead (readahead.py)

Whether a copy wins is decided from what the boot measured: the volume's lookup latency,
the pack's size and member count, the room on the container disk.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap import diskspace, ioprobe
from bootstrap.coldstart import local_copy, packs, readahead, used_part
from bootstrap.environment import envstore
from bootstrap.environment.envbuild import ENV
from bootstrap.kernel.context import Context
from bootstrap.stages.volume import VOLUME_IO

# Lookups slower than this make running from the volume lose to one sequential read
# (docs/performance.md, "Cold start from the volume": at the lowest latency measured, a
# 0.49 ms lookup, the copy was ready 12x sooner): a local disk answers in a few
# microseconds, any FUSE or network file system in tens to hundreds.
MIN_LOOKUP_MS = 0.05
# Round trips a boot makes per file of the environment it runs from (measured on a torch model
# stack: ~96,000 stats and 14,000 opens over 78,000 files), for the estimate only.
TRIPS_PER_FILE = 1.4


class Way(enum.StrEnum):
    VOLUME = "volume"
    REUSE = "reuse"
    COPY = "copy"


class Volume(enum.StrEnum):
    """Why a plan runs the worker from the volume."""

    NEVER = "never"  # BOOTSTRAP_HYDRATE=never
    NO_PACK = "no pack"  # the environment has no packed form
    FAST = "fast"  # lookups are fast enough
    DAMAGED = "damaged"  # the pack cannot be used
    NO_ROOM = "no room"  # the container disk cannot hold the copy


@dataclass(frozen=True)
class Plan:
    way: Way
    why: str  # one line: why the copy is made, or why the boot runs from the volume
    key: str
    env: Path
    marker: dict[str, Any]
    local: Path
    facts: dict[str, Any]
    pack: packs.Pack | None = None  # the full pack
    volume: Volume | None = None  # why not a copy (way: volume)
    used: used_part.Used | None = None  # the part a recorded boot used: unpacked instead
    used_refused: str | None = None  # why a recorded used part cannot be used
    ahead: readahead.Touched | None = None  # the pages read ahead of the worker
    room: tuple[int, int] = (0, 0)  # (free MB, needed MB) on the container disk
    form: str | None = field(default=None)  # a reused copy's: "full" or "used"

    @property
    def tier(self) -> str:
        """The plan in a word: volume, reuse, full, used, used+later; "+read-ahead" when
        pages are read ahead."""
        if self.way is not Way.COPY:
            base = str(self.way)
        elif self.used is None:
            base = "full"
        else:
            base = "used+later" if self.used.later is not None else "used"
        return base + ("+read-ahead" if self.ahead is not None else "")

    @property
    def source(self) -> packs.Pack:
        """The pack the copy is unpacked from."""
        assert self.pack is not None
        return self.used.pack if self.used is not None else self.pack

    @property
    def later(self) -> used_part.Later | None:
        return None if self.used is None else self.used.later

    @property
    def identity(self) -> dict[str, Any]:
        assert self.pack is not None
        return local_copy.identity(self.marker, self.pack)


def lookup_ms(ctx: Context) -> tuple[float | None, float | None]:
    """The volume's lookup latency and read rate: the volume stage's probe when it ran,
    else (``bootstrap check``, or a boot that does not build there) lookups alone, which
    write nothing."""
    rates = VOLUME_IO.get(ctx)
    if isinstance(rates, ioprobe.Rates):
        return rates.lookup_ms, rates.read_mb_s
    try:
        return ioprobe.lookup_ms(ctx.config.volume), None
    except OSError:
        return None, None


def estimate_s(pack: packs.Pack, lookup_ms: float,
               read_mb_s: float | None) -> dict[str, float]:
    """What the two ways would cost in I/O alone: the boot's round trips from the volume,
    and one sequential read of the pack."""
    volume = pack.files * TRIPS_PER_FILE * lookup_ms / 1000
    estimate = {"from_volume_s": round(volume, 1)}
    if read_mb_s:  # only where the volume stage's probe measured it
        estimate["copy_s"] = round(pack.size / 1e6 / max(read_mb_s, local_copy.MIN_MB_S), 1)
    return estimate


def plan(ctx: Context) -> Plan | None:
    """This boot's plan for the environment in use; None when there is none. Reads only:
    ``bootstrap check`` says it, the hydrate stage's run carries it out."""
    found = ENV.get(ctx)
    if found is None:
        return None
    env = Path(found)
    marker = envstore.read_marker(env) or {}
    lookup, read = lookup_ms(ctx)
    config = ctx.config
    key = str(marker.get("key", env.name))
    local = config.hydrate_dir / key
    facts: dict[str, Any] = {"lookup_ms": None if lookup is None else round(lookup, 3),
                             "local": str(local)}

    def volume(why: str, reason: Volume, pack: packs.Pack | None = None,
               **more: Any) -> Plan:
        return Plan(Way.VOLUME, why, key, env, marker, local, facts, pack, reason, **more)

    if config.hydrate == "never":
        return volume("BOOTSTRAP_HYDRATE=never", Volume.NEVER)
    pack = packs.find(env, marker)
    if pack is None:
        return volume("no packed form", Volume.NO_PACK)
    facts.update(pack_mb=pack.size >> 20, files=pack.files, compressed=pack.compressed)
    if lookup is not None:
        facts.update(estimate_s(pack, lookup, read))
    if config.hydrate == "auto" and (lookup is None or lookup < MIN_LOOKUP_MS):
        measured = "not measured" if lookup is None else f"{lookup:.3f} ms"
        return volume(f"the volume is fast (lookup {measured} < {MIN_LOOKUP_MS} ms)",
                      Volume.FAST, pack)
    measured = "not measured" if lookup is None else f"{lookup:.2f} ms"
    touched = readahead.load(env)
    ahead = touched if touched is not None and touched.files else None
    if local_copy.trusted(local, local_copy.identity(marker, pack)) is None:
        return Plan(Way.REUSE, f"lookup {measured}", key, env, marker, local, facts, pack,
                    ahead=ahead, form=local_copy.made_from(local))
    damaged = packs.damage(pack)
    if damaged is not None:
        return volume(damaged, Volume.DAMAGED, pack)
    used, refused = (used_part.find(env, local_copy.identity(marker, pack))
                     if config.hydrate_used else (None, None))
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
        why = (f"lookup {measured}; the {used.pack.files} of {pack.files} files a recorded "
               f"boot used, in one read of {used.pack.size >> 20} MB; {used.pack.linked} "
               f"directories and large files linked{later}")
    else:
        facts["form"] = "full"
        if refused is not None:
            facts["used_refused"] = refused
        form = ", zstd" if pack.compressed else ""
        why = f"lookup {measured}; {pack.files} files in one read of {pack.size >> 20} MB{form}"
    # room for the used part only: should it fail, the full copy may find the disk full
    room = local_copy.room(config.hydrate_dir,
                           used.pack if used is not None else pack,
                           None if used is None else used.later)
    if room[0] < room[1]:
        disk = diskspace.describe_disk(config.hydrate_dir)
        return volume(f"{room[0]} MB free on {disk}, {room[1]} MB needed", Volume.NO_ROOM,
                      pack, used=used, used_refused=refused, room=room)
    return Plan(Way.COPY, why, key, env, marker, local, facts, pack, used=used,
                used_refused=refused, ahead=ahead, room=room)
