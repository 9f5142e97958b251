"""Disk-space helpers behind install.E003 and its kin (the disk that filled is named in
tests/environment/test_volume_mounts.py, on real small mounts)."""

from __future__ import annotations

import os
from pathlib import Path

from bootstrap import diskspace


def test_used_counts_a_hard_linked_file_once(tmp_path: Path) -> None:
    build = tmp_path / "build"
    (build / "cache").mkdir(parents=True)
    (build / "env").mkdir()
    blob = build / "cache" / "blob.bin"
    blob.write_bytes(os.urandom(3 << 20))
    os.link(blob, build / "env" / "blob.bin")  # what uv's hardlink mode does
    (build / "env" / "other.bin").write_bytes(os.urandom(2 << 20))
    assert diskspace.used_mb(build) == 5

