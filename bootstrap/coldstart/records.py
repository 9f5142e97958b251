"""Every file the cold start keeps, on the volume and on the container disk, by name.

On the volume, inside an environment's directory (removed with it):

    .bootstrap-pack.tar[.zst]           the packed form, written by install (packs.py)
    .bootstrap-readahead.json           the pages of the linked files a boot read (readahead.py)
    .bootstrap-used-part.json           the record of the part a boot used (used_part.py)
    .bootstrap-used-part-<id>.tar[.zst]         that part, packed
    .bootstrap-used-part-<id>-later.tar[.zst]   its large modules, packed apart

Inside a pack: ``.bootstrap-linked.txt``, the files the copy links to the volume.

On the container disk, under ``hydrate_dir`` (local_copy.py):

    <key>/                   a complete copy; .bootstrap-copy.json says of which pack
    <key>.tmp-<pid>/         an unpack in progress (or what a killed one left)
    <key>.lock               held (flock) by the one worker copying this key
    <key>.later.tmp/         the later part being unpacked
    <key>.later.lock         held by the one worker unpacking the later part

Names an earlier bootstrap wrote (``.bootstrap-touched.json``, ``.bootstrap-used.json`` and its
``.bootstrap-used-<id>`` packs, ``.bootstrap-hydrated.json``) are no record to a later boot:
it copies the full pack and records again, as on an environment's first boot. The pack's
and its list's names are kept: an environment's marker and its packs name them.
"""

from __future__ import annotations

from pathlib import Path

# -- on the volume, inside the environment ---------------------------------------------------
PACK = ".bootstrap-pack.tar"
# The compressed pack's name: a boot knows the format from the name the marker records.
PACK_ZSTD = f"{PACK}.zst"
# The environment marker's entry for the pack.
PACK_ENTRY = "pack"
# Inside a pack: the files left on the volume, one relative path per line.
LINKED = ".bootstrap-linked.txt"
READAHEAD = ".bootstrap-readahead.json"
USED_PART = ".bootstrap-used-part.json"
# The used part's packs: this prefix, an id of their own, then LATER for its large modules.
USED_PART_PACK = ".bootstrap-used-part-"
LATER = "-later"
# While the used part is packed: its list of links, inside the copy it is packed from.
USED_PART_LINKED = f"{USED_PART_PACK}linked"

# -- on the container disk: the local copy -------------------------------------------------
COPY = ".bootstrap-copy.json"


def staging(local: Path, pid: int | str) -> Path:
    return local.with_name(f"{local.name}.tmp-{pid}")


def staging_glob(local: Path) -> str:
    return f"{local.name}.tmp-*"


def copy_lock(local: Path) -> Path:
    return local.with_name(f"{local.name}.lock")


def later_staging(local: Path) -> Path:
    return local.with_name(f"{local.name}.later.tmp")


def later_lock(local: Path) -> Path:
    return local.with_name(f"{local.name}.later.lock")
