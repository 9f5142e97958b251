"""Fetching reference audio from an https URL, with the limits a public endpoint needs.

A job's URL is dialled by the worker, inside the provider's network: a private, loopback
or link-local address (the metadata service at 169.254.169.254) would let a client read
what only the worker can reach. The host is resolved once, every address checked, and the
connection made to the checked address (a second lookup could answer differently).
Redirects are followed only to URLs that pass the same checks. Size and time are bounded.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

from handler.inputs import InputError, Limits

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Fetch = Callable[[str, int, float], bytes]  # (url, max bytes, timeout s) -> body
MAX_REDIRECTS = 3
CHUNK = 64 << 10


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast


def public_address(host: str, port: int,
                   allowed: Callable[[IPAddress], bool] = is_public) -> str:
    """An address of ``host`` that is allowed (public); refuses when any of them is not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError("ref_audio", f"cannot resolve {host!r}: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    for text in addresses:
        if not allowed(ipaddress.ip_address(text.split("%")[0])):
            raise InputError("ref_audio", f"{host} resolves to a non-public address ({text})")
    return addresses[0]


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with the certificate checked against the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self.host)


def fetch(url: str, max_bytes: int, timeout_s: float,
          allowed: Callable[[IPAddress], bool] = is_public,
          context: ssl.SSLContext | None = None) -> bytes:
    """The body at ``url``; :class:`InputError` naming ``ref_audio`` for every refusal.
    ``allowed`` and ``context`` exist for tests, which serve from loopback with their own
    certificate authority."""
    context = context or ssl.create_default_context()
    deadline = time.monotonic() + timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise InputError("ref_audio", "only https:// URLs are fetched")
        if parts.username or parts.password:
            raise InputError("ref_audio", "URLs with credentials are not fetched")
        port = parts.port or 443
        address = public_address(parts.hostname, port, allowed)
        conn = _PinnedHTTPS(parts.hostname, port, address, min(timeout_s, 10.0), context)
        try:
            path = parts.path or "/"
            conn.request("GET", path + (f"?{parts.query}" if parts.query else ""),
                         headers={"User-Agent": "bootstrap-f5tts", "Accept": "audio/*"})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                url = urljoin(url, response.getheader("Location") or "")
                continue
            if response.status != 200:
                raise InputError("ref_audio", f"the URL answered HTTP {response.status}")
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise InputError("ref_audio", f"is {int(declared)} bytes; at most "
                                 f"{max_bytes} are fetched")
            body = bytearray()
            while chunk := response.read1(CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise InputError("ref_audio", f"is over {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise InputError("ref_audio", f"took over {timeout_s:g} s to fetch")
            return bytes(body)
        except (OSError, http.client.HTTPException) as exc:
            raise InputError("ref_audio", f"fetching failed: {type(exc).__name__}: "
                             f"{exc}") from None
        finally:
            conn.close()
    raise InputError("ref_audio", f"more than {MAX_REDIRECTS} redirects")


def body(data: bytes | None, url: str | None, limits: Limits, fetch: Fetch) -> bytes:
    """A job's reference audio: the bytes it sent, or those fetched from its URL with
    ``fetch`` (:func:`fetch`, or the tests' own) under the limits."""
    if data is not None:
        return data
    assert url, "the job's input names ref_audio as bytes or as a URL"
    return fetch(url, limits.max_ref_bytes, limits.fetch_timeout_s)
