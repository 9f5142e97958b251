"""Downloading one file from a plain URL onto the volume, safely for a fleet: what
huggingface_hub does not do (files on the Hugging Face Hub go through ``bootstrap.hub``).
The aligner's weights are such a file (torchaudio publishes MMS_FA's on its own host).

Workers that cold-start together would each fetch the same 1.35 GB checkpoint (and earn
429s doing it): a lease on the volume lets one download while the others wait and then
find the file. The body goes to a ``.partial`` name and is renamed into place only when
its size matches what the server declared, so a file at the final path is complete. Each
attempt has a time limit; transient failures (timeouts, 5xx, 429) are retried with backoff,
and 401/403/404 fail at once with what to do.

The lease is ``environment.lease``, the one the environment build uses: it does not rely on
``flock``, which network filesystems do not honour across hosts.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bootstrap.environment.lease import Lease, Owner
from bootstrap.kernel import backoff, events

CHUNK = 1 << 20
MAX_WAIT_S = 60.0  # the longest wait between attempts, a server's Retry-After included


@dataclass(frozen=True)
class Url:
    """A file at a plain URL (for weights that are not on the hub)."""

    address: str

    @property
    def repo(self) -> str:
        return urlsplit(self.address).netloc

    @property
    def filename(self) -> str:
        return self.address.rsplit("/", 1)[-1]


class DownloadError(Exception):
    """``kind`` is auth, forbidden, not_found, rate_limited, incomplete or failed."""

    def __init__(self, kind: str, detail: str, status: int = 0) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status


@dataclass(frozen=True)
class Policy:
    attempt_timeout_s: float = 900.0  # one attempt at one file, start to end
    read_timeout_s: float = 30.0  # silence on the socket
    retries: int = 4
    backoff_s: float = 2.0
    lease_stale_s: float = 120.0  # a holder whose lease has not changed this long is gone
    lease_wait_s: float = 1800.0


def _classify(exc: urllib.error.HTTPError) -> DownloadError:
    status = exc.code
    if status == 401:
        return DownloadError("auth", "401 Unauthorized: the repo needs a token", status)
    if status == 403:
        return DownloadError("forbidden", "403 Forbidden: the token has no access", status)
    if status == 404:
        return DownloadError("not_found", "404 Not Found", status)
    if status == 429:
        return DownloadError("rate_limited", "429 Too Many Requests", status)
    return DownloadError("failed", f"HTTP {status}", status)


def _retry_after(exc: urllib.error.HTTPError, default: float) -> float:
    value = exc.headers.get("Retry-After", "") if exc.headers else ""
    return min(float(value), MAX_WAIT_S) if value.isdigit() else default


class _Progress:
    """A progress event every 5 % or 5 s, whichever comes later, so logs stay readable."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.last_t, self.last_pct = name, total, 0.0, -5

    def __call__(self, done: int) -> None:
        pct = int(done * 100 / self.total) if self.total else 0
        now = time.monotonic()
        if (pct - self.last_pct >= 5 and now - self.last_t >= 5) or done == self.total:
            self.last_t, self.last_pct = now, pct
            events.emit("info", "download.progress", file=self.name, bytes=done,
                        total=self.total, pct=pct)


def _attempt(url: str, dest: Path, policy: Policy) -> int:
    partial = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    # No token: the hub's token is for the hub, and another host must never receive it.
    request = urllib.request.Request(url, headers={"User-Agent": "bootstrap-worker"})
    deadline = time.monotonic() + policy.attempt_timeout_s
    try:
        with urllib.request.urlopen(request, timeout=policy.read_timeout_s) as response, \
                open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            progress, done = _Progress(dest.name, total), 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                progress(done)
                if time.monotonic() > deadline:
                    raise DownloadError("failed", f"took over {policy.attempt_timeout_s:g} s")
            out.flush()
            os.fsync(out.fileno())
        if total and done != total:
            raise DownloadError("incomplete", f"got {done} of {total} bytes")
        os.replace(partial, dest)
        return done
    finally:
        partial.unlink(missing_ok=True)


def _fetch(remote: Url, dest: Path, policy: Policy) -> int:
    url = remote.address
    for attempt in range(policy.retries + 1):
        delay = backoff.wait_s(policy.backoff_s, attempt + 1, MAX_WAIT_S)
        try:
            return _attempt(url, dest, policy)
        except urllib.error.HTTPError as exc:
            error = _classify(exc)
            if error.kind in ("auth", "forbidden", "not_found") or attempt == policy.retries:
                raise error from None
            if error.kind == "rate_limited":
                delay = _retry_after(exc, delay)
        except DownloadError as exc:
            if attempt == policy.retries:
                raise
            error = exc
        except (urllib.error.URLError, OSError) as exc:  # timeouts, resets, DNS
            error = DownloadError("failed", f"{type(exc).__name__}: {exc}")
            if attempt == policy.retries:
                raise error from None
        events.emit("warn", "download.retry", file=remote.filename, attempt=attempt + 1,
                    of=policy.retries, reason=str(error), wait_s=delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


def lease_path(locks: Path, key: str) -> Path:
    """Where the lease for downloading ``key`` (a destination path) lives."""
    return locks / f"{_lease_name(key)}.lease"


def _lease_name(key: str) -> str:
    return f"download-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def ensure(remote: Url, dest: Path, locks: Path, worker_id: str,
           policy: Policy | None = None) -> int:
    """``dest`` present, downloaded from ``remote`` unless it is; the bytes fetched (0 if
    the file was already there or another worker fetched it)."""
    policy = policy or Policy()
    if dest.is_file():
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The same lease the environment build uses: one worker fetches, the others wait and
    # then find the file; a killed holder's lease is taken over.
    held = Lease(locks, _lease_name(str(dest)), Owner(worker_id),
                 timeout_s=policy.lease_stale_s)
    try:
        if not held.acquire(done=dest.is_file, wait_s=policy.lease_wait_s):
            return 0
    except TimeoutError as exc:
        raise DownloadError("failed", str(exc)) from None
    try:
        if dest.is_file():  # another worker finished while this one raced for the lease
            return 0
        # Under the lease nobody else writes here: a partial file is a killed worker's.
        for leftover in dest.parent.glob(f"{dest.name}.partial-*"):
            leftover.unlink(missing_ok=True)
        events.emit("info", "download.start", file=remote.filename, repo=remote.repo,
                    dest=str(dest))
        return _fetch(remote, dest, policy)
    finally:
        held.release()
