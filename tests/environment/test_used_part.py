"""The used part's pack (bootstrap/coldstart/used_part.py) made from a copy built here, whose
access times say what a boot opened: what it packs and what it leaves linked."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bootstrap.coldstart import local_copy, packs, used_part

KB = 1 << 10


def env_and_copy(tmp_path: Path, files: dict[str, int], opened: set[str]) -> tuple[Path, Path]:
    """An environment (on the volume) and a full copy of it after a boot that opened
    ``opened``: random files of the given sizes, the opened ones with the access time
    relatime gives a first read."""
    env = tmp_path / "env"
    copy = tmp_path / "copy"
    for root in (env, copy):
        for rel, size in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(os.urandom(size))
    (copy / packs.LINKED).write_text("")
    later = time.time() + 100
    for rel in opened:
        os.utime(copy / rel, (later, (copy / rel).stat().st_mtime))
    return env, copy


def test_large_files_no_boot_opened_are_linked_and_sources_always_packed(
        tmp_path: Path) -> None:
    """Unpacking costs by the byte and by the file: a library or data file in a used
    directory that the recorded boot never opened stays on the volume, and a .pyc it
    never loaded is left out. A module's .py stays in the pack even unopened (an import
    looks at it without opening it, and compiles it when its .pyc is missing)."""
    files = {
        "lib/pkg/__init__.py": 10 * KB,  # imported: opened
        "lib/pkg/_ext.so": 300 * KB,  # loaded: opened
        "lib/pkg/unused_ext.so": 300 * KB,  # never loaded
        "lib/pkg/table.bin": 200 * KB,  # never read
        "lib/pkg/note.txt": 4 * KB,  # never read, small
        "lib/pkg/big_module.py": 300 * KB,  # its .pyc was read, not the source
        "lib/pkg/__pycache__/big_module.cpython-311.pyc": 20 * KB,  # loaded
        "lib/pkg/__pycache__/other.cpython-311.pyc": 20 * KB,  # never loaded
        "lib/pkg/other.py": 20 * KB,  # never imported
    }
    opened = {"lib/pkg/__init__.py", "lib/pkg/_ext.so",
              "lib/pkg/__pycache__/big_module.cpython-311.pyc"}
    env, copy = env_and_copy(tmp_path, files, opened)
    made_at = time.time()

    used = used_part.write(env, copy, {"key": "k"}, made_at=made_at)
    assert used is not None
    into = tmp_path / "unpacked"
    into.mkdir()
    packs.unpack(used.pack, env, into, timeout_s=60)
    for rel in ("lib/pkg/unused_ext.so", "lib/pkg/table.bin"):
        assert os.readlink(into / rel) == str(env / rel), rel
    for rel in ("lib/pkg/__init__.py", "lib/pkg/_ext.so", "lib/pkg/note.txt",
                "lib/pkg/big_module.py", "lib/pkg/__pycache__/big_module.cpython-311.pyc",
                "lib/pkg/other.py"):
        assert not (into / rel).is_symlink(), rel
        assert (into / rel).read_bytes() == (copy / rel).read_bytes(), rel
    assert used.pack.linked == 2
    # a compiled module no boot loaded: left out, its source is there to compile
    assert not os.path.lexists(into / "lib/pkg/__pycache__/other.cpython-311.pyc")


def test_large_opened_modules_wait_in_a_pack_of_their_own_and_replace_their_links(
        tmp_path: Path) -> None:
    """Unpacking costs by the byte, and a boot needs its large modules seconds after its
    start: those it opened go into the later pack. The copy links them first, and
    local_copy.unpack_later renames each, whole, over its link; once, whoever asks again."""
    big = "lib/pkg/_big.cpython-311-x86_64-linux-gnu.so"
    files = {"lib/pkg/__init__.py": 10 * KB, big: used_part.LATER_BYTES + 1,
             "lib/pkg/_small.so": 300 * KB}
    env, copy = env_and_copy(tmp_path, files, set(files))  # all three opened
    of = {"key": "k"}

    used = used_part.write(env, copy, of, made_at=time.time())
    assert used is not None and used.later is not None
    assert used.later.members == (big,)
    assert used.later.pack.path.name.startswith(used_part.PREFIX)
    assert used_part.find(env, of)[0] == used  # the record names both packs
    local = tmp_path / "copies" / "k"
    local.mkdir(parents=True)
    packs.unpack(used.pack, env, local, timeout_s=60)
    assert os.readlink(local / big) == str(env / big), "linked until the later pack is in"
    assert (local / "lib/pkg/_small.so").read_bytes() == (copy / "lib/pkg/_small.so").read_bytes()
    assert local_copy.pending(local, used.later) == [big]

    assert local_copy.unpack_later(local, used.later) == [big]
    assert not (local / big).is_symlink()
    assert (local / big).read_bytes() == (copy / big).read_bytes()
    assert local_copy.pending(local, used.later) == []
    assert local_copy.unpack_later(local, used.later) == [], "done once"
    assert sorted(p.name for p in local.parent.iterdir()) == ["k", "k.later.lock"]


def test_a_damaged_later_pack_is_no_record_and_a_failed_unpack_leaves_the_links(
        tmp_path: Path) -> None:
    big = "lib/pkg/_big.so"
    env, copy = env_and_copy(tmp_path, {big: used_part.LATER_BYTES + 1}, {big})
    of = {"key": "k"}
    used = used_part.write(env, copy, of, made_at=time.time())
    assert used is not None and used.later is not None
    local = tmp_path / "k"
    local.mkdir()
    packs.unpack(used.pack, env, local, timeout_s=60)
    # garbled, same size: the record stands until tar reads it
    data = bytearray(used.later.pack.path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4096] = os.urandom(4096)
    used.later.pack.path.write_bytes(bytes(data))
    with pytest.raises(packs.PackFailed):
        local_copy.unpack_later(local, used.later)
    assert os.readlink(local / big) == str(env / big), "the link still works"
    assert [p.name for p in tmp_path.iterdir() if "later" in p.name] == ["k.later.lock"]
    # cut short: no record
    used.later.pack.path.write_bytes(bytes(data[:100]))
    found, why = used_part.find(env, of)
    assert found is None and why is not None and "bytes" in why, why
    used_part.forget(env, used.later.pack.path.name)
    assert not (env / used_part.RECORD).exists()
    assert not used.pack.path.exists() and not used.later.pack.path.exists()


def test_records_an_earlier_bootstrap_named_otherwise_are_no_record(tmp_path: Path) -> None:
    """A volume written by an earlier bootstrap: its used part's record, and a local copy's
    record, under the names it used. A boot finds no record (a full copy, recorded again)
    and does not fail."""
    files = {"lib/pkg/__init__.py": 10 * KB, "lib/pkg/_ext.so": 300 * KB}
    env, copy = env_and_copy(tmp_path, files, {"lib/pkg/__init__.py"})
    used = used_part.write(env, copy, {"key": "k"}, made_at=time.time())
    assert used is not None
    assert used_part.find(env, {"key": "k"})[0] == used
    (env / used_part.RECORD).rename(env / ".bootstrap-used.json")
    assert used_part.find(env, {"key": "k"}) == (None, None)
    (copy / ".bootstrap-hydrated.json").write_text('{"of": {"key": "k"}, "form": "used"}')
    assert local_copy.trusted(copy, {"key": "k"}) == "no record: an unfinished copy"
    assert local_copy.made_from(copy) is None and local_copy.later_of(copy) is None
