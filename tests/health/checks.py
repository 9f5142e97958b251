"""Helpers of the load-balancing tests: a client that polls the health path over real
HTTP and remembers every answer, and a reader that keeps a boot's stdout flowing while it
polls (a full pipe would stall the supervisor)."""

from __future__ import annotations

import datetime
import http.client
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    at: float  # time.time() when it came back
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def epoch(ts: str) -> float:
    """An event's ``ts`` (``2026-12-07T13:22:51.123Z``) as seconds since the epoch."""
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.UTC).timestamp()


def get(port: int, path: str = "/ping", timeout: float = 2.0) -> Answer | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return Answer(time.time(), response.status, dict(response.getheaders()),
                      response.read())
    except OSError:
        return None
    finally:
        conn.close()


def post(port: int, path: str, body: Any, timeout: float = 30.0) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return Answer(time.time(), response.status, dict(response.getheaders()),
                      response.read())
    finally:
        conn.close()


@dataclass
class Poller:
    """Asks ``port`` for ``path`` every ``every_s`` in a thread, keeping every answer."""

    port: int
    path: str = "/ping"
    every_s: float = 0.02
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Poller:
        threading.Thread(target=self._poll, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _poll(self) -> None:
        while not self._stop.is_set():
            answer = get(self.port, self.path, timeout=1.0)
            # Status 0: nothing answered (a closed port, a refused connection).
            self.answers.append(answer or Answer(time.time(), 0, {}, b""))
            self._stop.wait(self.every_s)

    def first(self, status: int) -> Answer | None:
        return next((a for a in list(self.answers) if a.status == status), None)

    def wait_for(self, status: int, timeout: float) -> Answer:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            found = self.first(status)
            if found is not None:
                return found
            time.sleep(0.02)
        seen = sorted({a.status for a in self.answers})
        raise AssertionError(f"no {status} within {timeout} s (answers seen: {seen})")


class Output:
    """Reads a boot's stdout in a thread; every parsed event, with when it was read."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, pipe: Any) -> None:
        for line in pipe:
            self.lines.append(line)
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["event"] == name]

    def wait_for(self, name: str, timeout: float) -> dict[str, Any]:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            found = self.named(name)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {name} event within {timeout} s:\n{''.join(self.lines)}")

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
