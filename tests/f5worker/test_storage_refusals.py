"""With the bucket down, each refusal says what failed, over HTTP to the RunPod SDK's real
local server: a listing, a download, a voice upload and a synthesis with a bucket voice
each name the operation (list, read, write) and the key as stored, not "the result could
not be stored" (today's answer to all four). The store is a real S3-compatible server
(moto) behind the tests' proxy (tests/s3server.py), set down: 503 to everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from f5worker.handler import tiny_model
from tests.f5worker.test_hostile_jobs import clip
from tests.s3server import FlakyProxy, Server


@pytest.fixture(scope="module")
def switch(s3: Server) -> Iterator[FlakyProxy]:
    """The store behind a proxy that can be set down (every request a 503 SlowDown)."""
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="voices/kept.wav", Body=clip(24000, 2.0))
    with FlakyProxy(s3.url, failures=0) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, s3: Server, switch: FlakyProxy,
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
        worker: Any, switch: FlakyProxy, fields: dict[str, Any], truth: str) -> None:
    switch.down = True
    try:
        answer = worker.post({"input": fields})
    finally:
        switch.down = False
    assert answer["status"] == "FAILED", answer
    error = answer["error"]
    # Today's answer to each: "storage.E006: the result could not be stored; ...".
    assert error.startswith("storage.E00"), error
    assert truth in error and "could not be stored" not in error, error
    assert switch.url.split(":")[-1] not in error  # the endpoint stays in the log
