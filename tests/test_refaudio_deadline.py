"""One deadline for a whole fetch, against real slow servers and a real hanging resolver.

A server that answers a byte at a time, a chain of slow redirects, one that never starts
TLS, and a name server that never answers: each must end the fetch by its time limit, as
a ``ref_audio`` refusal. The upper bounds are correctness bounds (the limit plus generous
slack for a loaded machine), not benchmarks. The servers are local, with their own
certificate authority, and reached through ``allowed=loopback`` as in test_refaudio.py.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from f5worker.handler import refaudio
from f5worker.handler.inputs import InputError

ROOT = Path(__file__).resolve().parents[1]
SLACK_S = 1.5
DRIP_S = 0.3  # between two bytes of a dripped answer
HOP_S = 1.5  # each redirect's wait: under the limit alone, over it in sum
BODY = b"RIFF" + bytes(100)


def loopback_only(address: refaudio.IPAddress) -> bool:
    return address.is_loopback


@pytest.fixture
def slow_server(tls: tuple[Path, Path],
                https_server: Any) -> Iterator[tuple[str, ssl.SSLContext]]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def drip(self, data: bytes) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client hung up: stop
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    time.sleep(DRIP_S)

        def do_GET(self) -> None:
            answer = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
            if self.path == "/drip-status":  # 17 bytes of status line: 5 s
                self.drip(answer)
            elif self.path == "/drip-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self.drip(b"X-Padding: " + b"." * 20 + b"\r\n" + answer.partition(b"\r\n")[2])
            elif self.path.startswith("/hop/"):
                left = int(self.path.removeprefix("/hop/"))
                time.sleep(HOP_S)
                self.send_response(302 if left else 200)
                if left:
                    self.send_header("Location", f"/hop/{left - 1}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_header("Content-Length", str(len(BODY)))
                    self.end_headers()
                    self.wfile.write(BODY)
            else:
                self.send_response(404)
                self.end_headers()

    with https_server(Handler, tls) as port:
        yield f"https://localhost:{port}", ssl.create_default_context(cafile=str(tls[0]))


def timed_refusal(url: str, timeout_s: float, context: ssl.SSLContext | None = None
                  ) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(InputError) as refused:
        refaudio.fetch(url, 1_000_000, timeout_s, loopback_only, context)
    assert refused.value.field == "ref_audio"
    return str(refused.value), time.monotonic() - start


@pytest.mark.parametrize("path", ["/drip-status", "/drip-headers"])
def test_an_answer_dripped_byte_by_byte_is_cut_at_the_deadline(
        slow_server: tuple[str, ssl.SSLContext], path: str) -> None:
    base, client = slow_server
    error, elapsed = timed_refusal(base + path, 2, client)
    assert error == ("ref_audio: took over 2 s to fetch "
                     "(from localhost, while waiting for the answer)")
    assert elapsed < 2 + SLACK_S


def test_slow_redirects_share_one_deadline(slow_server: tuple[str, ssl.SSLContext]) -> None:
    base, client = slow_server
    # each hop alone is within the limit
    assert refaudio.fetch(f"{base}/hop/0", 1000, 2, loopback_only, client) == BODY
    error, elapsed = timed_refusal(f"{base}/hop/3", 2, client)  # 4 hops of 1.5 s
    assert error.startswith("ref_audio: took over 2 s to fetch (from localhost, while ")
    assert elapsed < 2 + SLACK_S


def test_a_server_that_never_starts_tls_is_cut_at_the_deadline() -> None:
    # Listening but never accepting: the kernel completes the TCP handshake, then nothing.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        error, elapsed = timed_refusal(f"https://localhost:{silent.getsockname()[1]}/a", 1)
    assert error == "ref_audio: took over 1 s to fetch (from localhost, while negotiating TLS)"
    assert elapsed < 1 + SLACK_S


# Run in a private mount and network namespace, where /etc/resolv.conf names a server on
# 127.0.0.1:53 that takes the queries and never answers (and glibc is told to wait 30 s a
# try, 5 tries): a real hanging lookup, in the real resolver.
HANGING_RESOLVER = r"""
import json, socket, sys, threading, time
from f5worker.handler import refaudio
from f5worker.handler.inputs import InputError

silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
silent.bind(("127.0.0.1", 53))

def refusal(timeout_s):
    start = time.monotonic()
    try:
        refaudio.fetch("https://voice.hangs.test/a.wav", 1000, timeout_s)
    except InputError as exc:
        return str(exc), time.monotonic() - start
    return None, time.monotonic() - start

first = refusal(1.5)
# More fetches than lookups may run at once: the abandoned lookups stay bounded.
more = [refusal(0.3) for _ in range(refaudio.MAX_LOOKUPS + 2)]
hung = sum(t.name == "refaudio-getaddrinfo" for t in threading.enumerate())
print(json.dumps({"first": first, "more": more, "hung": hung,
                  "max": refaudio.MAX_LOOKUPS}))
"""


def missing(why: str) -> None:
    """CI runs as root with namespaces: there a missing capability fails, never skips."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def test_a_hanging_name_lookup_is_cut_at_the_deadline(tmp_path: Path) -> None:
    if not (shutil.which("unshare") and shutil.which("ip")):
        missing("needs unshare and ip (util-linux, iproute2) for a private namespace")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n"
                                          "options timeout:30 attempts:5\n")
    (tmp_path / "nsswitch.conf").write_text("hosts: files dns\n")
    (tmp_path / "probe.py").write_text(HANGING_RESOLVER)
    setup = (f"ip link set lo up && mount --bind {tmp_path}/resolv.conf /etc/resolv.conf"
             f" && mount --bind {tmp_path}/nsswitch.conf /etc/nsswitch.conf || exit 77; "
             f'exec "{sys.executable}" {tmp_path}/probe.py')
    run = subprocess.run(["unshare", "--map-root-user", "--mount", "--net", "sh", "-c", setup],
                         capture_output=True, text=True, timeout=30, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if run.returncode == 77 or (run.returncode and "unshare:" in run.stderr):
        missing(f"no private mount and network namespace here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    error, elapsed = seen["first"]
    assert error == ("ref_audio: took over 1.5 s to fetch "
                     "(from voice.hangs.test, while resolving the name)")
    assert elapsed < 1.5 + SLACK_S
    for error, elapsed in seen["more"]:
        assert error == ("ref_audio: took over 0.3 s to fetch "
                         "(from voice.hangs.test, while resolving the name)")
        assert elapsed < 0.3 + SLACK_S
    # the lookups really hung (the bound is ours, not the resolver's), and no more than
    # MAX_LOOKUPS of them were left running
    assert seen["hung"] == seen["max"]
