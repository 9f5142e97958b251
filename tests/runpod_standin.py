"""A STAND-IN of RunPod's worker-facing API, on 127.0.0.1, for the tests.

RunPod's platform cannot run here, so this plays it, written from what the real SDK
(runpod 1.12, ``runpod/serverless/modules/``) sends and expects:

- job-take (``rp_job.get_job``): ``GET {RUNPOD_WEBHOOK_GET_JOB}`` with ``$ID`` replaced by
  the worker's id and ``&job_in_progress=0|1`` appended; a long poll answered with one job
  ``{"id", "input"}`` (200, JSON) or 204 when none came in time. ``job-take-batch``
  (``&batch_size=N``) answers a list.
- job-stop (``rp_job.get_stop_signals``): the job-take URL with ``/job-stop/``; 204, or
  ``{"jobsToStop": [...]}``.
- job-done and job-stream (``rp_http._transmit``): ``POST`` of the JSON result (sent as
  ``application/x-www-form-urlencoded``) to ``RUNPOD_WEBHOOK_POST_OUTPUT`` /
  ``RUNPOD_WEBHOOK_POST_STREAM`` with ``$RUNPOD_POD_ID`` and ``$ID`` (the job's) replaced and
  ``&isStream=true|false`` appended. A result with ``error`` is a FAILED job.
- ping (``rp_ping.Heartbeat``): ``GET {RUNPOD_WEBHOOK_PING}`` with ``job_id`` and
  ``runpod_version`` (and, from a failed fitness check, ``status=unhealthy``).

Every request must carry ``Authorization: <RUNPOD_AI_API_KEY>`` (the SDK's header, no
scheme); one without it is answered 401 and recorded in ``unauthorized``.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ENDPOINT = "standin-endpoint"
API_KEY = "rpa_STANDIN_KEY_not_a_real_one"


@dataclass
class Done:
    """One job's result as the worker posted it: to job-done or (a part) to job-stream."""

    job_id: str
    body: dict[str, Any]
    stream: bool
    at: float  # time.time() when it arrived

    @property
    def failed(self) -> bool:
        return "error" in self.body


