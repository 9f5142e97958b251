"""The supervisor's answer on the health path, from the first second of a boot.

A ``ThreadingHTTPServer`` of the standard library in a daemon thread (the supervisor stays
light). What it answers follows the boot:

- booting: 204, the current stage in the ``X-Bootstrap-Stage`` header (a 204 has no body
  by HTTP's rule, and a client that reads one breaks the connection's next answer);
- healthy (the app's HTTP server answered its probe): 200, and on every later check the
  app's own answer, asked again, so an app that stops answering turns the check into 503;
- failed: 503, the failure as JSON (stage, code, msg, hint, cause), until the process exits.

Where the app's server shares the port (``PORT == PORT_HEALTH``), both listen with
``SO_REUSEPORT`` and this one closes once the app's server has answered: from then on the
app's server answers the health path itself (bootstrap/stages/serve_http.py adds it).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bootstrap.kernel import events

# How long a check may wait for the app's own answer before it says 503.
PROBE_TIMEOUT_S = 5.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # The app's server binds the same port with SO_REUSEPORT when the two share it.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class HealthServer:
    def __init__(self, port: int, path: str, stage_of: Callable[[], str | None],
                 app_port: int | None = None, host: str = "0.0.0.0") -> None:
        self.port, self.path, self.host = port, path, host
        self.stage_of = stage_of  # the stage running now, for the 204's header
        self.app_port = app_port  # the app's own server, asked on each check once healthy
        self.healthy = False
        self.failure: dict[str, Any] | None = None
        self._server: _Server | None = None
        self._lock = threading.Lock()

    # -- the listener ----------------------------------------------------------------------

    def start(self) -> bool:
        """Listen; False (and a warning) when the port cannot be bound."""
        with self._lock:
            if self._server is not None:
                return True
            try:
                self._server = _Server((self.host, self.port), self._handler_class())
            except OSError as exc:
                events.emit("warn", "health.unavailable", port=self.port, error=str(exc),
                            msg="the health path cannot be answered: the port is taken")
                return False
            threading.Thread(target=self._server.serve_forever, name="health", daemon=True,
                             kwargs={"poll_interval": 0.2}).start()
        return True

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            _answer_queued(server)
            server.server_close()

    # -- what it answers ------------------------------------------------------------------

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body of a check now."""
        if self.failure is not None:
            return 503, {"Content-Type": "application/json"}, _json({"status": "failed",
                                                                    **self.failure})
        if not self.healthy:
            stage = self.stage_of() or "starting"
            return 204, {"X-Bootstrap-Stage": stage, "X-Bootstrap-Status": "booting"}, b""
        if self.app_port is not None and probe(self.app_port, self.path) != 200:
            return 503, {"Content-Type": "application/json"}, _json({
                "status": "unhealthy",
                "msg": f"the app's HTTP server on port {self.app_port} did not answer "
                       f"{self.path} with 200"})
        return 200, {"Content-Type": "application/json"}, _json({"status": "healthy"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        health = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # the name http.server calls
                if self.path.split("?", 1)[0] != health.path:
                    self._send(404, {"Content-Type": "application/json"},
                               _json({"error": f"only {health.path} is answered while "
                                               "the worker boots"}))
                    return
                self._send(*health.answer())

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 204:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and status != 204:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a check every few seconds is no event

        return Handler


def _answer_queued(server: _Server) -> None:
    """Answer the checks already queued on the listener: closing it would reset them, and
    with a shared port the platform would read a check that found no server."""
    server.socket.setblocking(False)
    while True:
        try:
            conn, address = server.socket.accept()
        except OSError:  # none left (BlockingIOError), or the listener is gone
            return
        conn.settimeout(None)
        server.process_request(conn, address)


def probe(port: int, path: str, timeout: float = PROBE_TIMEOUT_S) -> int | None:
    """The status the app's server on 127.0.0.1:``port`` answers ``path`` with; None when
    it does not answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()
