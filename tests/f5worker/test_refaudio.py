"""Fetching reference audio over real HTTPS from a local server with its own certificate.

Loopback is refused in production; these tests allow it explicitly (and only it) to reach
the local server, and check the refusals with the production rule.
"""

from __future__ import annotations

import http.server
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from f5worker.handler import refaudio
from f5worker.handler.inputs import InputError

BODY = b"RIFF" + bytes(5000)


def loopback_only(address: refaudio.IPAddress) -> bool:
    return address.is_loopback


@pytest.fixture
def server(tls: tuple[Path, Path],
           https_server: Any) -> Iterator[tuple[str, ssl.SSLContext]]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            # the second is /été.wav?voix=é as it must arrive: percent-encoded UTF-8
            if self.path in ("/audio.wav", "/%C3%A9t%C3%A9.wav?voix=%C3%A9"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)
            elif self.path == "/short":  # promises more than it sends, then hangs up
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY[:100])
            elif self.path == "/redirect-private":
                self.send_response(302)
                self.send_header("Location", "https://10.1.2.3/audio.wav")
                self.end_headers()
            elif self.path == "/redirect-ok":
                self.send_response(302)
                self.send_header("Location", "/audio.wav")
                self.end_headers()
            elif self.path == "/slow":
                self.send_response(200)
                self.end_headers()
                for _ in range(20):
                    self.wfile.write(bytes(1000))
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self.send_response(404)
                self.end_headers()

    with https_server(Handler, tls) as port:
        yield f"https://localhost:{port}", ssl.create_default_context(cafile=str(tls[0]))


def test_fetches_over_https_with_the_certificate_checked(server: tuple[str, ssl.SSLContext]
                                                         ) -> None:
    base, client = server
    assert refaudio.fetch(f"{base}/audio.wav", 10_000, 5, loopback_only, client) == BODY
    assert refaudio.fetch(f"{base}/redirect-ok", 10_000, 5, loopback_only, client) == BODY


def test_an_untrusted_certificate_is_refused(server: tuple[str, ssl.SSLContext]) -> None:
    base, _ = server
    with pytest.raises(InputError, match="ref_audio: fetching failed: SSL") as refused:
        refaudio.fetch(f"{base}/audio.wav", 10_000, 5, loopback_only)
    # what the client needs (whose certificate, and why), not where in OpenSSL it failed
    assert str(refused.value) == ("ref_audio: fetching failed: SSLCertVerificationError: the "
                                  "certificate of localhost is not trusted "
                                  "(self-signed certificate)")


def test_a_body_shorter_than_its_content_length_is_refused(
        server: tuple[str, ssl.SSLContext]) -> None:
    base, client = server
    with pytest.raises(InputError, match=f"the connection ended after 100 bytes of {len(BODY)}"):
        refaudio.fetch(f"{base}/short", 10_000, 5, loopback_only, client)


def test_a_non_ascii_path_is_sent_percent_encoded(server: tuple[str, ssl.SSLContext]
                                                  ) -> None:
    base, client = server
    assert refaudio.fetch(f"{base}/été.wav?voix=é", 10_000, 5, loopback_only, client) == BODY


def test_loopback_is_refused_by_the_production_rule(server: tuple[str, ssl.SSLContext]
                                                    ) -> None:
    base, client = server
    with pytest.raises(InputError, match="non-public address"):
        refaudio.fetch(f"{base}/audio.wav", 10_000, 5, context=client)


def test_a_redirect_to_a_private_address_is_refused(server: tuple[str, ssl.SSLContext]
                                                    ) -> None:
    base, client = server
    with pytest.raises(InputError, match=r"10\.1\.2\.3 resolves to a non-public address"):
        refaudio.fetch(f"{base}/redirect-private", 10_000, 5, loopback_only, client)


def test_size_and_time_limits(server: tuple[str, ssl.SSLContext]) -> None:
    base, client = server
    with pytest.raises(InputError, match="at most 100 are fetched"):
        refaudio.fetch(f"{base}/audio.wav", 100, 5, loopback_only, client)
    with pytest.raises(InputError, match=r"took over 0\.5 s"):
        refaudio.fetch(f"{base}/slow", 1_000_000, 0.5, loopback_only, client)
    with pytest.raises(InputError, match="HTTP 404"):
        refaudio.fetch(f"{base}/missing", 1_000, 5, loopback_only, client)


