"""The object store: an S3-compatible bucket that holds outputs too large to return inline.

Configured from the environment with the names RunPod's own ``rp_upload`` reads
(``BUCKET_ENDPOINT_URL``, ``BUCKET_ACCESS_KEY_ID``, ``BUCKET_SECRET_ACCESS_KEY``), so an
endpoint already set up for RunPod workers needs nothing new. The bucket is ``BUCKET_NAME``,
else the first label of an AWS-style virtual-host endpoint (``https://NAME.s3.REGION...``) or
the first path segment of a path-style one (``https://host/NAME``), else rp_upload's own
default, the month (``MM-YY``), fixed once when the worker starts.

The plain S3 names older workers used (``S3_BUCKET``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``; docs/migrating.md) are used
when no ``BUCKET_*`` variable is set, so their endpoints keep their settings; the storage
stage warns that it mapped them. Half of either set is a failure with an id, never a
silent switch to inline results.

Every failure is a :class:`StorageError` with an id (``storage.E00x``), never an empty
result. Transient failures (no connection, 5xx, throttling) are retried with backoff; a
refused credential or a missing bucket is not, since it will not fix itself. boto3 is
imported only when storage is configured: the boot path of a worker without it stays light.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from bootstrap.kernel import backoff, events
from bootstrap.kernel.message import Message, error
from bootstrap.kernel.redaction import MASK

ENDPOINT = "BUCKET_ENDPOINT_URL"
ACCESS_KEY = "BUCKET_ACCESS_KEY_ID"
SECRET_KEY = "BUCKET_SECRET_ACCESS_KEY"
BUCKET = "BUCKET_NAME"
PREFIX = "BOOTSTRAP_STORAGE_PREFIX"
URL_TTL = "BOOTSTRAP_STORAGE_URL_TTL_S"
ATTEMPTS = "BOOTSTRAP_STORAGE_ATTEMPTS"
BACKOFF = "BOOTSTRAP_STORAGE_BACKOFF_S"
# SigV4 presigned URLs live at most 7 days; rp_upload uses exactly that.
MAX_URL_TTL_S = 7 * 24 * 3600
# A URL is a credential for its object: an hour, as the replaced worker's URLs lived.
DEFAULT_URL_TTL_S = 3600
MAX_WAIT_S = 30.0  # the longest single wait between attempts
# The replaced worker's settings, each with the BUCKET_* name it stands for.
OLD_NAMES = {"S3_BUCKET": BUCKET, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
             "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_ENDPOINT_URL": ENDPOINT}
OLD_REQUIRED = ("S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

E001 = error("storage.E001", "storage is half-configured: {missing} not set",
             "set BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY "
             "together, or none of them")
E010 = error("storage.E010", "the replaced worker's storage settings are half given: "
             "{missing} not set",
             "set S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY together (AWS_REGION "
             "and AWS_ENDPOINT_URL are optional), or use the BUCKET_* variables instead")
E002 = error("storage.E002", "{name}={value!r} cannot be used: {why}",
             "fix or unset {name}")
E003 = error("storage.E003", "the store at {endpoint} refuses the credentials ({code})",
             "check BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY, and that the key may "
             "write to bucket {bucket}")
E004 = error("storage.E004", "bucket {bucket!r} does not exist at {endpoint}",
             "create the bucket, or set BUCKET_NAME to an existing one")
E005 = error("storage.E005", "cannot reach the store at {endpoint} ({attempts} attempts)",
             "check BUCKET_ENDPOINT_URL (scheme, host, port) and the worker's network")
E006 = error("storage.E006", "{op} failed {attempts} times: {code}",
             "the store answered with errors (5xx, throttling); the cause holds the last one")
E007 = error("storage.E007", "the store refused {op}: {code}",
             "a permanent refusal (4xx) of this request; the cause holds the store's answer")

# Error codes S3 and its look-alikes answer for a moment of overload; retried.
TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                             "RequestLimitExceeded", "InternalError", "ServiceUnavailable",
                             "TooManyRequests", "503", "500", "502", "504",
                             # the body arrived damaged or short (Content-MD5): send it again
                             "BadDigest", "IncompleteBody"})
# The credentials are wrong: another try signs the same way and is refused the same way.
CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                              "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed",
                              "403", "401"})
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket"})
AWS_VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.-]*?)\.(?P<rest>s3[.-].+)$")

T = TypeVar("T")


class StorageError(Exception):
    """A named storage failure: ``message`` says what and what to do, ``cause`` says why."""

    def __init__(self, message: Message, cause: str = "") -> None:
        super().__init__(f"{message.id}: {message.msg}")
        self.message = message
        self.cause = cause
        # The operation that failed and the key as stored, for a truthful refusal.
        self.op = ""
        self.key = ""

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def hint(self) -> str:
        return self.message.hint

    def to_dict(self) -> dict[str, str]:
        out = {"id": self.id, "msg": self.message.msg, "hint": self.hint}
        if self.cause:
            out["cause"] = self.cause
        return out


@dataclass(frozen=True)
class Settings:
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str
    # Where the bucket name came from: BUCKET_NAME, "endpoint URL" or "month default".
    bucket_source: str
    region: str = "us-east-1"
    prefix: str = "outputs"
    url_ttl_s: int = DEFAULT_URL_TTL_S
    attempts: int = 4
    backoff_s: float = 0.5
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    # "BUCKET_*", or "S3_BUCKET/AWS_*" when the replaced worker's names were mapped.
    names: str = "BUCKET_*"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings | None:
        """The settings in ``environ`` (default ``os.environ``); None when storage is not
        configured at all; :class:`StorageError` when it is only partly, or badly."""
        env = os.environ if environ is None else environ
        names = (ENDPOINT, ACCESS_KEY, SECRET_KEY)
        given = [name for name in names if env.get(name, "").strip()]
        if not given:
            if env.get(BUCKET, "").strip():
                raise StorageError(E001.at(BUCKET, missing=", ".join(names)))
            mapped = _old_names(env)
            if mapped is None:
                return None
            settings = cls.from_env(mapped)
            assert settings is not None, "the mapped names are all set"
            return replace(settings, names="S3_BUCKET/AWS_*")
        if len(given) < len(names):
            missing = ", ".join(name for name in names if name not in given)
            raise StorageError(E001.at(missing, missing=missing))
        endpoint, bucket, source = _bucket_of(env[ENDPOINT].strip(), env.get(BUCKET, "").strip())
        return cls(
            endpoint=endpoint, access_key=env[ACCESS_KEY].strip(),
            secret_key=env[SECRET_KEY].strip(), bucket=bucket, bucket_source=source,
            region=_region_of(env[ENDPOINT].strip(), env),
            prefix=env.get(PREFIX, "outputs").strip().strip("/"),
            url_ttl_s=int(_number(env, URL_TTL, DEFAULT_URL_TTL_S, 1, MAX_URL_TTL_S)),
            attempts=int(_number(env, ATTEMPTS, 4, 1, 20)),
            backoff_s=_number(env, BACKOFF, 0.5, 0, 60),
        )


def _old_names(env: Mapping[str, str]) -> dict[str, str] | None:
    """``env`` with the replaced worker's settings under the BUCKET_* names; None when
    none of them is set. Without ``AWS_ENDPOINT_URL`` the store is AWS S3 in
    ``AWS_REGION`` (default us-east-1), as boto3 chose for that worker."""
    given = [name for name in OLD_REQUIRED if env.get(name, "").strip()]
    if not given:
        return None
    if len(given) < len(OLD_REQUIRED):
        missing = ", ".join(name for name in OLD_REQUIRED if name not in given)
        raise StorageError(E010.at(missing, missing=missing))
    mapped = dict(env)
    for old, new in OLD_NAMES.items():
        if env.get(old, "").strip():
            mapped[new] = env[old].strip()
    region = env.get("AWS_REGION", "").strip() or "us-east-1"
    mapped.setdefault(ENDPOINT, f"https://s3.{region}.amazonaws.com")
    return mapped


def _number(env: Mapping[str, str], name: str, default: float, low: float,
            high: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise StorageError(E002.at(name, name=name, value=text, why="not a number")) from None
    if not low <= value <= high:
        raise StorageError(E002.at(name, name=name, value=text,
                                   why=f"outside {low:g}..{high:g}"))
    return value


def _bucket_of(endpoint_url: str, explicit: str) -> tuple[str, str, str]:
    """(endpoint without the bucket, bucket, where the bucket name came from)."""
    url = urllib.parse.urlsplit(endpoint_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise StorageError(E002.at(ENDPOINT, name=ENDPOINT, value=endpoint_url,
                                   why="not an http(s) URL"))
    base = f"{url.scheme}://{url.netloc}"
    path = url.path.strip("/")
    host = AWS_VIRTUAL_HOST.match(url.netloc)
    if path:
        endpoint, found = base, path.split("/")[0]
    elif host:
        endpoint, found = f"{url.scheme}://{host['rest']}", host["bucket"]
    else:
        endpoint, found = base, ""
    if explicit:
        # The endpoint loses the bucket only when it names this same bucket.
        return (endpoint if found == explicit else endpoint_url), explicit, BUCKET
    if found:
        return endpoint, found, "endpoint URL"
    # rp_upload's default. Fixed once per worker, so the boot check and every upload agree
    # on the bucket even when a month ends while the worker serves.
    return base, time.strftime("%m-%y"), "month default"


# s3.REGION.amazonaws.com, s3-REGION.amazonaws.com, s3.dualstack.REGION.amazonaws.com,
# each possibly after "BUCKET."; plain s3.amazonaws.com names no region.
_AWS_HOST = re.compile(r"(?:^|\.)s3[.-](?:dualstack\.)?(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
                       r"\.amazonaws\.com$")


def _region_of(endpoint: str, env: Mapping[str, str]) -> str:
    """The region in an AWS endpoint's host name (virtual-host or path style, dual-stack
    or not) or a DigitalOcean Spaces one, then the usual AWS variables; SigV4 signs with a
    region even where the store ignores it, and a wrong one is refused like a wrong key."""
    host = (urllib.parse.urlsplit(endpoint).hostname or "").lower()
    aws = _AWS_HOST.search(host)
    if aws:
        return aws.group("region")
    if host.endswith(".digitaloceanspaces.com"):  # [bucket.]REGION.digitaloceanspaces.com
        return host.split(".")[-3]
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass(frozen=True)
class Stored:
    """An object in the bucket: its key (under the prefix), size and time."""

    key: str
    size: int
    last_modified: str  # ISO 8601, UTC
    content_type: str = ""


def _list_page(client: Any, bucket: str, prefix: str, more: dict[str, Any]) -> Any:
    return client.list_objects_v2(Bucket=bucket, Prefix=prefix, **more)


def _iso(when: Any) -> str:
    return str(when.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"))


class Storage:
    """The bucket, through one boto3 client made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Storage | None:
        settings = Settings.from_env(environ)
        return None if settings is None else cls(settings)

    def key(self, name: str) -> str:
        return f"{self.settings.prefix}/{name}" if self.settings.prefix else name

    def upload(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` at ``key`` (under the prefix) and return a presigned GET URL that
        lives ``url_ttl_s``. Content-MD5 makes the store refuse a body that arrives short,
        so a retried upload is either complete or an error."""
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        full = self.key(key)
        started = time.monotonic()
        self._call("upload", full, lambda client: client.put_object(
            Bucket=self.settings.bucket, Key=full, Body=data, ContentType=content_type,
            ContentMD5=md5))
        events.emit("info", "storage.upload", key=full, bytes=len(data),
                    ms=int((time.monotonic() - started) * 1000))
        return self.url(key)

    def url(self, key: str) -> str:
        """A presigned GET URL for ``key``; signing is local, nothing is sent."""
        url: str = self._client_now().generate_presigned_url(
            "get_object", Params={"Bucket": self.settings.bucket, "Key": self.key(key)},
            ExpiresIn=self.settings.url_ttl_s)
        return url

    def read(self, key: str) -> bytes:
        full = self.key(key)
        body: bytes = self._call("read", full, lambda client: client.get_object(
            Bucket=self.settings.bucket, Key=full)["Body"].read())
        return body

    def delete(self, key: str) -> None:
        full = self.key(key)
        self._call("delete", full, lambda client: client.delete_object(
            Bucket=self.settings.bucket, Key=full))

    def rooted(self) -> Storage:
        """The same bucket and client, with keys taken from the bucket's root (for an app
        that keeps a layout its clients already know)."""
        other = Storage(replace(self.settings, prefix=""))
        other._client = self._client_now()
        return other

    def head(self, key: str) -> Stored | None:
        """What is stored at ``key``; None when nothing is. Through the same retries and
        named errors as every call: only "not found" is an answer rather than a failure."""
        from botocore.exceptions import ClientError

        full = self.key(key)

        def attempt(client: Any) -> Any:
            try:
                return client.head_object(Bucket=self.settings.bucket, Key=full)
            except ClientError as exc:
                if _status(exc) == 404:
                    return None
                raise

        meta = self._call("head", full, attempt)
        if meta is None:
            return None
        return Stored(key, int(meta["ContentLength"]), _iso(meta["LastModified"]),
                      str(meta.get("ContentType", "")))

    def list(self, prefix: str, limit: int | None = None, after: str = "") -> list[Stored]:
        """The objects under ``prefix`` in key order: all of them (every page), or the
        first ``limit`` after the key ``after`` (as few pages as that takes: S3 sends at
        most 1,000 a page)."""
        full = self.key(prefix)
        found: list[Stored] = []
        token: dict[str, Any] = {"StartAfter": self.key(after)} if after else {}
        while True:
            if limit is not None:
                token["MaxKeys"] = max(1, min(1000, limit - len(found)))
            page = self._call("list", full, functools.partial(
                _list_page, bucket=self.settings.bucket, prefix=full, more=token))
            for item in page.get("Contents", []):
                key = str(item["Key"])[len(self.key("")):]
                found.append(Stored(key, int(item["Size"]), _iso(item["LastModified"])))
            if not page.get("IsTruncated") or (limit is not None and len(found) >= limit):
                return found
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def check_bucket(self) -> None:
        """The endpoint answers, accepts the credentials, and has the bucket."""
        self._call("bucket check", self.settings.bucket,
                   lambda client: client.head_bucket(Bucket=self.settings.bucket))

    # -- the client and its retries ------------------------------------------------------

    def _client_now(self) -> Any:
        if self._client is None:
            import boto3  # only here: a worker without storage never pays for boto3
            from botocore.config import Config

            s = self.settings
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=s.endpoint, aws_access_key_id=s.access_key,
                aws_secret_access_key=s.secret_key, region_name=s.region,
                # One attempt per call: the retries are ours, with events and named errors.
                config=Config(signature_version="s3v4", retries={"total_max_attempts": 1},
                              connect_timeout=s.connect_timeout_s,
                              read_timeout=s.read_timeout_s))
        return self._client

    def _call(self, op: str, obj: str, request: Callable[[Any], T]) -> T:
        try:
            return self._attempts(op, obj, request)
        except StorageError as exc:
            exc.op, exc.key = op, obj
            raise

    def _attempts(self, op: str, obj: str, request: Callable[[Any], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        client = self._client_now()
        for attempt in range(1, s.attempts + 1):
            try:
                return request(client)
            except ClientError as exc:
                code = _code(exc)
                failure = self._named(op, obj, code, exc)
                if failure is not None:
                    raise failure from None
                reason, unreachable = code, False
            except BotoCoreError as exc:  # no connection, reset, timeout
                reason, unreachable = f"{type(exc).__name__}: {exc}", True
            if attempt == s.attempts:
                message = (E005.at(s.endpoint, endpoint=s.endpoint, attempts=attempt)
                           if unreachable else
                           E006.at(obj, op=op, attempts=attempt, code=reason))
                raise StorageError(message, cause=self._clean(reason))
            # Doubling, but never one wait over MAX_WAIT_S: a job waits for its upload.
            wait = backoff.wait_s(s.backoff_s, attempt, MAX_WAIT_S)
            events.emit("warn", "storage.retry", op=op, key=obj, attempt=attempt,
                        of=s.attempts, reason=self._clean(reason), wait_s=wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _named(self, op: str, obj: str, code: str, exc: Exception) -> StorageError | None:
        """The permanent error for ``code``, or None when it is worth another attempt."""
        s = self.settings
        cause = self._clean(str(exc))
        if code in TRANSIENT_CODES or _status(exc) >= 500 or _status(exc) == 429:
            return None
        if code in CREDENTIAL_CODES:
            return StorageError(E003.at(s.endpoint, endpoint=s.endpoint, code=code,
                                        bucket=s.bucket), cause)
        # HEAD has no body, so a missing bucket is only its status there.
        if code in MISSING_BUCKET_CODES or (op == "bucket check" and code == "404"):
            return StorageError(E004.at(s.bucket, bucket=s.bucket, endpoint=s.endpoint), cause)
        return StorageError(E007.at(obj, op=op, code=code), cause)

    def _clean(self, text: str) -> str:
        """``text`` without the credentials, whatever the process environment holds."""
        for secret in (self.settings.secret_key, self.settings.access_key):
            if secret:
                text = text.replace(secret, MASK)
        return text[:500]


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code") or _status(exc))


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
