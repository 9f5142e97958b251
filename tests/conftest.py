"""Shared test fixtures. Boots are real: a real supervisor process, a real worker, real
signals; the user stages that misbehave live in ``tests/fixtures/``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel import redaction

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
REAL_VOLUME = Path("/runpod-volume")
MODEL_STAGES = ("cuda", "audio", "model", "warmup")


@pytest.fixture(autouse=True)
def _never_the_real_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may touch the host's /runpod-volume: point the default elsewhere, and fail
    the test if the real one appeared anyway."""
    existed = REAL_VOLUME.exists()
    monkeypatch.setenv("BOOTSTRAP_VOLUME", str(tmp_path / "default-volume-guard"))
    monkeypatch.setenv("BOOTSTRAP_FALLBACK_REPORTS", str(tmp_path / "fallback-reports"))
    # The F5-TTS app unless a test boots another (tests/apps/).
    monkeypatch.setenv("BOOTSTRAP_APP", "f5worker.app:APP")
    redaction.reset()
    yield
    redaction.reset()
    assert existed or not REAL_VOLUME.exists(), "a test created the real /runpod-volume"


@dataclass
class Boot:
    returncode: int
    stdout: str
    stderr: str
    volume: Path

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every stdout line, parsed: a line that is not a JSON event fails the test."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    def reports(self) -> list[Path]:
        return sorted((self.volume / ".bootstrap" / "reports").glob("*.json"))

    def report(self) -> dict[str, Any]:
        paths = self.reports()
        assert len(paths) == 1, paths
        data: dict[str, Any] = json.loads(paths[0].read_text())
        return data


def boot_env(volume: Path, stages: tuple[str, ...] = (), **settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "BOOTSTRAP_MODE": "local",
        "BOOTSTRAP_VOLUME": str(volume),
        "BOOTSTRAP_LOG_FORMAT": "json",
        "BOOTSTRAP_EXTRA_STAGES": ",".join(stages),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")])),
    })
    # These boots test the supervisor with user stages: the model stages (their own tests
    # are under tests/f5) and serve are skipped unless a test asks for them.
    env.setdefault("BOOTSTRAP_SKIP", ",".join((*MODEL_STAGES, "serve")))
    env.setdefault("BOOTSTRAP_HANDLER", "bootstrap.echo:make_handler")
    env.update({f"BOOTSTRAP_{k.upper()}": v for k, v in settings.items()})
    return env


def start_boot(volume: Path, stages: tuple[str, ...] = (), *, env: Mapping[str, str] = (),
               prefix: tuple[str, ...] = (), cwd: Path = REPO,
               **settings: str) -> subprocess.Popen[str]:
    full_env = boot_env(volume, stages, **settings)
    full_env.update(env)
    # Its own session, so a test that times out can take the whole boot down with it.
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "bootstrap", "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=cwd,
        start_new_session=True)


def kill_boot(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def boot(volume: Path, stages: tuple[str, ...] = (), *, timeout: float = 120,
         env: Mapping[str, str] = (), prefix: tuple[str, ...] = (), cwd: Path = REPO,
         **settings: str) -> Boot:
    proc = start_boot(volume, stages, env=env, prefix=prefix, cwd=cwd, **settings)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_boot(proc)
        raise
    return Boot(proc.returncode, stdout, stderr, volume)


def wait_for_line(proc: subprocess.Popen[str], predicate: Any, timeout: float = 60) -> list[str]:
    """Read the boot's stdout until an event matches; returns the lines read so far."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if predicate(json.loads(line)):
            return lines
    kill_boot(proc)
    raise AssertionError(f"no matching event within {timeout} s; got:\n{''.join(lines)}")


def finish_boot(proc: subprocess.Popen[str], lines: list[str], volume: Path,
                timeout: float = 60) -> Boot:
    """Wait for a boot started with ``start_boot``; ``lines`` are those already read."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_boot(proc)
        raise
    return Boot(proc.returncode, "".join(lines) + stdout, stderr, volume)


def read_only(path: Path) -> tuple[str, ...]:
    """A prefix that runs a command in a private mount namespace where ``path`` (and what it
    holds) is a read-only bind mount of itself."""
    script = (f'mount --bind "{path}" "{path}" && mount -o remount,ro,bind "{path}" "{path}"'
              ' && exec "$@"')
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh")


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root``: files with size, mode and modification time (ns),
    directories with their mode. A directory's own mtime is left out: the volume stage's
    write probe, created and removed again, is allowed to touch it."""
    if not root.exists():
        return {}
    out = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        is_dir = path.is_dir() and not path.is_symlink()
        out[str(path.relative_to(root))] = (0 if is_dir else st.st_size, st.st_mode,
                                            0 if is_dir else st.st_mtime_ns)
    return out


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


@contextlib.contextmanager
def _https_server(handler: Any, cert_and_key: tuple[Path, Path],
                  port: int = 0) -> Iterator[int]:
    """``handler`` (an http.server request handler class) over real HTTPS on 127.0.0.1,
    with the given certificate; yields the port."""
    import http.server
    import ssl
    import threading

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
    """``with https_server(Handler, (cert, key)) as port``: a test's own HTTPS host."""
    return _https_server


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A real S3-compatible server (moto) on 127.0.0.1 with the test bucket, open to any key."""
    from s3server import moto_server

    with moto_server(auth=False) as server:
        yield server


@pytest.fixture(scope="module")
def s3_auth() -> Iterator[Any]:
    """The same, with IAM authentication on: unknown keys and wrong secrets are refused."""
    from s3server import moto_server

    with moto_server(auth=True) as server:
        yield server
