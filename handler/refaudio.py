"""Fetching reference audio from an https URL, with the limits a public endpoint needs.

A job's URL is dialled by the worker, inside the provider's network: a private, loopback
or link-local address (the metadata service at 169.254.169.254) would let a client read
what only the worker can reach. The host is resolved once, every address checked (see
:func:`is_public`: IPv6 forms that carry an IPv4 address are judged by that address or
refused), and the connection made to the checked address (a second lookup could answer
differently).
Redirects are followed only to URLs that pass the same checks. A malformed URL (a port out
of range, a host name that is not valid IDNA, spaces) is refused as a bad ``ref_audio``,
like every other refusal. Size and time are bounded.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import quote, urljoin, urlsplit

from handler.inputs import InputError, Limits

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Fetch = Callable[[str, int, float], bytes]  # (url, max bytes, timeout s) -> body
MAX_REDIRECTS = 3
CHUNK = 64 << 10


# IPv6 ranges refused whatever follows the prefix. Python's ``is_global`` passes most of
# them (3.11), yet each either reaches an IPv4 address that cannot be checked here, or is
# deprecated and may still be routed inside a provider's network.
REFUSED_V6 = tuple(map(ipaddress.IPv6Network, (
    # IPv4-compatible (RFC 4291 deprecated it): some stacks and tunnels send ::a.b.c.d to
    # the IPv4 address a.b.c.d. (Also holds :: and ::1, which are refused anyway.)
    "::/96",
    # Local-use NAT64 (RFC 8215): the operator chooses the prefix length, so where the IPv4
    # sits in the address, and thus which IPv4 it reaches, cannot be known here.
    "64:ff9b:1::/48",
    # 6to4 (RFC 7526 deprecated it): a relay forwards 2002:AABB:CCDD:: to AA.BB.CC.DD.
    "2002::/16",
    # Teredo: tunnels to the IPv4 of its server and (obfuscated) of its client.
    "2001::/32",
    # Site-local (RFC 3879 deprecated it): the old private range, still routed in places.
    "fec0::/10",
)))
# The well-known NAT64 prefix (RFC 6052): a gateway translates 64:ff9b::a.b.c.d to a.b.c.d
# (always the last 32 bits for this /96). DNS64 resolvers answer with it for every
# IPv4-only host on an IPv6-only network, so it is judged by the IPv4 it carries, not
# refused outright.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public(address: IPAddress) -> bool:
    """Whether the worker may connect to ``address``: a global unicast address, and for
    IPv6 forms that carry an IPv4 address, that IPv4 address must be one too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual stack
            return is_public(address.ipv4_mapped)
        if address in NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        if any(address in net for net in REFUSED_V6):
            return False
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


# Kept as they are in a request target; everything else (non-ASCII) is percent-encoded.
_VISIBLE_ASCII = "".join(map(chr, range(0x21, 0x7F)))


def _parse(url: str) -> tuple[str, int, str]:
    """(host, port, request target) of an https URL; the host is IDNA-encoded (ASCII)."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InputError("ref_audio", "the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # e.g. an unclosed "[" around an IPv6 address
        raise InputError("ref_audio", f"is not a valid URL ({exc})") from None
    if parts.scheme != "https":
        raise InputError("ref_audio", "only https:// URLs are fetched")
    if "@" in parts.netloc:
        raise InputError("ref_audio", "URLs with credentials are not fetched")
    if not host:
        raise InputError("ref_audio", "the URL has no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise InputError("ref_audio", "the URL's port is not a number from 1 to 65535")
    if ":" not in host:  # a name or an IPv4 address; IPv6 literals are ASCII already
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InputError("ref_audio", f"{host!r} is not a valid host name") from None
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                   safe=_VISIBLE_ASCII)
    return host, 443 if port is None else port, target


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
        host, port, target = _parse(url)
        address = public_address(host, port, allowed)
        conn = _PinnedHTTPS(host, port, address, min(timeout_s, 10.0), context)
        try:
            conn.request("GET", target,
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
