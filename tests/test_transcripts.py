"""The transcript cache on the volume: a reference's transcript kept by its bytes' SHA-256,
written atomically so workers sharing the volume never read half of one."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bootstrap.kernel.config import Config, load
from f5worker import settings
from f5worker.transcripts import MAX_BYTES, TranscriptCache

REPO = Path(__file__).resolve().parents[1]


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
