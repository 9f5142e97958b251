"""A stand-in for the Hugging Face Hub's file API on 127.0.0.1, enough for huggingface_hub's
own ``hf_hub_download`` (read from its ``file_download.py``): ``HEAD`` and ``GET``
``/{repo}/resolve/{revision}/{path}`` answer with the headers it requires, ``X-Repo-Commit``
(the commit, which names the snapshot folder) and ``ETag`` (which names the blob), and the
body's ``Content-Length``; a missing file is a 404 with ``X-Error-Code: EntryNotFound``,
as the Hub sends. It is NOT the Hub: no redirects to a CDN, no Xet, no API.

``state["files"]`` maps a resolve path (``/org/name/resolve/main/file``) to its bytes, or to
an int status to answer instead (a list of either: answered in order, the last repeated).
``state["asked"]`` lists the paths of the HEAD requests (every lookup starts with one),
``state["requests"]`` every request as (method, path, Authorization header).
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the stand-in's one commit


def new_state() -> dict[str, Any]:
    return {"files": {}, "asked": [], "requests": [], "delay_s": 0.0}


def _answer(state: dict[str, Any], path: str) -> bytes | int:
    found = state["files"].get(path, 404)
    if isinstance(found, list):
        return found.pop(0) if len(found) > 1 else found[0]
    return found


def handler(state: dict[str, Any]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self, body_too: bool) -> None:
            state["requests"].append((self.command, self.path,
                                      self.headers.get("Authorization", "")))
            if self.command == "HEAD":
                state["asked"].append(self.path)
            answer = _answer(state, self.path)  # plain URLs too (the aligner's)
            if isinstance(answer, int):
                self.send_response(answer)
                if answer == 404:
                    self.send_header("X-Error-Code", "EntryNotFound")
                if answer == 429 or answer >= 500:
                    self.send_header("Retry-After", "0")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(answer).hexdigest()}"')
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if body_too:
                if state["delay_s"]:
                    threading.Event().wait(state["delay_s"])
                self.wfile.write(answer)

        def do_HEAD(self) -> None:
            self._serve(body_too=False)

        def do_GET(self) -> None:
            self._serve(body_too=True)

    return Handler


@contextmanager
def running(state: dict[str, Any]) -> Iterator[str]:
    """The stand-in serving ``state``; yields its URL (for HF_ENDPOINT)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
