"""The result files of a job, as response fields: inline base64 or URLs to stored copies.

``fields(files, storage, inline_limit, job_id)`` decides, for the job's files as a whole:

- storage configured (``storage`` not None): every file is uploaded, the response carries
  presigned GET URLs that expire after ``url_expires_s`` seconds;
- no storage and the base64 of all files fits ``inline_limit`` bytes: inline base64;
- no storage and it does not fit: :class:`OutputRefused` (``outputs.E001``), which the
  handler turns into ``{"error": ...}``; a result is never cut or dropped.

With ``inline_when_small=True`` a configured store is used only when the result does not
fit inline (over the limit, it is uploaded automatically).

The first file whose content type is ``audio/*`` is the audio; the others (timings) are
extra files. The fields:

- inline: ``{"audio": B64}`` and, when there are extra files, ``{"files": {NAME: B64}}``;
- stored: ``{"audio_url": URL, "url_expires_s": N}`` and ``{"file_urls": {NAME: URL}}``.

A failed upload raises :class:`bootstrap.storage.StorageError` (``storage.E00x``) after its
retries; the handler turns it into ``{"error": ...}`` too. Both errors have ``id``,
``to_dict()`` and a ``str`` of the form ``"<id>: <message>"``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from typing import Any

from bootstrap.kernel.message import Message, error
from bootstrap.storage import Storage

E001 = error("outputs.E001", "the result is {size} bytes of base64, over the {limit} bytes "
             "returned inline, and no storage is configured",
             "set BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY to "
             "return large results as URLs, or ask for shorter audio")

Files = Mapping[str, tuple[bytes, str]]  # name -> (bytes, content type)


class OutputRefused(Exception):
    """The result cannot be returned: too large to inline, and nowhere to store it."""

    def __init__(self, message: Message) -> None:
        super().__init__(f"{message.id}: {message.msg}")
        self.message = message

    @property
    def id(self) -> str:
        return self.message.id

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "msg": self.message.msg, "hint": self.message.hint}


def inline_size(files: Files) -> int:
    """Bytes the files take as base64 in the response (4 for every 3, padded)."""
    return sum(4 * ((len(data) + 2) // 3) for data, _ in files.values())


def safe_id(job_id: str) -> str:
    """The client's job id as one path segment (an object key's folder, a local file's
    name): ASCII letters, digits, ``-`` and ``_`` kept, anything else ``_``, at most 80."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_"
                   for c in job_id)[:80] or "job"


def _audio_name(files: Files) -> str:
    for name, (_, content_type) in files.items():
        if content_type.startswith("audio/"):
            return name
    raise ValueError(f"no audio/* file among {sorted(files)}")


def fields(files: Files, storage: Storage | None, inline_limit: int, job_id: str = "", *,
           inline_when_small: bool = False) -> dict[str, Any]:
    audio = _audio_name(files)
    size = inline_size(files)
    if storage is None or (inline_when_small and size <= inline_limit):
        if size > inline_limit:
            raise OutputRefused(E001.at(job_id or "result", size=size, limit=inline_limit))
        out: dict[str, Any] = {"audio": base64.b64encode(files[audio][0]).decode()}
        extra = {name: base64.b64encode(data).decode()
                 for name, (data, _) in files.items() if name != audio}
        if extra:
            out["files"] = extra
        return out
    # A job id is unique per endpoint; the random part keeps keys of local test jobs (all
    # "local_test") and of retried jobs apart, and unguessable.
    folder = f"{safe_id(job_id)}-{uuid.uuid4().hex[:12]}"
    urls = {name: storage.upload(f"{folder}/{name}", data, content_type)
            for name, (data, content_type) in files.items()}
    out = {"audio_url": urls.pop(audio), "url_expires_s": storage.settings.url_ttl_s}
    if urls:
        out["file_urls"] = urls
    return out
