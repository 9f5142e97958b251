"""The packed form of an environment (bootstrap/coldstart/packs.py) on a tree made here: what is
packed, what is left on the volume and linked, and what a damaged pack does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bootstrap.coldstart import packs


def make_env(root: Path) -> Path:
    env = root / "env"
    (env / "lib" / "pkg" / "tests").mkdir(parents=True)
    (env / "include" / "sub").mkdir(parents=True)
    (env / "lib" / "pkg" / "__init__.py").write_text("X = 1\n")
    (env / "lib" / "pkg" / "tests" / "test_x.py").write_text("def test(): pass\n")
    (env / "include" / "sub" / "h.h").write_text("#pragma once\n")
    (env / "lib" / "pkg" / "big.so").write_bytes(os.urandom(packs.LARGE_BYTES))
    (env / "lib64").symlink_to("lib")
    return env


def test_small_files_are_packed_and_large_ones_and_test_and_header_trees_linked(
        tmp_path: Path) -> None:
    env = make_env(tmp_path)
    pack = packs.write(env, timeout_s=60)
    assert pack.linked == 3  # big.so, include/, lib/pkg/tests/
    assert pack.size < packs.LARGE_BYTES, "the large file is not in the pack"
    copy = tmp_path / "copy"
    copy.mkdir()
    packs.unpack(packs.find(env, {packs.RECORD: pack.to_dict()}) or pack, env, copy,
                   timeout_s=60)
    assert (copy / "lib" / "pkg" / "__init__.py").read_text() == "X = 1\n"
    assert not (copy / "lib" / "pkg" / "__init__.py").is_symlink()
    assert os.readlink(copy / "lib64") == "lib"
    for rel in ("lib/pkg/big.so", "include", "lib/pkg/tests"):
        assert os.readlink(copy / rel) == str(env / rel)
    assert (copy / "lib" / "pkg" / "tests" / "test_x.py").read_text() == "def test(): pass\n"
    assert not (copy / packs.PACK).exists(), "the pack does not contain itself"


def test_a_truncated_pack_is_refused(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    pack = packs.write(env, timeout_s=60)
    os.truncate(pack.path, 2048)  # inside the members, not only the end's zero padding
    assert "the marker recorded" in (packs.damage(pack) or "")
    copy = tmp_path / "copy"
    copy.mkdir()
    with pytest.raises(packs.PackFailed):
        packs.unpack(pack, env, copy, timeout_s=60)


def test_the_pack_is_zstd_compressed_when_zstd_is_there_and_plain_when_not(
        tmp_path: Path) -> None:
    if packs.zstd() is None:
        pytest.fail("zstd is not installed (apt-get install zstd): the default pack needs it")
    env = make_env(tmp_path)
    (env / "lib" / "pkg" / "data.txt").write_text("the same line\n" * 20_000)
    compressed = packs.write(env, timeout_s=60)
    assert compressed.path.name == packs.PACK_ZSTD and compressed.compressed
    assert compressed.size < compressed.unpacked // 4, "zstd shrinks repetitive text"
    found = packs.find(env, {packs.RECORD: compressed.to_dict()})
    assert found == compressed
    copy = tmp_path / "copy"
    copy.mkdir()
    packs.unpack(compressed, env, copy, timeout_s=60)
    assert (copy / "lib" / "pkg" / "data.txt").read_text() == "the same line\n" * 20_000
    compressed.path.unlink()
    plain = packs.write(env, timeout_s=60, compress=False)
    assert plain.path.name == packs.PACK and not plain.compressed
    assert plain.size >= plain.unpacked - 512 * plain.files


def test_a_compressed_pack_without_zstd_at_boot_is_refused_before_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(tmp_path)
    pack = packs.write(env, timeout_s=60, compress=True)
    assert packs.damage(pack) is None
    # a PATH with tar and nothing else: the image the boot runs in has no zstd
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "tar").symlink_to(packs.tar() or "/bin/tar")
    monkeypatch.setenv("PATH", str(bare))
    assert "no zstd program" in (packs.damage(pack) or "")


def test_a_garbled_compressed_pack_fails_the_unpack(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    (env / "lib" / "pkg" / "data.bin").write_bytes(os.urandom(1 << 20))
    pack = packs.write(env, timeout_s=60, compress=True)
    with open(pack.path, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(64 << 10))
    assert packs.damage(pack) is None, "same size: only the unpack can tell"
    copy = tmp_path / "copy"
    copy.mkdir()
    with pytest.raises(packs.PackFailed):
        packs.unpack(pack, env, copy, timeout_s=60)


def test_a_garbled_compressed_pack_is_named_by_zstd_and_leaves_no_process(
        tmp_path: Path) -> None:
    """The unpack pipes zstd into tar itself: when the compressed stream is damaged the
    failure is zstd's own, and neither process is left running. The damage is inside a
    packed file's bytes, which tar cannot check: zstd finds it, by a block or by the
    frame's checksum, and tar only sees its input end."""
    env = make_env(tmp_path)
    # packed (under the size the pack links), and random: stored as zstd's raw blocks
    (env / "lib" / "pkg" / "data.bin").write_bytes(os.urandom(packs.LARGE_BYTES - (64 << 10)))
    pack = packs.write(env, timeout_s=60, compress=True)
    with open(pack.path, "r+b") as f:
        f.seek(pack.size // 2)
        f.write(os.urandom(64 << 10))
    copy = tmp_path / "copy"
    copy.mkdir()
    with pytest.raises(packs.PackFailed) as failed:
        packs.unpack(pack, env, copy, timeout_s=60)
    assert str(failed.value).startswith("zstd"), failed.value
    left = subprocess.run(["pgrep", "-f", str(pack.path)], capture_output=True, text=True)
    assert left.stdout == "", left.stdout
