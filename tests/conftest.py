"""The fixtures every test may use. The helpers that boot a worker are plain functions in
``tests/boots.py``."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel import redaction

REAL_VOLUME = Path("/runpod-volume")


@pytest.fixture(autouse=True)
def _never_the_real_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may touch the host's /runpod-volume: point the default elsewhere, and fail
    the test if the real one appeared anyway."""
    existed = REAL_VOLUME.exists()
    monkeypatch.setenv("BOOTSTRAP_VOLUME", str(tmp_path / "default-volume-guard"))
    monkeypatch.setenv("BOOTSTRAP_FALLBACK_REPORTS", str(tmp_path / "fallback-reports"))
    # The F5-TTS app unless a test boots another (tests/fixtures/echo_app.py).
    monkeypatch.setenv("BOOTSTRAP_APP", "f5worker.app:APP")
    redaction.reset()
    yield
    redaction.reset()
    assert existed or not REAL_VOLUME.exists(), "a test created the real /runpod-volume"


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    path = tmp_path / "volume"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and its key, for local HTTPS servers."""
    if not shutil.which("openssl"):
        pytest.fail("openssl is needed to make the test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


def _one_file(body: bytes) -> Any:
    import http.server

    class OneFile(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return OneFile


@contextlib.contextmanager
def _https_server(handler: Any, cert_and_key: tuple[Path, Path],
                  port: int = 0) -> Iterator[int]:
    """``handler`` (an http.server request handler class, or bytes: one file served at
    every path) over real HTTPS on 127.0.0.1, with the given certificate; yields the port."""
    import http.server
    import ssl
    import threading

    if isinstance(handler, bytes):
        handler = _one_file(handler)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert_and_key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()


@pytest.fixture(scope="session")
def https_server() -> Any:
    """``with https_server(Handler, (cert, key)) as port``: a test's own HTTPS host
    (``Handler`` may be the bytes of one file, served at every path)."""
    return _https_server


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A real S3-compatible server (moto) on 127.0.0.1 with the test bucket, open to any key."""
    from tests.s3server import moto_server

    with moto_server(auth=False) as server:
        yield server


@pytest.fixture(scope="module")
def s3_auth() -> Iterator[Any]:
    """The same, with IAM authentication on: unknown keys and wrong secrets are refused."""
    from tests.s3server import moto_server

    with moto_server(auth=True) as server:
        yield server
