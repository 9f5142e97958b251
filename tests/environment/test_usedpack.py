"""The used part's pack (bootstrap/environment/usedpack.py) made from a copy built here, whose
access times say what a boot opened: what it packs and what it leaves linked."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bootstrap.environment import envpack, usedpack

KB = 1 << 10


def test_large_files_no_boot_opened_are_linked_and_sources_always_packed(
        tmp_path: Path) -> None:
    """Unpacking costs by the byte: a library or data file in a used directory that the
    recorded boot never opened stays on the volume. A module's .py stays in the pack even
    unopened (an import looks at it without opening it)."""
    env = tmp_path / "env"  # the environment on the volume
    copy = tmp_path / "copy"  # a full copy of it, after a boot
    files = {
        "lib/pkg/__init__.py": 10 * KB,  # imported: opened
        "lib/pkg/_ext.so": 300 * KB,  # loaded: opened
        "lib/pkg/unused_ext.so": 300 * KB,  # never loaded
        "lib/pkg/table.bin": 200 * KB,  # never read
        "lib/pkg/note.txt": 4 * KB,  # never read, small
        "lib/pkg/big_module.py": 300 * KB,  # its .pyc was read, not the source
    }
    opened = {"lib/pkg/__init__.py", "lib/pkg/_ext.so"}
    for root in (env, copy):
        for rel, size in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(os.urandom(size))
    (copy / envpack.LINKED).write_text("")
    later = time.time() + 100
    for rel in opened:  # what relatime records on a first read
        os.utime(copy / rel, (later, (copy / rel).stat().st_mtime))
    made_at = time.time()

    used = usedpack.write(env, copy, {"key": "k"}, made_at=made_at)
    assert used is not None
    into = tmp_path / "unpacked"
    into.mkdir()
    envpack.unpack(used.pack, env, into, timeout_s=60)
    for rel in ("lib/pkg/unused_ext.so", "lib/pkg/table.bin"):
        assert os.readlink(into / rel) == str(env / rel), rel
    for rel in ("lib/pkg/__init__.py", "lib/pkg/_ext.so", "lib/pkg/note.txt",
                "lib/pkg/big_module.py"):
        assert not (into / rel).is_symlink(), rel
        assert (into / rel).read_bytes() == (copy / rel).read_bytes(), rel
    assert used.pack.linked == 2
