"""Transcripts of references, kept on the volume so a reference is transcribed once.

A job that sends a reference without its text has it transcribed (f5worker.transcriber);
the next job with the same reference bytes finds the transcript here, by the bytes'
SHA-256, on any worker sharing the volume. One small file per reference, sharded by the
hash's first two hex digits. Writes go to a private temporary name and are renamed into
place, so a reader sees a whole transcript or none, and two workers writing the same one
at once leave one of their two (identical) files.

Nothing is evicted: a transcript is a few hundred bytes.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from bootstrap.kernel.config import Config

_SHA256 = re.compile(r"[0-9a-f]{64}")
# A transcript of a reference F5-TTS can use (~12 s) is far shorter; a larger file is not
# one this cache wrote.
MAX_BYTES = 64 << 10


def default_dir(config: Config) -> Path:
    return config.volume / ".cache" / "transcripts"


class TranscriptCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def of(cls, config: Config) -> TranscriptCache:
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
        """Keeps ``text`` for these reference bytes (replacing any kept before)."""
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
