"""A model file from the Hugging Face Hub, found where it already is or downloaded once for
the fleet, through ``huggingface_hub`` and in its cache layout
(``models--ORG--NAME/{blobs,refs,snapshots}``), so that what ``hf download`` wrote is found
and what a boot downloads is found by every other tool.

Where a file is looked for, in order (``Found.source`` says which served it):

1. ``runpod-cache``: RunPod's cached models, placed on the host before the worker starts
   (the endpoint's "Model" setting) at ``/runpod-volume/huggingface-cache/hub``: no download
   and no billed time.
2. ``volume-cache``: the Hugging Face cache on the volume, where earlier boots (or a user's
   ``HF_HOME=<volume>/.cache/huggingface hf download ...``) put it.
3. ``downloaded``: ``hf_hub_download`` into the volume's cache, under a lease on the volume
   (``environment.lease``, which does not rely on ``flock``: network filesystems do not
   honour it across hosts), so workers that cold-start together fetch it once; the others
   wait and then find it (``waited``).

Looking in a cache asks the network nothing. huggingface_hub retries 429 and 5xx itself
(with the server's Retry-After); a failure that remains is retried here with backoff, and
401/403/404 and a full disk fail at once with what to do.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.environment.lease import Lease, Owner
from bootstrap.kernel import backoff, events

RUNPOD_CACHE = Path("/runpod-volume/huggingface-cache/hub")
DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_WAIT_S = 60.0


@dataclass(frozen=True)
class HubFile:
    repo: str
    filename: str
    revision: str = "main"

    def url(self) -> str:
        endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
        return f"{endpoint}/{self.repo}/resolve/{self.revision}/{self.filename}"


@dataclass(frozen=True)
class Found:
    path: Path  # the snapshot's entry: a link into blobs/, or the file itself
    source: str  # runpod-cache | volume-cache | downloaded | waited
    fetched: int = 0  # bytes this worker downloaded

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "path": str(self.path), "bytes": self.fetched}


class DownloadError(Exception):
    """``kind`` is auth, forbidden, not_found, rate_limited, disk_full or failed."""

    def __init__(self, kind: str, detail: str, status: int = 0) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status

    @property
    def transient(self) -> bool:
        return self.kind in ("rate_limited", "failed")


@dataclass(frozen=True)
class Policy:
    retries: int = 2  # ours, after huggingface_hub's own
    backoff_s: float = 2.0
    etag_timeout_s: float = 30.0
    lease_stale_s: float = 120.0  # a holder whose lease has not changed this long is gone
    lease_wait_s: float = 1800.0


def caches(volume_cache: Path, runpod_cache: Path = RUNPOD_CACHE) -> list[tuple[str, Path]]:
    """Where files are looked for, in order: RunPod's cached models, then the volume's."""
    return [("runpod-cache", runpod_cache), ("volume-cache", volume_cache)]


def cached(file: HubFile, cache_dir: Path) -> Path | None:
    """The file in a Hugging Face cache, without asking the network."""
    if not cache_dir.is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(file.repo, file.filename, cache_dir=str(cache_dir),
                                   revision=file.revision)
    if isinstance(found, str) and os.path.isfile(found):
        return Path(found)
    # A cache with snapshots but no refs/<revision> (copied by hand, or a pinned placement):
    # one snapshot holding the file is unambiguous.
    folder = cache_dir / f"models--{file.repo.replace('/', '--')}" / "snapshots"
    if file.revision == "main" and not (folder.parent / "refs" / "main").is_file():
        matches = [p for p in folder.glob(f"*/{file.filename}") if p.is_file()]
        if len(matches) == 1:
            return matches[0]
    return None


def find(file: HubFile, where: Sequence[tuple[str, Path]]) -> Found | None:
    for source, cache_dir in where:
        path = cached(file, cache_dir)
        if path is not None:
            return Found(path, source)
    return None


def _status(exc: BaseException) -> int:
    """The HTTP status behind a huggingface_hub error (it wraps some in others)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return int(response.status_code)
        seen = seen.__cause__ or seen.__context__
    return 0


def classify(exc: BaseException) -> DownloadError:
    from huggingface_hub import errors

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError("disk_full", f"no space left: {exc}")
    status = _status(exc)
    if isinstance(exc, errors.RemoteEntryNotFoundError) or status == 404:
        return DownloadError("not_found", "404 Not Found", status or 404)
    if isinstance(exc, errors.GatedRepoError) or status == 403:
        return DownloadError("forbidden", "403 Forbidden: the token has no access", 403)
    if status == 401 or isinstance(exc, errors.RepositoryNotFoundError):
        return DownloadError("auth", "401 Unauthorized: the repo needs a token", status or 401)
    if status == 429:
        return DownloadError("rate_limited", "429 Too Many Requests", status)
    if isinstance(exc, ValueError) and "disk space" in str(exc).lower():
        return DownloadError("disk_full", str(exc))  # huggingface_hub's own check
    detail = f"HTTP {status}" if status else f"{type(exc).__name__}: {str(exc)[:200]}"
    return DownloadError("failed", detail, status)


def _download(file: HubFile, cache_dir: Path, policy: Policy) -> Path:
    from huggingface_hub import hf_hub_download

    for attempt in range(policy.retries + 1):
        try:
            # token=None: huggingface_hub reads HF_TOKEN, and sends it to the hub only.
            return Path(hf_hub_download(file.repo, file.filename, revision=file.revision,
                                        cache_dir=str(cache_dir),
                                        endpoint=os.environ.get("HF_ENDPOINT") or None,
                                        etag_timeout=policy.etag_timeout_s))
        except Exception as exc:  # huggingface_hub's errors, httpx's, OSError
            error = classify(exc)
            if not error.transient or attempt == policy.retries:
                raise error from exc
        delay = backoff.wait_s(policy.backoff_s, attempt + 1, MAX_WAIT_S)
        events.emit("warn", "download.retry", file=file.filename, attempt=attempt + 1,
                    of=policy.retries, reason=str(error), wait_s=delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


def lease_name(file: HubFile) -> str:
    key = f"{file.repo}/{file.revision}/{file.filename}"
    return f"download-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def resolve(file: HubFile, where: Sequence[tuple[str, Path]], volume_cache: Path,
            locks: Path, worker_id: str, policy: Policy | None = None) -> Found:
    """The file from the first cache that holds it, else downloaded into ``volume_cache``
    by one worker of the fleet while the others wait on the lease."""
    policy = policy or Policy()
    found = find(file, where)
    if found is not None:
        return found
    held = Lease(locks, lease_name(file), Owner(worker_id), timeout_s=policy.lease_stale_s)
    try:
        took = held.acquire(done=lambda: cached(file, volume_cache) is not None,
                            wait_s=policy.lease_wait_s)
    except TimeoutError as exc:
        raise DownloadError("failed", str(exc)) from None
    try:
        path = cached(file, volume_cache)
        if path is not None:  # another worker finished while this one waited or raced
            return Found(path, "waited")
        if not took:
            raise DownloadError("failed", "the lease's holder ended without the file")
        events.emit("info", "download.start", file=file.filename, repo=file.repo,
                    dest=str(volume_cache))
        path = _download(file, volume_cache, policy)
        return Found(path, "downloaded", path.stat().st_size)
    finally:
        if took:
            held.release()


def go_offline() -> None:
    """Nothing reaches for the hub from here on: ``HF_HUB_OFFLINE`` for what imports
    huggingface_hub later, and its flag for this process, which read it when imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
