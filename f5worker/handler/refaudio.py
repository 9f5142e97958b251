"""Fetching reference audio from an https URL, with the limits a public endpoint needs.

A job's URL is dialled by the worker, inside the provider's network: a private, loopback
or link-local address (the metadata service at 169.254.169.254) would let a client read
what only the worker can reach. The host is resolved once, every address checked (see
:func:`is_public`: IANA's special-purpose blocks are refused, and IPv6 forms that carry an
IPv4 address are judged by that address or refused), and the connection made to the
checked address (a second lookup could answer differently), with the certificate checked
against the host name. Redirects are followed only to URLs that pass the same checks. A
malformed URL (a port out of range, a host name that is not valid IDNA, spaces) is refused
as a bad ``ref_audio``, like every other refusal.

Size and time are bounded, and the time is ONE deadline for the whole fetch: the name
lookup, connecting, the TLS handshake, every redirect, the headers and the body. A server
cannot stretch it by answering slowly: a watchdog shuts the socket down at the deadline,
so one sending a byte a second (each read then returns quickly) is cut off like a silent
one. The name lookup (``getaddrinfo``, which cannot be interrupted) runs in a thread that
is abandoned at the deadline; see :func:`_getaddrinfo` for why that leaks nothing unbounded.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from f5worker.handler import special_addresses
from f5worker.handler.inputs import InputError, Limits

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Fetch = Callable[[str, int, float], bytes]  # (url, max bytes, timeout s) -> body
MAX_REDIRECTS = 3
CHUNK = 64 << 10
# Name lookups that may be running at once, counting those abandoned at their deadline.
MAX_LOOKUPS = 8

def is_public(address: IPAddress) -> bool:
    """Whether the worker may connect to ``address``: globally reachable by IANA's
    special-purpose registries (f5worker/handler/special_addresses) and by Python's
    ``is_global``; an IPv6 form that sends to an IPv4 address is judged by that address."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = special_addresses.carried_ipv4(address)
        if carried is not None:
            return is_public(carried)
    if special_addresses.listed(address):
        return False
    return address.is_global and not address.is_multicast


class _Deadline:
    """The end of one fetch, and the refusal for passing it."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.end = time.monotonic() + timeout_s

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def left(self, host: str, phase: str) -> float:
        """The seconds left; refused when none are."""
        left = self.remaining()
        if left <= 0:
            raise self.exceeded(host, phase)
        return left

    def exceeded(self, host: str, phase: str) -> InputError:
        return InputError("ref_audio", f"took over {self.timeout_s:g} s to fetch "
                                       f"(from {host}, while {phase})")


_lookups = threading.BoundedSemaphore(MAX_LOOKUPS)


def _getaddrinfo(host: str, port: int, deadline: _Deadline) -> list[Any]:
    """``socket.getaddrinfo``, waited for until the deadline at most.

    The C resolver cannot be interrupted, so the lookup runs in a daemon thread that is
    abandoned at the deadline. It ends on its own when the resolver gives up (glibc: the
    ``timeout`` times the ``attempts`` of resolv.conf, for each name server; glibc caps
    them at 30 s, 5 tries and 3 servers); the result is then dropped. At most
    :data:`MAX_LOOKUPS` run at once, abandoned ones included, so a resolver that hangs
    every lookup holds that many threads and no more: further lookups wait for a free
    one within their own deadline, and are refused as slow ones.
    A thread rather than a pool, so that a hung lookup never delays another one queued
    behind it, and the process can exit while one hangs (daemon).
    """
    if not _lookups.acquire(timeout=deadline.left(host, "resolving the name")):
        raise deadline.exceeded(host, "resolving the name")
    outcome: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as exc:
            outcome.append(exc)
        finally:
            _lookups.release()
            done.set()

    try:
        threading.Thread(target=lookup, name="refaudio-getaddrinfo", daemon=True).start()
    except RuntimeError:  # no thread could be started; the slot is still ours
        _lookups.release()
        raise
    if not done.wait(deadline.remaining()):
        raise deadline.exceeded(host, "resolving the name")
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return list(outcome[0])


def public_address(host: str, port: int,
                   allowed: Callable[[IPAddress], bool] = is_public,
                   deadline: _Deadline | None = None) -> str:
    """An address of ``host`` that is allowed (public); refuses when any of them is not,
    or when the lookup outlasts ``deadline`` (by default, a fetch's whole time limit)."""
    deadline = deadline or _Deadline(Limits().fetch_timeout_s)
    try:
        infos = _getaddrinfo(host, port, deadline)
    except socket.gaierror as exc:
        raise InputError("ref_audio", f"cannot resolve {host}: {exc.strerror}") from None
    except (OSError, UnicodeError):
        raise InputError("ref_audio", f"cannot resolve {host}") from None
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


class _Watchdog:
    """Shuts down the socket being used when the deadline passes.

    Socket timeouts bound each read, not their sum: a server sending one byte a second
    keeps every read short and a fetch alive forever. At the deadline this shuts the
    socket down (the system call, not TLS's own shutdown, which is not safe across
    threads); a blocked read then returns at once, and :attr:`fired` tells why. The lock
    keeps it from touching a socket after :meth:`watch` has moved on from it, whose
    descriptor may by then belong to another file.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            # OSError: not connected yet, or already closed: nothing left to stop
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def watch(self, sock: socket.socket | None) -> None:
        """Guard ``sock`` from now on (None: none); shut at once if the time is up."""
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shut()

    def stop(self) -> None:
        self._timer.cancel()
        self.watch(None)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with the certificate checked against the host name, and
    every step inside the deadline (``phase`` says which step it is at)."""

    def __init__(self, host: str, port: int, address: str, deadline: _Deadline,
                 watchdog: _Watchdog, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=deadline.left(host, "connecting"),
                         context=context)
        self._address = address
        self._deadline = deadline
        self._watchdog = watchdog
        self.phase = "connecting"

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port),
                                        self._deadline.left(self.host, self.phase))
        self.sock = sock
        self._watchdog.watch(sock)
        self.phase = "negotiating TLS"
        tls = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self.host, do_handshake_on_connect=False)
        self.sock = tls
        self._watchdog.watch(tls)  # the same descriptor, now held by the TLS socket
        tls.settimeout(self._deadline.left(self.host, self.phase))
        tls.do_handshake()
        self.phase = "sending the request"


