"""The voice library: named reference voices a job can speak with.

Four places hold voices, read on every request (other workers share the volume and may
have added one since this worker booted):

- **bundled**: ``NAME.wav`` + ``NAME.txt`` in the image (``voices_bundled``); read-only.
- **provisioned**: ``NAME.wav`` + ``NAME.txt`` copied onto the volume's voices directory by
  an operator (the model stage puts F5-TTS's ``default`` voice there); not deletable
  through jobs, because someone placed them on purpose.
- **added**: voices added by ``add_voice`` jobs, one directory each:
  ``<voices>/NAME/voice.json`` (reference text, facts, and the name of its audio file,
  ``voice-<id>.flac``, unique to that publication: mono, at the model's rate, as the
  handler stores it).

An added voice is built in ``<voices>/.staging/`` and published by renaming its directory
into place: a directory rename is atomic on one filesystem, so a reader sees the whole
voice or none of it, and two workers adding the same name cannot both win (renaming onto a
non-empty directory fails). Replacing puts the new audio into the voice's directory under
its own file name, then swaps ``voice.json`` with a file rename (atomic too); the staged
copy is kept until that rename, so a replacement racing a delete can still publish anew.
- **bucket**: with a bucket configured, ``voices/NAME.wav`` in it, the replaced worker's
  layout, shared by every endpoint using that bucket (``f5worker.bucket_voices``).

A name found in several places is the first of: bundled, provisioned, added, bucket.

Because each publication's audio has its own file name, a reader that read the text of one
publication can never open the audio of the next: :meth:`VoiceLibrary.read` gets a
matching pair or tries again. Deleting moves the directory aside (``.trash``) in one rename.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap.kernel.config import Config
from f5worker import settings

if TYPE_CHECKING:
    from f5worker.bucket_voices import BucketVoices

META = "voice.json"
STAGING = ".staging"
TRASH = ".trash"
# Staged voices left by a worker killed mid-add are removed after this long.
STALE_S = 3600.0
# Audio not named by its voice.json (left by racing replacements) is removed after this long.
ORPHAN_S = 600.0


class VoiceError(Exception):
    """A voice operation that cannot be done; the message is what the client sees."""


@dataclass(frozen=True)
class Voice:
    name: str
    audio: Path | None  # None for a voice in the bucket: ``key`` names it there
    text: str  # "" for a bucket voice without a transcript yet
    source: str  # bundled | provisioned | added | bucket
    duration_s: float | None = None
    key: str | None = None
    size: int | None = None
    last_modified: str | None = None
    locked: bool = False  # a bucket voice clients may not replace or delete

    @property
    def deletable(self) -> bool:
        return self.source in ("added", "bucket") and not self.locked

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "ref_text": self.text, "duration_s": self.duration_s,
                "source": self.source, "deletable": self.deletable}


def _flat(folder: Path, source: str) -> dict[str, Voice]:
    """Voices stored as ``NAME.wav`` with their reference text in ``NAME.txt``."""
    found = (_flat_one(folder, wav.stem, source)
             for wav in (sorted(folder.glob("*.wav")) if folder.is_dir() else ()))
    return {voice.name: voice for voice in found if voice is not None}


def _flat_one(folder: Path, name: str, source: str) -> Voice | None:
    wav = folder / f"{name}.wav"
    try:
        text = (folder / f"{name}.txt").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError):
        return None  # no text, no voice: F5-TTS needs to know what the reference says
    return Voice(name, wav, text, source) if text and wav.is_file() else None


def _added_one(entry: Path) -> Voice | None:
    # A voice.json naming audio that is gone was replaced between the two reads: the
    # newer voice.json names audio that exists, so read it again.
    for _ in range(5):
        try:
            meta = json.loads((entry / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # not a published voice (published directories always hold both)
        audio = meta.get("audio") if isinstance(meta, dict) else None
        if not isinstance(audio, str) or "/" in audio or not isinstance(meta.get("text"), str):
            return None
        path = entry / audio
        if path.is_file():
            return Voice(entry.name, path, meta["text"], "added", meta.get("duration_s"))
    return None


def _added(folder: Path) -> dict[str, Voice]:
    voices = {}
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        if not entry.name.startswith(".") and entry.is_dir():
            voice = _added_one(entry)
            if voice is not None:
                voices[entry.name] = voice
    return voices


def _copy_synced(source: Path, dest: Path) -> None:
    with open(source, "rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())


def library(config: Config, bucket: BucketVoices | None = None) -> VoiceLibrary:
    """The library a worker with ``config`` reads: the volume's voices, the image's, and
    the bucket's when one is configured."""
    own = settings.of(config)
    if bucket is not None:
        bucket.changes = own.bucket_voice_changes  # the ownership rule (bucket_voices)
    return VoiceLibrary(config.on_volume(own.model_voices), own.voices_bundled, bucket)


