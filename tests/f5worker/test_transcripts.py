"""The transcript cache on the volume: a reference's transcript kept by its bytes' SHA-256,
written atomically so workers sharing the volume never read half of one."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bootstrap.kernel.config import Config, ConfigError, load
from f5worker import settings
from f5worker.transcripts import MAX_BYTES, SHARDS, TranscriptCache

REPO = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_transcription_is_on_by_default_and_can_be_turned_off() -> None:
    # The replaced worker's clients never send ref_text: they must work unchanged.
    app = {"BOOTSTRAP_APP": "f5worker.app:APP"}
    on = settings.of(load(environ=app).config)
    assert on.transcribe is True
    assert (on.asr_model, on.asr_dir) == (
        "openai/whisper-large-v3-turbo", Path("models/whisper-large-v3-turbo"))
    off = settings.of(load(environ={**app, "BOOTSTRAP_TRANSCRIBE": "0",
                                    "BOOTSTRAP_ASR_MODEL": ""}).config)
    assert off.transcribe is False and off.asr_model == ""


def test_a_transcript_round_trips_under_the_volume(tmp_path: Path) -> None:
    cache = TranscriptCache.of(Config(volume=tmp_path))
    key = sha(b"RIFF a reference")
    assert cache.get(key) is None
    cache.put(key, "  Some call me nature.\n")
    assert cache.get(key) == "Some call me nature."
    assert cache.path(key) == tmp_path / ".cache" / "transcripts" / key[:2] / f"{key}.txt"
    cache.put(key, "Others call me mother nature.")  # a later one replaces it
    assert TranscriptCache(tmp_path / ".cache" / "transcripts").get(key) == (
        "Others call me mother nature.")
    assert [p.name for p in cache.path(key).parent.iterdir()] == [f"{key}.txt"]


def test_keys_and_texts_it_refuses(tmp_path: Path) -> None:
    cache = TranscriptCache(tmp_path)
    for bad in ("../../etc/passwd", "ABC", sha(b"x").upper(), sha(b"x") + "0"):
        with pytest.raises(ValueError, match="SHA-256"):
            cache.get(bad)
    with pytest.raises(ValueError, match="empty"):
        cache.put(sha(b"x"), " \n")
    with pytest.raises(ValueError, match="over"):
        cache.put(sha(b"x"), "a" * (MAX_BYTES + 1))
    assert not any(tmp_path.iterdir())


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from f5worker.transcripts import TranscriptCache

    cache, key, letter = TranscriptCache(Path(sys.argv[1])), sys.argv[2], sys.argv[3]
    text = letter * 40000  # large enough that a torn write would show
    for _ in range(int(sys.argv[4])):
        cache.put(key, text)
""")


def test_two_writers_and_a_reader_see_only_whole_transcripts(tmp_path: Path) -> None:
    """Two worker processes keep a transcript for the same reference at once while this
    one reads it: every read is all of one writer's text (or none, before the first)."""
    key = sha(b"the same reference, sent to two workers")
    cache = TranscriptCache(tmp_path / "transcripts")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(cache.folder), key, letter,
                                 "300"], cwd=REPO) for letter in "ab"]
    seen = set()
    while any(w.poll() is None for w in writers):
        text = cache.get(key)
        if text is not None:
            seen.add(text)
    assert [w.wait() for w in writers] == [0, 0]
    assert seen and seen <= {"a" * 40000, "b" * 40000}
    assert cache.get(key) in seen | {"a" * 40000, "b" * 40000}
    assert [p.name for p in cache.path(key).parent.iterdir()] == [f"{key}.txt"], \
        "no temporary file is left behind"


def in_shard(shard: str, n: int) -> str:
    """A key in the shard ``shard`` (the hash's first two hex digits)."""
    return f"{shard}{n:062x}"


def test_past_its_bound_the_oldest_go_and_the_newest_are_still_found(tmp_path: Path) -> None:
    cache = TranscriptCache(tmp_path, max_entries=4 * SHARDS)  # 4 a shard
    elsewhere = in_shard("cd", 0)
    cache.put(elsewhere, "In another shard.")
    keys = [in_shard("ab", n) for n in range(10)]
    for n, key in enumerate(keys):
        cache.put(key, f"Transcript {n}.")
        os.utime(cache.path(key), ns=(n * 10**9, n * 10**9))  # written a second apart
    # Today's cache kept all ten: nothing was ever evicted.
    assert [cache.get(key) for key in keys[:6]] == [None] * 6
    assert [cache.get(key) for key in keys[6:]] == [f"Transcript {n}." for n in range(6, 10)]
    assert len(list(cache.path(keys[0]).parent.iterdir())) == 4
    assert cache.get(elsewhere) == "In another shard."


def test_a_full_shard_is_cut_to_nine_tenths_so_it_is_dated_once_per_tenth(
        tmp_path: Path) -> None:
    cache = TranscriptCache(tmp_path, max_entries=40 * SHARDS)
    keys = [in_shard("0f", n) for n in range(41)]
    for n, key in enumerate(keys):
        cache.put(key, f"Transcript {n}.")
        os.utime(cache.path(key), ns=(n * 10**9, n * 10**9))
    # The 41st write found 41 of 40: the oldest five went, the 36 newest stay.
    kept = sorted(p.name for p in cache.path(keys[0]).parent.iterdir())
    assert kept == sorted(f"{key}.txt" for key in keys[5:])


def test_the_bound_is_a_setting_of_ten_thousand_by_default(tmp_path: Path) -> None:
    app = {"BOOTSTRAP_APP": "f5worker.app:APP", "BOOTSTRAP_VOLUME": str(tmp_path)}
    assert TranscriptCache.of(load(environ=app).config).per_shard == 40  # 10,000 / 256
    small = load(environ={**app, "BOOTSTRAP_TRANSCRIPT_CACHE_MAX": "512"}).config
    assert TranscriptCache.of(small).per_shard == 2
    with pytest.raises(ConfigError, match=r"transcript_cache_max: 0 .*must be 1 or more"):
        load(environ={**app, "BOOTSTRAP_TRANSCRIPT_CACHE_MAX": "0"})
    with pytest.raises(ValueError, match="at least 1"):
        TranscriptCache(tmp_path, max_entries=0)


FILLER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from f5worker.transcripts import TranscriptCache

    cache = TranscriptCache(Path(sys.argv[1]), max_entries=8 * 256)
    for n in range(150):
        cache.put(f"ab{sys.argv[2]}{n:061x}", f"Transcript {n} of writer {sys.argv[2]}.")
""")


def test_two_workers_filling_one_shard_hold_it_to_its_bound(tmp_path: Path) -> None:
    """Two worker processes on one volume write 150 transcripts each into one shard,
    pruning it at once: neither fails, and the shard ends within its bound, whole."""
    folder = tmp_path / "transcripts"
    writers = [subprocess.Popen([sys.executable, "-c", FILLER, str(folder), mark], cwd=REPO)
               for mark in "12"]
    assert [w.wait(120) for w in writers] == [0, 0]
    left = list((folder / "ab").iterdir())
    # Today's cache kept all 300.
    assert 1 <= len(left) <= 8, len(left)
    assert all(not p.name.startswith(".") for p in left), "no temporary file is left behind"
    cache = TranscriptCache(folder)
    for path in left:
        assert (cache.get(path.stem) or "").startswith("Transcript "), path
