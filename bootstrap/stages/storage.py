"""storage: the object store for outputs works before the first request needs it.

Without this stage a wrong key or a missing bucket shows up as the first client's failed
job, long after boot said "ready". When storage is configured (``bootstrap.storage``), the
endpoint must answer, the bucket must exist, and a probe object must be written, read back
through a presigned URL (what clients will use) and deleted. Not configured: skipped with a
note, and outputs are inline only. The verified store is handed to the handler in
``ctx.storage``.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.error
import urllib.request

from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, error, info, warning
from bootstrap.kernel.output import Output
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed
from bootstrap.storage import Storage, StorageError

STORAGE: Output[Storage] = Output("storage", __name__)  # the bucket, when one is configured

I001 = info("storage.I001", "no storage configured: outputs are returned inline only",
            "set BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY to "
            "return large outputs as URLs")
I002 = info("storage.I002", "bucket {bucket} at {endpoint}: write, read, delete ok", "")
W001 = warning("storage.W001", "bucket {bucket} is rp_upload's month default (MM-YY)",
               "set BUCKET_NAME: this worker keeps {bucket}, the next month's workers will not")
W002 = warning("storage.W002", "storage configured from the replaced worker's settings: "
               "S3_BUCKET -> BUCKET_NAME, AWS_ACCESS_KEY_ID -> BUCKET_ACCESS_KEY_ID, "
               "AWS_SECRET_ACCESS_KEY -> BUCKET_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL (or AWS S3 "
               "in AWS_REGION) -> BUCKET_ENDPOINT_URL",
               "nothing to do; set the BUCKET_* variables to drop the mapping "
               "(docs/migrating.md)")
E008 = error("storage.E008", "the probe object read back differs: {got} of {sent} bytes",
             "the store or a proxy in between alters objects; the cause says how")
E009 = error("storage.E009", "the presigned URL does not serve the probe: {reason}",
             "URLs are signed for {endpoint} in region {region}; check BUCKET_ENDPOINT_URL "
             "and AWS_REGION")

PROBE = b"bootstrap storage probe\n" * 64


def _configured(ctx: Context) -> Storage | None:
    try:
        return Storage.from_env()
    except StorageError as exc:
        raise StageFailed(exc.message, exc.cause) from None


def _notes(storage: Storage) -> list[Message]:
    s = storage.settings
    notes = []
    if s.names != "BUCKET_*":
        notes.append(W002.at("S3_BUCKET"))
    if s.bucket_source == "month default":
        notes.append(W001.at(s.bucket, bucket=s.bucket))
    return notes


def check(ctx: Context) -> list[Message]:
    """Configuration, endpoint and bucket; nothing is written (``bootstrap check``)."""
    try:
        storage = Storage.from_env()
        if storage is None:
            return [I001.at("BUCKET_ENDPOINT_URL")]
        storage.check_bucket()
    except StorageError as exc:
        return [exc.message]
    return _notes(storage)


def run(ctx: Context) -> Outcome:
    storage = _configured(ctx)
    if storage is None:
        STORAGE.set(ctx, None)
        return Outcome(messages=[I001.at("BUCKET_ENDPOINT_URL")], skipped=True)
    s = storage.settings
    started = time.monotonic()
    # Unique per boot: workers of one endpoint boot together against the same bucket.
    key = f".bootstrap-probe/{ctx.worker_id}-{ctx.run_id}-{os.getpid()}"
    try:
        # No HEAD of the bucket first: a PUT's refusal names its reason (NoSuchBucket,
        # SignatureDoesNotMatch) where a HEAD's has only a status.
        url = storage.upload(key, PROBE, "application/octet-stream")
    except StorageError as exc:
        raise StageFailed(exc.message, exc.cause) from None
    try:
        got = _fetch(url, storage)
    finally:  # a boot that fails on its URL must not leave its probe in the bucket
        with contextlib.suppress(StorageError):
            storage.delete(key)
    if got != PROBE:
        raise StageFailed(E008.at(storage.key(key), got=len(got), sent=len(PROBE)),
                          cause=f"first bytes read back: {got[:40]!r}")
    STORAGE.set(ctx, storage)
    facts = {"endpoint": s.endpoint, "bucket": s.bucket, "bucket_source": s.bucket_source,
             "prefix": s.prefix, "url_ttl_s": s.url_ttl_s,
             "round_trip_ms": int((time.monotonic() - started) * 1000)}
    return Outcome(facts=facts, messages=[I002.at(s.bucket, bucket=s.bucket,
                                                  endpoint=s.endpoint), *_notes(storage)])


def _fetch(url: str, storage: Storage) -> bytes:
    """The probe through its presigned URL: a URL signed for the wrong region or host fails
    here, at boot, rather than in every client."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError) as exc:
        # The URL itself is left out: its signature is a credential for a week.
        s = storage.settings
        raise StageFailed(E009.at(s.bucket, reason=str(exc)[:200], endpoint=s.endpoint,
                                  region=s.region)) from None


STAGE = Stage(name="storage", run=run, check=check, side=Side.WORKER,
              exit_code=ExitCode.STORAGE, deadline_s=120)