class VoiceLibrary:
    def __init__(self, volume_dir: Path, bundled_dir: Path | None = None,
                 bucket: BucketVoices | None = None) -> None:
        self.volume_dir = volume_dir
        self.bundled_dir = bundled_dir
        self.bucket = bucket

    def all(self) -> dict[str, Voice]:
        """Every voice by name. A bundled voice wins over a provisioned one of the same
        name, both over an added one (``add`` refuses those names anyway), and all three
        over one in the bucket."""
        voices = self.bucket.all() if self.bucket is not None else {}
        voices.update(self.local())
        return dict(sorted(voices.items()))

    def local(self) -> dict[str, Voice]:
        """The voices on this worker (bundled, provisioned, added), by name."""
        voices = _added(self.volume_dir)
        voices.update(_flat(self.volume_dir, "provisioned"))
        if self.bundled_dir is not None:
            voices.update(_flat(self.bundled_dir, "bundled"))
        return dict(sorted(voices.items()))

    def page(self, limit: int, after: str = "") -> tuple[dict[str, Voice], str | None]:
        """One page of the library: the first (``after`` empty) holds every local voice
        and the bucket's first ``limit``; each next one the bucket's ``limit`` after
        ``after``. Returns the page and the ``after`` of the next (None at the end). The
        bucket may hold tens of thousands of voices: a page costs one or two list calls."""
        voices = self.local() if not after else {}
        if self.bucket is None:
            return voices, None
        bucket, following = self.bucket.page(limit, after)
        return {**bucket, **voices}, following

    def _local(self, name: str) -> Voice | None:
        if self.bundled_dir is not None:
            voice = _flat_one(self.bundled_dir, name, "bundled")
            if voice is not None:
                return voice
        if "/" in name or name.startswith("."):
            return None
        return (_flat_one(self.volume_dir, name, "provisioned")
                or _added_one(self.volume_dir / name))

    def get(self, name: str) -> Voice | None:
        """One voice, looked up by its own files (not a scan: the library may hold a
        thousand voices on a network volume), with the precedence of :meth:`all`."""
        voice = self._local(name)
        if voice is None and self.bucket is not None:
            return self.bucket.get(name)
        return voice

    def read(self, name: str) -> tuple[Voice, bytes] | None:
        """The voice and its audio, from one publication; None when there is no such
        voice. An audio file gone between the two reads was replaced or deleted: read
        again and the answer is the newer voice or none."""
        for _ in range(5):
            voice = self.get(name)
            if voice is None:
                return None
            if voice.audio is None:
                assert self.bucket is not None, "only the bucket has voices without a file"
                return self.bucket.read(name)
            try:
                return voice, voice.audio.read_bytes()
            except FileNotFoundError:
                continue
        return None

    def check_upload(self, name: str, cap: int) -> None:
        """Refuses, before anything is fetched, a bucket upload that would not be heard (a
        local voice of that name wins), one that would replace a voice clients may not
        change, and a new name once the bucket holds ``cap`` voices (``add_voice``'s cap:
        one for both dialects; counting stops at the cap, a list call or two)."""
        local = self._local(name)
        if local is not None:
            raise VoiceError(f"{name!r} is a {local.source} voice on this worker: an upload "
                             "of that name would never be spoken; choose another name")
        if self.bucket is None:
            return
        if self.bucket.head(name) is not None:
            self.bucket.check_change(name)
        elif len(self.bucket.page(cap)[0]) >= cap:
            raise VoiceError(f"the bucket holds {cap} voices or more, the most clients may "
                             "add; an operator removes some first")

    def add(self, name: str, audio: bytes, text: str, facts: dict[str, Any],
            overwrite: bool = False, suffix: str = ".flac") -> tuple[Voice, bool]:
        """Publishes a voice (``audio``, a file ending in ``suffix``, already validated);
        returns it and whether it replaced one."""
        existing = self.get(name)
        if existing and not existing.deletable:
            raise VoiceError(f"{name!r} is a {existing.source} voice and cannot be replaced")
        if existing and not overwrite:
            raise VoiceError(f"{name!r} exists; set overwrite to true to replace it")
        staged, audio_name = self._stage(name, audio, text, facts, suffix)
        voice = Voice(name, self.volume_dir / name / audio_name, text, "added",
                      facts.get("duration_s"))
        try:
            for _ in range(5):
                if self._publish_new(staged, name):
                    return voice, False
                if not overwrite:
                    raise VoiceError(f"{name!r} was added by another job at the same time; "
                                     "set overwrite to true to replace it")
                if self._replace(staged, name, audio_name):
                    return voice, True
                # deleted by another job between the two attempts: publish it anew
            raise VoiceError(f"{name!r} is being changed by other jobs; try again")
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _publish_new(self, staged: Path, name: str) -> bool:
        """A directory rename: atomic, and it fails when the name is taken."""
        try:
            os.rename(staged, self.volume_dir / name)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise
        return True

    def _replace(self, staged: Path, name: str, audio: str) -> bool:
        """Swaps in the staged voice's audio and then its voice.json, a file rename that
        replaces the old one atomically; False when the voice's directory is gone."""
        target = self.volume_dir / name
        try:
            previous = json.loads((target / META).read_text(encoding="utf-8")).get("audio")
        except (OSError, ValueError):
            previous = None
        try:
            # A copy, not a move: if a delete takes the directory away before voice.json
            # lands, the staged voice must still be whole to be published anew.
            _copy_synced(staged / audio, target / audio)
            os.replace(staged / META, target / META)
        except FileNotFoundError:
            return False
        # Readers holding the old voice.json find its audio gone and read again.
        if isinstance(previous, str) and previous != audio and "/" not in previous:
            (target / previous).unlink(missing_ok=True)
        # Two replacements that read the same previous voice.json leave one audio named by
        # neither; it goes once it is old enough not to be a replacement in progress.
        cutoff = time.time() - ORPHAN_S
        for orphan in target.glob("voice-*"):
            try:
                if orphan.name != audio and orphan.stat().st_mtime < cutoff:
                    orphan.unlink()
            except FileNotFoundError:
                pass
        return True

    def delete(self, name: str) -> Voice:
        voice = self.get(name)
        if voice is None:
            raise VoiceError(f"no voice {name!r}")
        if voice.source == "bucket":
            assert self.bucket is not None, "a bucket voice comes from the bucket"
            self.bucket.check_change(name)
        if not voice.deletable:
            raise VoiceError(f"{name!r} is a {voice.source} voice and cannot be deleted")
        if voice.source == "bucket":
            assert self.bucket is not None, "a bucket voice comes from the bucket"
            if not self.bucket.delete(name):
                raise VoiceError(f"no voice {name!r} (deleted by another job)")
            return voice
        if not self._discard(self.volume_dir / name):
            raise VoiceError(f"no voice {name!r} (deleted by another job)")
        return voice

    def _stage(self, name: str, data: bytes, text: str, facts: dict[str, Any],
               suffix: str) -> tuple[Path, str]:
        """A complete voice directory under staging, and its audio file's name."""
        staging = self.volume_dir / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        self._sweep(staging)
        publication = uuid.uuid4().hex[:12]
        folder = staging / f"{name}.{publication}"
        folder.mkdir()
        audio = f"voice-{publication}{suffix}"
        meta = {"name": name, "text": text, "audio": audio, "added_at": time.time(), **facts}
        # The audio first: a voice.json always names a file that is complete.
        for file, content in ((audio, data), (META, json.dumps(meta, indent=1).encode())):
            with open(folder / file, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())  # a network volume must hold the bytes before the rename
        return folder, audio

    def _discard(self, folder: Path) -> bool:
        """Moves ``folder`` out of sight in one rename, then deletes it; False when another
        job moved it first."""
        trash = self.volume_dir / TRASH
        trash.mkdir(parents=True, exist_ok=True)
        aside = trash / f"{folder.name}.{uuid.uuid4().hex[:12]}"
        try:
            os.rename(folder, aside)
        except FileNotFoundError:
            return False
        shutil.rmtree(aside, ignore_errors=True)
        return True

    def _sweep(self, staging: Path) -> None:
        """Removes what workers killed mid-add or mid-delete left behind."""
        cutoff = time.time() - STALE_S
        trash = self.volume_dir / TRASH
        for leftover in [*staging.iterdir(), *(trash.iterdir() if trash.is_dir() else ())]:
            try:
                if leftover.stat().st_mtime < cutoff:
                    shutil.rmtree(leftover, ignore_errors=True)
            except FileNotFoundError:
                pass
