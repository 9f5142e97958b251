"""Stored outputs through the F5-TTS handler, against a real S3-compatible server (moto on
127.0.0.1): URLs that download the very bytes the handler made, the automatic upload of a
result too large to inline, named errors for wrong credentials and a dead endpoint, and a
first upload attempt that fails without losing anything."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from bootstrap.storage import Storage
from f5worker.handler import f5tts
from f5worker.handler.inputs import Limits
from tests.s3server import FlakyProxy, Server, download, free_port, moto_server

JOB = {"text": "Stored, not inlined.", "voice": "default", "nfe_step": 2, "seed": 21}


def handler_for(booted: Context, env: dict[str, str] | None, limits: Limits | None = None,
                **state: Any) -> Any:
    storage = Storage.from_env(env) if env is not None else None
    ctx = replace(booted, outputs={**booted.outputs, "storage": storage},
                  app_state=replace(booted.app_state, **state))
    return f5tts.make_handler(ctx, limits)


def run(handler: Any, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = handler({"id": "job-s3", "input": {**JOB, **fields}})
    return result


def test_a_store_returns_urls_that_download_the_same_bytes(booted: Context, s3: Server,
                                                           tiny_aligner: Any) -> None:
    import srt

    inline = run(handler_for(booted, None, aligner=tiny_aligner), return_word_timings=True)
    stored = run(handler_for(booted, s3.env(), aligner=tiny_aligner), return_word_timings=True)
    assert "audio" not in stored and "timings" not in stored
    assert stored["url_expires_s"] == 3600 and stored["seed"] == inline["seed"]
    assert download(stored["audio_url"]) == base64.b64decode(inline["audio"])  # same seed
    assert download(stored["timings_url"]).decode() == inline["timings"]
    assert list(srt.parse(download(stored["timings_url"]).decode()))
    key = stored["audio_url"].split(f"/{s3.bucket}/", 1)[1].split("?")[0]
    assert key.startswith("outputs/job-s3-") and key.endswith("/audio.wav")


def test_over_the_inline_limit_goes_to_the_store_by_itself(booted: Context, s3: Server) -> None:
    small = Limits(max_result_bytes=100_000)
    long_text = "A text long enough that its audio will not fit in a hundred kilobytes. " * 3
    # store: false asks for inline; a result that does not fit is stored anyway.
    short = run(handler_for(booted, s3.env(), small), text="A short one.", store=False)
    assert "audio" in short and "audio_url" not in short
    big = run(handler_for(booted, s3.env(), small), store=False, text=long_text)
    assert "audio" not in big
    assert len(download(big["audio_url"])) > 100_000 * 3 // 4
    # Without a store the same job is refused before any compute, naming the field.
    refused = run(handler_for(booted, None, small), text=long_text)
    assert refused["error"].startswith("text: the audio would be about")


def test_store_true_on_a_worker_without_a_bucket_is_refused(booted: Context) -> None:
    result = run(handler_for(booted, None), store=True)
    assert result["error"].startswith("store: no storage is configured on this worker")


def test_wrong_credentials_are_named_and_the_secret_goes_nowhere(booted: Context) -> None:
    secret = "wrong-secret-Kq93xz"
    with moto_server(auth=True) as locked, events.capture() as logged:
        result = run(handler_for(booted, locked.env(BUCKET_SECRET_ACCESS_KEY=secret)))
    assert result["error"].startswith("storage.E003: ")
    failed = [e for e in logged if e["event"] == "job.failed"]
    assert failed and "storage.E003" in failed[0]["error"]
    assert secret not in json.dumps(result) + json.dumps(logged, default=str)


def test_a_dead_endpoint_is_named_after_its_retries(booted: Context, s3: Server) -> None:
    port = free_port()
    dead = s3.env(BUCKET_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                  BOOTSTRAP_STORAGE_ATTEMPTS="2")
    with events.capture() as logged:
        result = run(handler_for(booted, dead))
    assert result["error"] == ("storage.E005: the result could not be stored; the worker's "
                               "log has the cause (job job-s3)")
    # The store's internal endpoint is for the operator's log, not for the client.
    failed = [e for e in logged if e["event"] == "job.failed"]
    assert f"127.0.0.1:{port}" in failed[0]["error"]
    assert str(port) not in json.dumps(result)


def test_an_amplifying_reference_is_refused_before_compute_with_a_bucket(
        booted: Context, s3: Server) -> None:
    """With a bucket nothing used to bound the audio: 660 characters over a 12 s reference
    transcribed "A." made 5,433 s of audio in 100 s of compute and 4.9 GB."""
    import io

    import numpy as np
    import soundfile

    t = np.arange(int(9.5 * 24000)) / 24000  # under 10 s: not cut to its middle
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 140 * t), 24000, format="WAV")
    with events.capture() as logged:
        result = run(handler_for(booted, s3.env()), voice=None, text=("Go on. " * 95)[:660],
                     ref_audio=base64.b64encode(buffer.getvalue()).decode(), ref_text="A.")
    assert result["error"].startswith("text: would make about "), result
    assert not [e for e in logged if e["event"] in ("job.planned", "job.progress")]


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_a_failed_first_upload_loses_nothing(booted: Context, s3: Server, mode: str) -> None:
    inline = run(handler_for(booted, None))
    with FlakyProxy(s3.url, failures=1, mode=mode) as proxy:
        stored = run(handler_for(booted, s3.env(BUCKET_ENDPOINT_URL=proxy.url)))
        assert len(proxy.puts) == 2  # the first attempt really went out, and failed
        assert download(stored["audio_url"]) == base64.b64decode(inline["audio"])
