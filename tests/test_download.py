"""Plain-URL downloads (bootstrap/download.py: what huggingface_hub does not do) against a
local HTTP server; the hub's files are tests/test_hub.py's."""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bootstrap import download
from bootstrap.download import DownloadError, Policy, Url
from bootstrap.environment.lease import Owner

BODY = bytes(range(256)) * 4096  # 1 MiB, more than one chunk
FAST = Policy(retries=2, backoff_s=0.01, read_timeout_s=5)


@dataclass
class Hub:
    """A stand-in hub: scripted answers per path, and a log of what was asked."""

    url: str
    script: dict[str, list[str]] = field(default_factory=dict)  # path -> answers in order
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, authorization)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    state = Hub(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Authorization", "")))
            answers = state.script.get(self.path, ["ok"])
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            if answer.isdigit():
                self.send_response(int(answer))
                if answer == "429":
                    self.send_header("Retry-After", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            if answer == "slow":
                time.sleep(0.3)
            # "truncated" promises the whole body and closes half way.
            self.wfile.write(BODY[: len(BODY) // 2] if answer == "truncated" else BODY)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield state
    server.shutdown()


PATH = "/org/model/resolve/main/sub/model.safetensors"


def fetch(tmp_path: Path, policy: Policy = FAST, worker: str = "w1") -> tuple[int, Path]:
    dest = tmp_path / "models" / "model.safetensors"
    remote = Url(f"{os.environ['HF_ENDPOINT']}{PATH}")
    return download.ensure(remote, dest, tmp_path / "locks", worker, policy), dest


def test_downloads_into_place_and_leaves_no_partial(hub: Hub, tmp_path: Path) -> None:
    fetched, dest = fetch(tmp_path)
    assert fetched == len(BODY) and dest.read_bytes() == BODY
    assert [p.name for p in dest.parent.iterdir()] == ["model.safetensors"]
    assert not list((tmp_path / "locks").iterdir())
    assert fetch(tmp_path)[0] == 0 and len(hub.requests) == 1


def test_truncated_body_is_retried_and_never_trusted(hub: Hub, tmp_path: Path) -> None:
    hub.script[PATH] = ["truncated", "ok"]
    fetched, dest = fetch(tmp_path)
    assert fetched == len(BODY) and dest.read_bytes() == BODY
    assert len(hub.requests) == 2


def test_truncation_every_time_leaves_nothing_at_the_path(hub: Hub, tmp_path: Path) -> None:
    hub.script[PATH] = ["truncated"]
    with pytest.raises(DownloadError) as failed:
        fetch(tmp_path)
    assert failed.value.kind in ("incomplete", "failed")
    assert not (tmp_path / "models" / "model.safetensors").exists()
    assert not [p for p in (tmp_path / "models").iterdir()]
    assert len(hub.requests) == FAST.retries + 1


@pytest.mark.parametrize(("status", "kind"), [("401", "auth"), ("403", "forbidden"),
                                              ("404", "not_found")])
def test_permanent_refusals_fail_at_once(hub: Hub, tmp_path: Path, status: str,
                                         kind: str) -> None:
    hub.script[PATH] = [status]
    with pytest.raises(DownloadError) as failed:
        fetch(tmp_path)
    assert failed.value.kind == kind and failed.value.status == int(status)
    assert len(hub.requests) == 1


def test_rate_limit_and_server_errors_are_retried(hub: Hub, tmp_path: Path) -> None:
    hub.script[PATH] = ["429", "503", "ok"]
    fetched, _ = fetch(tmp_path)
    assert fetched == len(BODY) and len(hub.requests) == 3


def test_rate_limit_that_persists_is_named(hub: Hub, tmp_path: Path) -> None:
    hub.script[PATH] = ["429"]
    with pytest.raises(DownloadError) as failed:
        fetch(tmp_path)
    assert failed.value.kind == "rate_limited"


def test_the_hub_token_never_goes_to_a_plain_url(hub: Hub, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_testtoken123")
    dest = tmp_path / "aligner" / "model.pt"
    download.ensure(Url(f"{hub.url}/mms/model.pt"), dest, tmp_path / "locks", "w1", FAST)
    assert dest.read_bytes() == BODY
    assert hub.requests == [("/mms/model.pt", "")]


def test_workers_starting_together_download_once(hub: Hub, tmp_path: Path) -> None:
    hub.script[PATH] = ["slow"]
    results: list[int] = []
    threads = [threading.Thread(target=lambda w=w: results.append(fetch(tmp_path, worker=w)[0]))
               for w in ("w1", "w2", "w3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, len(BODY)]
    assert len(hub.requests) == 1


def test_a_killed_holders_lease_is_taken_over(hub: Hub, tmp_path: Path) -> None:
    dest = tmp_path / "models" / "model.safetensors"
    leftover = download.lease_path(tmp_path / "locks", str(dest))
    leftover.parent.mkdir(parents=True)
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    # the owner record a worker leaves when it is SIGKILLed while downloading
    owner = Owner("dead-worker", pid=killed.pid, started=time.time() - 5)
    leftover.write_text(json.dumps(dataclasses.asdict(owner)))
    fetched, _ = fetch(tmp_path, Policy(retries=0, lease_stale_s=600))
    assert fetched == len(BODY)
    assert not leftover.exists()


def test_a_killed_workers_partial_file_is_removed_not_trusted(hub: Hub, tmp_path: Path) -> None:
    dest = tmp_path / "models" / "model.safetensors"
    dest.parent.mkdir(parents=True)
    leftover = dest.with_name("model.safetensors.partial-99999")
    leftover.write_bytes(BODY[:1000])
    fetched, _ = fetch(tmp_path)
    assert fetched == len(BODY) and dest.read_bytes() == BODY
    assert not leftover.exists()