@dataclass
class StandIn:
    port: int
    queue: list[dict[str, Any]] = field(default_factory=list)
    taken: list[dict[str, Any]] = field(default_factory=list)
    done: list[Done] = field(default_factory=list)
    streamed: list[Done] = field(default_factory=list)
    pings: list[dict[str, list[str]]] = field(default_factory=list)
    takes: int = 0  # job-take requests, answered or not
    unauthorized: list[str] = field(default_factory=list)
    to_stop: list[str] = field(default_factory=list)
    hold_s: float = 0.5  # how long a job-take with nothing queued waits before its 204
    lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, worker_id: str = "standin-worker") -> dict[str, str]:
        """The variables RunPod sets in a serverless worker, pointing here."""
        return {
            "RUNPOD_WEBHOOK_GET_JOB": f"{self.base}/v2/{ENDPOINT}/job-take/$ID?gpu=STANDIN",
            "RUNPOD_WEBHOOK_POST_OUTPUT":
                f"{self.base}/v2/{ENDPOINT}/job-done/$RUNPOD_POD_ID/$ID?gpu=STANDIN",
            "RUNPOD_WEBHOOK_POST_STREAM":
                f"{self.base}/v2/{ENDPOINT}/job-stream/$RUNPOD_POD_ID/$ID?gpu=STANDIN",
            "RUNPOD_WEBHOOK_PING": f"{self.base}/v2/{ENDPOINT}/ping/$RUNPOD_POD_ID?gpu=STANDIN",
            "RUNPOD_PING_INTERVAL": "1000",
            "RUNPOD_AI_API_KEY": API_KEY,
            "RUNPOD_POD_ID": worker_id,
            "RUNPOD_ENDPOINT_ID": ENDPOINT,
        }

    def add_job(self, job_input: Any, job_id: str | None = None) -> str:
        with self.lock:
            job_id = job_id or f"job-{len(self.queue) + len(self.taken) + 1}"
            self.queue.append({"id": job_id, "input": job_input})
            self.lock.notify_all()
        return job_id

    def result(self, job_id: str, timeout: float = 60) -> Done:
        """The job's final result, waiting for it."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                found = [d for d in self.done if d.job_id == job_id]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"job {job_id} got no result within {timeout} s; "
                                         f"taken: {self.taken}, done: {self.done}")
                self.lock.wait(left)

    def _take(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.hold_s
        with self.lock:
            self.takes += 1
            while not self.queue and time.monotonic() < deadline:
                self.lock.wait(deadline - time.monotonic())
            jobs, self.queue[:] = self.queue[:count], self.queue[count:]
            self.taken.extend(jobs)
            return jobs

    def _record(self, job_id: str, body: dict[str, Any], stream: bool) -> None:
        with self.lock:
            (self.streamed if stream else self.done).append(
                Done(job_id, body, stream, time.time()))
            self.lock.notify_all()


def _handler(state: StandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == API_KEY:
                return True
            state.unauthorized.append(self.path)
            self._answer(401, {"error": "unauthorized"})
            return False

        def _route(self) -> tuple[list[str], dict[str, list[str]]]:
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts[:2] != ["v2", ENDPOINT]:
                return [], {}
            return parts[2:], urllib.parse.parse_qs(url.query)

        def do_GET(self) -> None:
            if not self._authorized():
                return
            parts, query = self._route()
            kind = parts[0] if parts else ""
            if kind == "job-take":
                jobs = state._take(1)
                self._answer(200, jobs[0]) if jobs else self._answer(204)
            elif kind == "job-take-batch":
                count = int(query.get("batch_size", ["1"])[0])
                jobs = state._take(count)
                self._answer(200, jobs) if jobs else self._answer(204)
            elif kind == "job-stop":
                time.sleep(state.hold_s)  # a long poll, shorter here
                with state.lock:
                    ids, state.to_stop[:] = list(state.to_stop), []
                self._answer(200, {"jobsToStop": ids}) if ids else self._answer(204)
            elif kind == "ping":
                state.pings.append(query)
                self._answer(200, {})
            else:
                self._answer(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self._authorized():
                return
            parts, _ = self._route()
            if len(parts) != 3 or parts[0] not in ("job-done", "job-stream"):
                self._answer(404, {"error": f"no route {self.path}"})
                return
            body = json.loads(raw.decode())
            state._record(parts[2], body, stream=parts[0] == "job-stream")
            self._answer(200, {})

    return Handler


def failed_one_job(api: StandIn, events: list[dict[str, Any]], stage: str, code: str,
                   hint: str, job: str) -> dict[str, Any]:
    """Assert what a failed boot owes the platform: exactly ``job`` taken, and failed within
    5 s of the stage's failure with the boot's stage, id, hint and report. Its error, parsed."""
    summary = events[-1]
    assert (summary["event"], summary["stage"], summary["code"]) == ("summary", stage, code), \
        summary
    assert [j["id"] for j in api.taken] == [job], "exactly one job taken"
    done = api.result(job, timeout=1)
    error: dict[str, Any] = json.loads(done.body["error"])
    assert (error["stage"], error["code"], error["exit_code"]) == (
        stage, code, summary["exit_code"])
    assert hint in error["hint"] and error["report"] == summary["report"] is not None
    failed_at = next(e["ts"] for e in events if e["event"] == "stage"
                     and e.get("stage") == stage and e.get("status") == "fail")
    assert done.at - seconds(failed_at) < 5
    posted = [e for e in events if e["event"] == "boot.job_failed"]
    assert [(e["status"], e.get("job_id")) for e in posted] == [("posted", job)]
    return error


def seconds(ts: str) -> float:
    """An event's ISO timestamp as epoch seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@contextmanager
def standin() -> Iterator[StandIn]:
    """A stand-in of RunPod's worker API on a free port of 127.0.0.1, for the block."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    state = StandIn(int(server.server_address[1]))
    server.RequestHandlerClass = _handler(state)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
