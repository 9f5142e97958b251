"""A real S3-compatible server for the storage tests: moto in server mode, as a subprocess on
a free 127.0.0.1 port, and a proxy in front of it that fails the first uploads for real.

Two servers, because moto cannot do both at once: with its IAM authentication on it refuses
unknown keys and wrong secrets (InvalidAccessKeyId, SignatureDoesNotMatch), but then it
answers presigned GET URLs with a 500 (it looks for an Authorization header); with
authentication off it serves presigned URLs and accepts any key.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BUCKET = "outputs-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    url: str
    access_key: str
    secret_key: str
    bucket: str = BUCKET

    def env(self, **extra: str) -> dict[str, str]:
        """The worker's environment for this server, RunPod's variable names."""
        return {"BUCKET_ENDPOINT_URL": self.url, "BUCKET_ACCESS_KEY_ID": self.access_key,
                "BUCKET_SECRET_ACCESS_KEY": self.secret_key, "BUCKET_NAME": self.bucket,
                "BOOTSTRAP_STORAGE_BACKOFF_S": "0.01", **extra}

    def old_env(self, **extra: str) -> dict[str, str]:
        """The same, with the replaced F5-TTS worker's names (S3_BUCKET, AWS_*)."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "S3_BUCKET": self.bucket,
                "AWS_REGION": "us-east-1", "BOOTSTRAP_STORAGE_BACKOFF_S": "0.01", **extra}

    def client(self) -> Any:
        """A boto3 client of the test's own, to look at the bucket behind the code's back."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(signature_version="s3v4"))


@contextlib.contextmanager
def moto_server(*, auth: bool) -> Iterator[Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except (urllib.error.URLError, OSError) as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start (exit {proc.poll()})") from exc
                time.sleep(0.1)
        server = Server(url, "AKIAOPENSERVER000000", "open-server-secret-0000")
        if auth:
            server = _with_iam_user(server)
        server.client().create_bucket(Bucket=BUCKET)
        if auth:
            # From now on every request must be signed by the IAM user's key.
            request = urllib.request.Request(f"{url}/moto-api/reset-auth", data=b"0",
                                             headers={"Content-Type": "text/plain"})
            urllib.request.urlopen(request, timeout=5).close()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _with_iam_user(server: Server) -> Server:
    import boto3

    iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id=server.access_key,
                       aws_secret_access_key=server.secret_key)
    iam.create_user(UserName="worker")
    iam.put_user_policy(UserName="worker", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="worker")["AccessKey"]
    return Server(server.url, key["AccessKeyId"], key["SecretAccessKey"])


class FlakyProxy:
    """An HTTP proxy to ``upstream`` that fails the first ``failures`` PUT requests, after
    reading their whole body: ``mode`` "503" answers S3's SlowDown, "drop" closes the
    connection without an answer. While ``down`` is set, every request gets the SlowDown
    (a store that is down). Everything else is forwarded as it came (the Host header
    too, so signatures still match)."""

    def __init__(self, upstream: str, failures: int = 1, mode: str = "503") -> None:
        self.upstream = upstream.removeprefix("http://")
        self.failures, self.mode = failures, mode
        self.down = False
        self.puts: list[int] = []  # body sizes of every PUT seen, failed or forwarded
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fail = proxy.down
                if self.command == "PUT":
                    with proxy._lock:
                        proxy.puts.append(len(body))
                        failed_put = proxy.failures > 0
                        proxy.failures -= failed_put
                    if failed_put and proxy.mode == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    fail = fail or failed_put
                if fail:
                    error = (b"<Error><Code>SlowDown</Code>"
                             b"<Message>Please reduce your request rate.</Message></Error>")
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(error)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
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

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def download(url: str) -> bytes:
    """The body at ``url``, as a client of the worker would fetch a presigned URL."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body