@pytest.mark.parametrize(("url", "problem"), [
    ("https://localhost:99999/a.wav", "the URL's port is not a number from 1 to 65535"),
    ("https://localhost:0/a.wav", "the URL's port is not a number from 1 to 65535"),
    ("https://localhost:https/a.wav", "the URL's port is not a number from 1 to 65535"),
    ("https://[::1/a.wav", "is not a valid URL (Invalid IPv6 URL)"),
    ("https://" + "a" * 64 + ".localhost/a.wav",
     f"'{'a' * 64}.localhost' is not a valid host name"),
    ("https://local host/a.wav", "the URL contains spaces or control characters"),
    ("https://localhost/a.wav\r\nX-Injected: 1", "the URL contains spaces or control characters"),
    ("https:///a.wav", "the URL has no host"),
])
def test_a_malformed_url_is_a_ref_audio_error(url: str, problem: str) -> None:
    with pytest.raises(InputError) as refused:
        refaudio.fetch(url, 1000, 2, loopback_only)
    assert str(refused.value) == f"ref_audio: {problem}"


# IPv6 forms that carry an IPv4 address, judged by that address or refused: NAT64 of
# 10.0.0.1 and of 127.0.0.1; IPv4-mapped; IPv4-compatible (even of a public address);
# 6to4 (of 10.0.0.1 and of 8.8.8.8); Teredo; local-use NAT64 (even of 8.8.8.8); then
# site-local, and a global-scope multicast address.
CARRIERS_OF_IPV4 = ["64:ff9b::a00:1", "64:ff9b::7f00:1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                    "::ffff:169.254.169.254", "::a00:1", "::808:808", "2002:a00:1::1",
                    "2002:808:808::1", "2001:0:a00:1::1", "64:ff9b:1::808:808"]
DEPRECATED_OR_MULTICAST_V6 = ["fec0::1", "ff0e::1"]
# Accepted before the registries were read whole: IPv4-translated (RFC 2765) of loopback,
# of the metadata service and of a private address; discard-only; documentation (RFC
# 9637); SRv6 SIDs (RFC 9602); the dummy prefix (RFC 9780); the 6to4 relay anycast;
# DS-Lite's 192.0.0.0/29; TEST-NET-1; benchmarking; the limited broadcast.
SPECIAL_PURPOSE = ["::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe", "::ffff:0:a00:1", "100::1",
                   "3fff::1", "3fff:fff::1", "5f00::1", "100:0:0:1::1", "192.88.99.1",
                   "192.0.0.1", "192.0.2.1", "198.18.0.1", "255.255.255.255",
                   "2001:db8::1", "2001:2::1", "::ffff:192.88.99.1"]
# A public IPv6 address, NAT64 of a public IPv4 (what DNS64 answers for an IPv4-only host
# on an IPv6-only network) and IPv4-mapped of a public IPv4 are allowed.
PUBLIC = ["8.8.8.8", "2606:4700::1111", "2606:4700:4700::1111", "64:ff9b::808:808",
          "::ffff:8.8.8.8", "::ffff:0:808:808"]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "192.168.1.1", "172.16.0.1",
                                     "169.254.169.254", "::1", "fe80::1", "fc00::1",
                                     "0.0.0.0", "224.0.0.1", "100.64.0.1",
                                     *CARRIERS_OF_IPV4, *DEPRECATED_OR_MULTICAST_V6,
                                     *SPECIAL_PURPOSE])
def test_non_public_addresses_are_not_allowed(address: str) -> None:
    assert not refaudio.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refaudio.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [*CARRIERS_OF_IPV4, *DEPRECATED_OR_MULTICAST_V6,
                                     *SPECIAL_PURPOSE])
def test_a_literal_host_is_checked_like_a_resolved_one(address: str) -> None:
    with pytest.raises(InputError, match=r"resolves to a non-public address"):
        refaudio.public_address(address, 443)


@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_literal_host_is_its_own_address(address: str) -> None:
    assert refaudio.public_address(address, 443) == address


@pytest.mark.parametrize("address", ["::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe", "3fff::1",
                                     "5f00::1", "100::1"])
def test_a_url_to_a_special_purpose_address_is_never_dialled(address: str) -> None:
    # The production rule (no allowed= override): refused by field before any connection.
    with pytest.raises(InputError) as refused:
        refaudio.fetch(f"https://[{address}]:8443/voice.wav", 1000, 2)
    assert str(refused.value) == (f"ref_audio: {address} resolves to a non-public address "
                                  f"({address})")