def _describe(exc: Exception, host: str) -> str:
    """What went wrong, for the client: no file names or source locations."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"{type(exc).__name__}: the certificate of {host} is not trusted "
                f"({exc.verify_message})")
    if isinstance(exc, ssl.SSLError):
        return f"{type(exc).__name__}: {exc.reason or 'TLS failed'}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'connection failed'}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _get(host: str, port: int, target: str, address: str, max_bytes: int,
         deadline: _Deadline, watchdog: _Watchdog, context: ssl.SSLContext
         ) -> bytes | str:
    """The body of one GET, or where it redirects to."""
    conn = _PinnedHTTPS(host, port, address, deadline, watchdog, context)
    response = None
    try:
        conn.request("GET", target,
                     headers={"User-Agent": "bootstrap-f5tts", "Accept": "audio/*"})
        conn.phase = "waiting for the answer"
        response = conn.getresponse()
        if watchdog.fired:  # the headers may have been cut short, and looked complete
            raise deadline.exceeded(host, conn.phase)
        if response.status in (301, 302, 303, 307, 308):
            return response.getheader("Location") or ""
        if response.status != 200:
            raise InputError("ref_audio", f"the URL answered HTTP {response.status}")
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise InputError("ref_audio", f"is {int(declared)} bytes; at most "
                             f"{max_bytes} are fetched")
        conn.phase = "reading the body"
        body = bytearray()
        while chunk := response.read1(CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise InputError("ref_audio", f"is over {max_bytes} bytes")
            deadline.left(host, conn.phase)
        if watchdog.fired:  # the read ended because the socket was shut, not at the end
            raise deadline.exceeded(host, conn.phase)
        if response.length:  # fewer bytes than Content-Length said
            raise InputError("ref_audio", f"the connection ended after {len(body)} bytes "
                             f"of {declared}")
        return bytes(body)
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.fired or isinstance(exc, TimeoutError):
            raise deadline.exceeded(host, conn.phase) from None
        raise InputError("ref_audio", f"fetching failed: {_describe(exc, host)}") from None
    finally:
        watchdog.watch(None)  # before closing: the descriptor may be reused at once
        if response is not None:
            response.close()
        conn.close()


def fetch(url: str, max_bytes: int, timeout_s: float,
          allowed: Callable[[IPAddress], bool] = is_public,
          context: ssl.SSLContext | None = None) -> bytes:
    """The body at ``url``, all of it within ``timeout_s`` (redirects included);
    :class:`InputError` naming ``ref_audio`` for every refusal. ``allowed`` and
    ``context`` exist for tests, which serve from loopback with their own certificate
    authority."""
    context = context or ssl.create_default_context()
    deadline = _Deadline(timeout_s)
    watchdog = _Watchdog(timeout_s)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            host, port, target = _parse(url)
            address = public_address(host, port, allowed, deadline)
            got = _get(host, port, target, address, max_bytes, deadline, watchdog, context)
            if isinstance(got, bytes):
                return got
            url = urljoin(url, got)
    finally:
        watchdog.stop()
    raise InputError("ref_audio", f"more than {MAX_REDIRECTS} redirects")


def body(data: bytes | None, url: str | None, limits: Limits, fetch: Fetch) -> bytes:
    """A job's reference audio: the bytes it sent, or those fetched from its URL with
    ``fetch`` (:func:`fetch`, or the tests' own) under the limits."""
    if data is not None:
        return data
    assert url, "the job's input names ref_audio as bytes or as a URL"
    return fetch(url, limits.max_ref_bytes, limits.fetch_timeout_s)
