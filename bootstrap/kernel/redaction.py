"""Keeps secrets out of every line bootstrap writes: events, reports, tracebacks, and the
output of subprocesses and of the worker.

A secret is the value of an environment variable whose name looks like one (TOKEN, KEY,
SECRET, PASSWORD, ...), the credentials part of any URL (``https://user:pass@host``), and
the signature and session token of a presigned URL (``X-Amz-Signature=...``): a presigned
object URL is a credential for that object until it expires.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

SECRET_NAME = re.compile(
    r"TOKEN|KEY|SECRET|PASSW|PASSPHRASE|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE|SIGNATURE|_PAT\b",
    re.IGNORECASE,
)
# Names that match the pattern but hold a location, not a secret; hiding them would only
# make paths in the output unreadable.
NOT_SECRET_NAME = re.compile(r"_(SOCK|PATH|DIR|FILE)$", re.IGNORECASE)
URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s'\"]+@", re.IGNORECASE)
# Query parameters of presigned URLs (S3 SigV4 and SigV2) that grant access on their own.
URL_SIGNATURE = re.compile(r"(?P<name>\b(?:X-Amz-Signature|X-Amz-Security-Token|Signature))="
                           r"[^&\s'\"]+")
MASK = "[redacted]"
# Shorter values would mask ordinary words and digits everywhere; no real token is this short.
MIN_SECRET_LENGTH = 4


def looks_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


class Redactor:
    def __init__(self, environ: Mapping[str, str]) -> None:
        values = {
            value
            for name, value in environ.items()
            if looks_secret(name) and len(value) >= MIN_SECRET_LENGTH
        }
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(values, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "://" in text:
            text = URL_CREDENTIALS.sub(rf"\g<scheme>{MASK}@", text)
        if "ignature=" in text or "ecurity-Token=" in text:
            text = URL_SIGNATURE.sub(rf"\g<name>={MASK}", text)
        return text

    def value(self, value: Any) -> Any:
        """A copy of ``value`` (str, dict, list, tuple, anything else as is) with secrets masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


_current: Redactor | None = None


def current() -> Redactor:
    """The redactor for this process's environment, built once."""
    global _current
    if _current is None:
        _current = Redactor(os.environ)
    return _current


def reset() -> None:
    """Forget the cached redactor (tests change the environment)."""
    global _current
    _current = None


def redact(value: Any) -> Any:
    return current().value(value)
