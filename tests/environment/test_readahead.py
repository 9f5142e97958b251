"""The record of what a boot read of the large files, and the reading ahead of it
(bootstrap/coldstart/readahead.py), on real files in the real page cache."""

from __future__ import annotations

import os
from pathlib import Path

from bootstrap.coldstart import readahead

MB = 1 << 20


def evicted(path: Path, size: int) -> Path:
    """``path`` with ``size`` random bytes, none of them in the page cache."""
    path.write_bytes(os.urandom(size))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return path


def covers(extents: list[tuple[int, int]], start: int, length: int) -> bool:
    return any(off <= start and start + length <= off + n for off, n in extents)


def test_resident_names_the_pages_read_and_not_the_others(tmp_path: Path) -> None:
    path = evicted(tmp_path / "lib.so", 32 * MB)
    assert readahead.resident(path) == []
    with open(path, "rb", buffering=0) as f:
        f.seek(20 * MB)
        f.read(MB)
    extents = readahead.resident(path)
    assert covers(extents, 20 * MB, MB), extents
    assert not covers(extents, 0, readahead.PAGE), "the start was never read"
    assert sum(n for _, n in extents) < 8 * MB


def test_a_record_is_read_ahead_into_the_page_cache(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "lib").mkdir(parents=True)
    evicted(env / "lib" / "a.so", 16 * MB)
    evicted(env / "lib" / "b.so", 16 * MB)
    touched = readahead.Touched({"lib/a.so": [(2 * MB, 3 * MB)], "lib/b.so": [(0, 5 * MB)]})
    readahead.save(env, touched)
    loaded = readahead.load(env)
    assert loaded == touched and loaded.bytes == 8 * MB
    reader = readahead.Reader(env, loaded).start()
    assert reader.join(timeout_s=30) and reader.failed is None
    assert reader.read_bytes == 8 * MB
    assert covers(readahead.resident(env / "lib" / "a.so"), 2 * MB, 3 * MB)
    assert covers(readahead.resident(env / "lib" / "b.so"), 0, 5 * MB)
    assert not covers(readahead.resident(env / "lib" / "a.so"), 10 * MB, MB)


def test_recording_skips_directories_and_files_not_read(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "include").mkdir(parents=True)
    evicted(env / "unread.so", 8 * MB)
    read = evicted(env / "read.so", 8 * MB)
    read.read_bytes()
    touched = readahead.record(env, ["include", "unread.so", "read.so", "gone.so"])
    assert list(touched.files) == ["read.so"]
    assert touched.files["read.so"] == [(0, 8 * MB)]


def test_a_damaged_record_is_no_record_and_a_missing_file_stops_only_its_reader(
        tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.mkdir()
    (env / readahead.RECORD).write_text('{"files": {"a.so": [[0, "x"]]')
    assert readahead.load(env) is None
    (env / readahead.RECORD).write_text('{"files": []}')
    assert readahead.load(env) is None
    reader = readahead.Reader(env, readahead.Touched({"gone.so": [(0, MB)]}), threads=1)
    assert reader.start().join(timeout_s=30)
    assert reader.failed and reader.read_bytes == 0
