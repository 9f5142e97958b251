"""Voices in the bucket, in the replaced worker's layout: ``voices/<name>.wav``.

Every endpoint using the bucket shares them: a voice uploaded through one worker is heard
through all. The replaced worker kept no transcript beside a clip (its speech recognition
transcribed the clip at every use); this one keeps ``voices/<name>.txt`` once it has one,
so each clip is transcribed once. A voice without one has an empty text: the handler
transcribes it and calls :meth:`BucketVoices.keep_text`.

The bucket's voices are the operator's: a client (an ``upload``, a ``delete_voice``) may
store a new name, but replacing or deleting an existing one is refused unless the setting
``bucket_voice_changes`` is on (``BOOTSTRAP_BUCKET_VOICE_CHANGES``): one client's upload
must not change the voice every other endpoint's clients speak with.

A transcript the worker writes names the clip it was made from: the SHA-256 of the clip's
bytes travels as a parameter of the text object's content type (``clip-sha256=``), which S3
stores with the object in one write. A reader hashes the clip it read and ignores a text
made from another: a job that transcribed ``x.wav`` while another worker replaced it
writes its text late, and the next job must not pair the old text with the new clip. A
text without the parameter was placed by the operator and is trusted as it is.

Names are the clip's file name without ``.wav`` (``Kurt_12s`` for ``Kurt_12s.wav``); no
``/``, no leading dot, no ``..``: a name is one key segment, and cannot leave ``voices/``.
"""

from __future__ import annotations

import hashlib
import re

from bootstrap.storage import Storage, StorageError, Stored
from f5worker.voices import Voice, VoiceError

PREFIX = "voices/"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,99}$")


def valid(name: str) -> bool:
    return bool(NAME.fullmatch(name)) and ".." not in name


class BucketVoices:
    def __init__(self, storage: Storage, changes: bool = True) -> None:
        self.store = storage.rooted()
        self.changes = changes  # the worker's library sets it from bucket_voice_changes

    def _voice(self, name: str, found: Stored, text: str) -> Voice:
        return Voice(name, None, text, "bucket", key=found.key, size=found.size,
                     last_modified=found.last_modified, locked=not self.changes)

    def head(self, name: str) -> Stored | None:
        return self.store.head(f"{PREFIX}{name}.wav") if valid(name) else None

    def check_change(self, name: str) -> None:
        """Refuses replacing or deleting the voice ``name`` unless clients may."""
        if not self.changes:
            raise VoiceError(f"{name!r} is a voice in the bucket, shared by every endpoint "
                             "using it: clients may not replace or delete it (the operator "
                             "allows it with BOOTSTRAP_BUCKET_VOICE_CHANGES=1)")

    def page(self, limit: int, after: str = "") -> tuple[dict[str, Voice], str | None]:
        """At most ``limit`` voices, by name, after the voice ``after``; and the name to
        pass as ``after`` for the next page (None when this one reached the end). It reads
        as few list pages as that takes (a voice and its text are two keys)."""
        voices: dict[str, Voice] = {}
        start = f"{PREFIX}{after}.wav" if after else ""
        while True:
            want = 2 * (limit - len(voices)) + 1
            found = self.store.list(PREFIX, limit=want, after=start)
            for item in found:
                name = item.key[len(PREFIX):-4]
                if item.key.endswith(".wav") and valid(name):
                    voices[name] = self._voice(name, item, "")
                    if len(voices) == limit:
                        return voices, name
            if len(found) < want:
                return voices, None
            start = found[-1].key

    def all(self) -> dict[str, Voice]:
        """Every ``voices/*.wav``, by name; their texts are not read."""
        voices = {}
        for found in self.store.list(PREFIX):
            name = found.key[len(PREFIX):-4]
            if found.key.endswith(".wav") and valid(name):
                # Its text is read when the voice is used, not for a listing (one request
                # per voice).
                voices[name] = self._voice(name, found, "")
        return voices

    def get(self, name: str) -> Voice | None:
        """The voice, with an operator's text; one the worker made is checked against the
        clip's bytes, so only :meth:`read` gives it."""
        if not valid(name):
            return None
        found = self.store.head(f"{PREFIX}{name}.wav")
        if found is None:
            return None
        return self._voice(name, found, self._text(name, None))

    def read(self, name: str) -> tuple[Voice, bytes] | None:
        """The voice with its clip's bytes, and its text when made from those bytes."""
        voice = self.get(name)
        if voice is None:
            return None
        try:
            data = self.store.read(f"{PREFIX}{name}.wav")
        except StorageError:
            if self.store.head(f"{PREFIX}{name}.wav") is None:
                return None  # deleted between the two calls
            raise
        text = self._text(name, hashlib.sha256(data).hexdigest())
        return self._voice(name, voice_found(voice), text), data

    def _text(self, name: str, digest: str | None) -> str:
        found = self.store.head(f"{PREFIX}{name}.txt")
        if found is None:
            return ""
        made_from = clip_digest(found.content_type)
        if made_from is not None and made_from != digest:  # None: not checked
            return ""  # made from a clip since replaced: transcribed anew
        return self.store.read(f"{PREFIX}{name}.txt").decode("utf-8", "replace").strip()

    def add(self, name: str, wav: bytes, text: str) -> tuple[Voice, bool]:
        """Stores ``voices/<name>.wav`` (and its text, when known), replacing one of that
        name as the replaced worker did; returns the voice and whether it replaced one.
        A replaced clip's old text is removed: it described the old clip."""
        replaced = self.store.head(f"{PREFIX}{name}.wav") is not None
        if replaced:
            self.check_change(name)
        self.store.upload(f"{PREFIX}{name}.wav", wav, "audio/wav")
        if text:
            self.keep_text(name, text, hashlib.sha256(wav).hexdigest())
        elif replaced:
            self.store.delete(f"{PREFIX}{name}.txt")
        found = self.store.head(f"{PREFIX}{name}.wav")
        assert found is not None, "just uploaded"
        return self._voice(name, found, text), replaced

    def keep_text(self, name: str, text: str, digest: str | None = None) -> None:
        """Keeps ``text`` as the transcript of the clip whose bytes hash to ``digest``
        (None: as an operator's text, trusted whatever the clip)."""
        made_from = f"; clip-sha256={digest}" if digest else ""
        self.store.upload(f"{PREFIX}{name}.txt", text.encode(),
                          f"text/plain; charset=utf-8{made_from}")

    def delete(self, name: str) -> bool:
        """False when there was no such voice."""
        if self.store.head(f"{PREFIX}{name}.wav") is None:
            return False
        self.check_change(name)
        self.store.delete(f"{PREFIX}{name}.wav")
        self.store.delete(f"{PREFIX}{name}.txt")
        return True


def clip_digest(content_type: str) -> str | None:
    """The ``clip-sha256`` parameter of a transcript's content type, if any."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key == "clip-sha256":
            return value
    return None


def voice_found(voice: Voice) -> Stored:
    assert voice.key is not None and voice.size is not None, "a bucket voice"
    return Stored(voice.key, voice.size, voice.last_modified or "")
