"""With the bucket down, each refusal says what failed, over HTTP to the RunPod SDK's real
local server: a listing, a download, a voice upload and a synthesis with a bucket voice
each name the operation (list, read, write) and the key as stored, not "the result could
not be stored" (today's answer to all four). The store is a real S3-compatible server
(moto) behind a test proxy that forwards while up and answers 503 to everything when down.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from f5worker.handler import tiny_model
from tests.f5worker.test_hostile_jobs import clip
from tests.s3server import Server


class Switch:
    """A proxy to ``upstream``: forwards while ``up``, else 503 SlowDown to everything."""

    def __init__(self, upstream: str) -> None:
        self.up = True
        switch = self
        target = upstream.removeprefix("http://")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not switch.up:
                    error = b"<Error><Code>SlowDown</Code><Message>down</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                conn = http.client.HTTPConnection(target, timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding",
                                            "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def switch(s3: Server) -> Iterator[Switch]:
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="voices/kept.wav", Body=clip(24000, 2.0))
    proxy = Switch(s3.url)
    yield proxy
    proxy.server.shutdown()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, s3: Server, switch: Switch,
           tls: tuple[Path, Path],
           serve: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    volume = tmp_path_factory.mktemp("refusals-volume")
    tiny_model.build(volume)
    env = {**s3.old_env(AWS_ENDPOINT_URL=switch.url, BOOTSTRAP_STORAGE_ATTEMPTS="1"),
           "SERVE_F5_TRUST_CA": str(tls[0]),
           "SERVE_F5_SETTINGS": json.dumps({"transcribe": False})}
    with serve(volume, tmp_path_factory.mktemp("refusals"), **env) as served:
        yield served


@pytest.mark.parametrize(("fields", "truth"), [
    ({"endpoint": "list_voices"}, "the bucket could not list voices/"),
    ({"endpoint": "download", "job_id": "job-1"}, "the bucket could not read "),
    ({"text": "Hi.", "local_voice": "kept.wav"}, "the bucket could not read voices/kept."),
    ({"action": "delete_voice", "name": "kept"}, "the bucket could not read voices/kept."),
])
def test_with_the_bucket_down_each_refusal_names_what_failed(
        worker: Any, switch: Switch, fields: dict[str, Any], truth: str) -> None:
    switch.up = False
    try:
        answer = worker.post({"input": fields})
    finally:
        switch.up = True
    assert answer["status"] == "FAILED", answer
    error = answer["error"]
    # Today's answer to each: "storage.E006: the result could not be stored; ...".
    assert error.startswith("storage.E00"), error
    assert truth in error and "could not be stored" not in error, error
    assert switch.url.split(":")[-1] not in error  # the endpoint stays in the log
