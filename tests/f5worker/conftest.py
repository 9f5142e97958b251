"""Tests on the real F5-TTS stack (torch, torchaudio, f5-tts) with the tiny model.

They are skipped only on a developer machine without torch; in CI (``CI`` set) they run,
and a missing torch fails them: CI installs the f5 extra, and a skip would hide that.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel.config import Config, from_settings
from bootstrap.kernel.context import Context
from f5worker.handler import tiny_model

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "tests" / "fixtures" / "serve_f5.py"
HAVE_STACK = all(importlib.util.find_spec(m) for m in ("torch", "torchaudio", "f5_tts"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="needs the f5 extra (pip install -e '.[f5]'); runs in CI")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.f5)
            if not HAVE_STACK and not os.environ.get("CI"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A volume holding the tiny model; tests that break files copy it first."""
    volume = tmp_path_factory.mktemp("volume")
    tiny_model.build(volume)
    return volume


@pytest.fixture
def volume(tiny_volume: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model's volume, for tests that break it."""
    copy = tmp_path / "volume"
    shutil.copytree(tiny_volume, copy)
    return copy


def config_for(volume: Path, **over: object) -> Config:
    return from_settings({**tiny_model.settings(volume), "mode": "local", "allow_cpu": True,
                          "volume": volume, **over})


def make_ctx(volume: Path, **over: object) -> Context:
    return Context(config_for(volume, **over), run_id="test", worker_id="w-test")


@pytest.fixture(scope="session")
def ctx_for() -> Callable[..., Context]:
    """Builds a context for a volume holding the tiny model, with settings overridden."""
    return make_ctx


@pytest.fixture(scope="session")
def booted(tiny_volume: Path) -> Iterator[Context]:
    """A context through cuda, audio, model and warmup on the CPU, as a worker boots."""
    from bootstrap.stages import cuda
    from f5worker.stages import audio, model, warmup

    ctx = make_ctx(tiny_volume)
    for stage in (cuda, audio, model, warmup):
        stage.run(ctx)
    yield ctx


@pytest.fixture(scope="session")
def tiny_aligner(tiny_volume: Path) -> Any:
    """The tiny random aligner (MMS_FA's structure, small) on the CPU."""
    from f5worker import aligner

    params = aligner.read_params(str(tiny_volume / tiny_model.ALIGNER / "aligner.json"))
    return aligner.load(params, tiny_volume / tiny_model.ALIGNER / "model.pt", "cpu")


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The stand-in Hugging Face Hub (tests/hubserver.py) on 127.0.0.1 serving ``files`` at
    resolve URLs (``/{repo}/resolve/main/{path}``); a path mapped to an int answers that
    status. huggingface_hub itself talks to it, through HF_ENDPOINT."""
    import huggingface_hub.constants

    from tests import hubserver

    state = hubserver.new_state()
    with hubserver.running(state) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        # An earlier model stage in this process went offline (hub.go_offline).
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        yield state


@dataclass
class Served:
    """A worker serving the tiny model over the RunPod SDK's local HTTP API on 127.0.0.1
    (tests/fixtures/serve_f5.py), in its own working and temp directories."""

    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    volume: Path

    @property
    def log(self) -> str:
        return (self.workdir / "worker.log").read_text(errors="replace")

    @property
    def tmpdir(self) -> Path:
        return self.workdir / "tmp"

    def post(self, body: Any, timeout: float = 120) -> dict[str, Any]:
        """``body`` to /runsync; the SDK's answer, or ``{"http_status": N}`` for an
        HTTP error (FastAPI answers schema errors with 422)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/runsync", data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return {"http_status": exc.code}
        return answer

    def events(self, name: str) -> list[dict[str, Any]]:
        """The worker's JSON events called ``name`` so far."""
        found = []
        for line in self.log.splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def peak_rss_mb(self) -> float:
        """The worker's peak resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc/PID/status")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(volume: Path, workdir: Path, prefix: tuple[str, ...] = (),
            **env: str) -> Iterator[Served]:
    """Starts serve_f5.py (``env`` added to its environment; ``prefix`` before its command,
    e.g. to run it in a private mount namespace) and waits until it listens."""
    port = free_port()
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    log = (workdir / "worker.log").open("w")
    full = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(workdir / "tmp"), **env}
    full.pop("RUNPOD_LOG_LEVEL", None)
    # The SDK keeps .runpod_jobs.pkl in its cwd: each worker has its own.
    proc = subprocess.Popen([*prefix, sys.executable, str(SERVE), str(volume), str(port)],
                            cwd=workdir, env=full, stdout=log, stderr=subprocess.STDOUT)
    served = Served(port, proc, workdir, volume)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited {proc.returncode}: {served.log[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("worker did not start serving in 120 s") from None
                time.sleep(0.5)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def serve() -> Callable[..., contextlib.AbstractContextManager[Served]]:
    """``with serve(volume, workdir, **env) as worker``: a worker on the SDK's HTTP API."""
    return serving
