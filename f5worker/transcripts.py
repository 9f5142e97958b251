"""Transcripts of references, kept on the volume so a reference is transcribed once.

A job that sends a reference without its text has it transcribed (f5worker.transcriber);
the next job with the same reference bytes finds the transcript here, by the bytes'
SHA-256, on any worker sharing the volume. One small file per reference, sharded by the
hash's first two hex digits. Writes go to a private temporary name and are renamed into
place, so a reader sees a whole transcript or none, and two workers writing the same one
at once leave one of their two (identical) files.

The cache is bounded by count (``transcript_cache_max``), kept per shard: a shard holds at
most ``ceil(max / 256)`` transcripts, so a write looks at its own folder only, never the
whole tree. A write that takes a shard past its share removes the oldest written down to
nine tenths of it, so the files are dated (one ``stat`` each) once per tenth of a shard's
writes, not at every one. Workers pruning one shard at once remove the same oldest files;
a file another removed first is not an error.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
from pathlib import Path

from bootstrap.kernel.config import Config
from f5worker.settings import F5Settings

_SHA256 = re.compile(r"[0-9a-f]{64}")
# A transcript of a reference F5-TTS can use (~12 s) is far shorter; a larger file is not
# one this cache wrote.
MAX_BYTES = 64 << 10
SHARDS = 256  # the hash's first two hex digits
# A temporary file this old was left by a worker killed between writing and renaming.
STALE_TEMP_S = 3600


def default_dir(config: Config) -> Path:
    return config.volume / ".cache" / "transcripts"


class TranscriptCache:
    def __init__(self, folder: Path, max_entries: int = F5Settings.transcript_cache_max) -> None:
        if max_entries < 1:
            raise ValueError(f"a transcript cache holds at least 1, not {max_entries}")
        self.folder = folder
        self.per_shard = math.ceil(max_entries / SHARDS)

    @classmethod
    def of(cls, config: Config) -> TranscriptCache:
        """The volume's cache, bounded by the app's setting (another app's configuration
        gets the default)."""
        settings = config.app_settings
        if isinstance(settings, F5Settings):
            return cls(default_dir(config), settings.transcript_cache_max)
        return cls(default_dir(config))

    def path(self, audio_sha256: str) -> Path:
        if not _SHA256.fullmatch(audio_sha256):
            raise ValueError(f"not a lowercase hex SHA-256: {audio_sha256[:80]!r}")
        return self.folder / audio_sha256[:2] / f"{audio_sha256}.txt"

    def get(self, audio_sha256: str) -> str | None:
        """The transcript kept for these reference bytes, or None."""
        path = self.path(audio_sha256)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        if len(data) > MAX_BYTES:
            return None
        text = data.decode("utf-8", errors="replace").strip()
        return text or None

    def put(self, audio_sha256: str, text: str) -> None:
        """Keeps ``text`` for these reference bytes (replacing any kept before), then
        holds its shard to its share of the bound."""
        path = self.path(audio_sha256)
        data = text.strip().encode("utf-8")
        if not data:
            raise ValueError("an empty transcript is not kept")
        if len(data) > MAX_BYTES:
            raise ValueError(f"a transcript of {len(data)} bytes is over {MAX_BYTES}")
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
        try:
            with temp.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        self._prune(path.parent, path.name)

    def _prune(self, shard: Path, written: str) -> None:
        """Removes the shard's oldest transcripts once it holds more than its share;
        never ``written``, the one just kept (a coarse clock may date it like older ones)."""
        with os.scandir(shard) as entries:
            names = [entry.name for entry in entries]
        if sum(not name.startswith(".") for name in names) <= self.per_shard:
            return
        dated, temps = [], []
        stale = time.time_ns() - STALE_TEMP_S * 10**9
        for name in names:
            try:
                mtime = os.stat(shard / name).st_mtime_ns
            except FileNotFoundError:
                continue  # another worker removed it meanwhile
            if name.startswith("."):
                temps += [name] if mtime < stale else []
            elif name != written:
                dated.append((mtime, name))
        dated.sort()
        keep = self.per_shard - self.per_shard // 10 - 1  # beside the one just written
        for name in [name for _, name in dated[:max(0, len(dated) - keep)]] + temps:
            (shard / name).unlink(missing_ok=True)
