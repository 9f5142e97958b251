"""The transcript race between two workers, each the RunPod SDK's real local server over
HTTP, sharing one bucket (moto): worker A transcribes the bucket voice ``racer`` while
worker B replaces its clip; A's transcript lands after the replacement, and must not be
taken for the new clip's.

A's transcriber is held at a gate (``SERVE_F5_TRANSCRIBE_GATE``, tests/fixtures/serve_f5.py)
so the replacement happens mid-transcription every time; then the real one runs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest

from f5worker.handler import tiny_model
from tests.f5worker.test_hostile_jobs import clip
from tests.s3server import Server

OLD_CLIP = clip(24000, 2.0)
NEW_CLIP = clip(24000, 1.5, amplitude=0.2)


@pytest.fixture
def racers(tmp_path_factory: pytest.TempPathFactory, s3: Server, tls: tuple[Path, Path],
           https_server: Any, serve: Callable[..., AbstractContextManager[Any]],
           tmp_path: Path) -> Iterator[tuple[Any, Any, Path, str]]:
    """Worker A (transcribing, its transcriber gated) and worker B (no transcriber, clients
    may replace bucket voices), on one bucket holding ``racer`` without a transcript."""
    client = s3.client()
    for item in client.list_objects_v2(Bucket=s3.bucket).get("Contents", []):
        client.delete_object(Bucket=s3.bucket, Key=item["Key"])
    client.put_object(Bucket=s3.bucket, Key="voices/racer.wav", Body=OLD_CLIP)
    gate = tmp_path / "gate"
    gate.mkdir()
    with ExitStack() as stack:
        port = stack.enter_context(https_server(NEW_CLIP, tls))
        workers = []
        for name, settings, extra in (
                ("a", {}, {"SERVE_F5_TRANSCRIBE_GATE": str(gate)}),
                ("b", {"transcribe": False, "bucket_voice_changes": True}, {})):
            volume = tmp_path_factory.mktemp(f"race-volume-{name}")
            tiny_model.build(volume)
            env = {**s3.env(), "SERVE_F5_TRUST_CA": str(tls[0]),
                   "SERVE_F5_SETTINGS": json.dumps(settings), **extra}
            workers.append(stack.enter_context(
                serve(volume, tmp_path_factory.mktemp(f"race-{name}"), **env)))
        yield workers[0], workers[1], gate, f"https://localhost:{port}/new.wav"


def test_a_transcript_a_worker_wrote_after_another_replaced_the_clip_is_not_used(
        racers: tuple[Any, Any, Path, str], s3: Server) -> None:
    a, b, gate, new_clip_url = racers
    assert a.proc.pid != b.proc.pid  # two worker processes, one bucket
    speak = {"input": {"text": "Hi.", "voice": "racer", "nfe_step": 2, "seed": 1}}
    answers: dict[str, Any] = {}
    job = threading.Thread(target=lambda: answers.update(a=a.post(speak, timeout=300)))
    job.start()
    try:
        for _ in range(1200):  # A has read the old clip and is transcribing it
            if (gate / "started").exists() or not job.is_alive():
                break
            job.join(0.1)
        assert (gate / "started").exists(), (answers, a.log[-3000:])
        replaced = b.post({"input": {"endpoint": "upload", "voice_name": "racer.wav",
                                     "voice_file_url": new_clip_url}}, timeout=300)
        assert replaced["status"] == "COMPLETED" and replaced["output"]["replaced"], replaced
    finally:
        (gate / "open").touch()
        job.join(300)
    assert answers["a"]["status"] == "COMPLETED", answers
    bucket = s3.client()
    # A's transcript of the old clip landed after B's replacement: the race happened.
    assert bucket.get_object(Bucket=s3.bucket, Key="voices/racer.txt")["Body"].read()
    assert bucket.get_object(Bucket=s3.bucket, Key="voices/racer.wav")["Body"].read() != \
        OLD_CLIP
    # B cannot transcribe: with the old clip's text taken for the new clip's, today's code
    # spoke; the text is ignored, so the voice has none here.
    after = b.post(speak, timeout=300)
    assert after.get("status") == "FAILED", after
    assert after["error"].startswith("voice: is needed: this reference has no transcript"), \
        after
    # A, which transcribes, transcribes the new clip instead of trusting the old text.
    done = len(a.events("transcribe.done"))
    again = a.post(speak, timeout=300)
    assert again["status"] == "COMPLETED", again
    assert len(a.events("transcribe.done")) == done + 1, a.log[-3000:]
