"""The official OpenAI Python client against the worker's load-balancing HTTP server
(uvicorn, the app's ASGI app) with the tiny model: every response format streamed and
decoded by FFmpeg, OpenAI-shaped refusals, the bounded queue's 429, the key's 401."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import openai
import pytest

KEY = "sk-worker-test-key-1234"
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TEXT = "The first words come early. Then a second sentence follows them."


@pytest.fixture(scope="module")
def worker(tiny_volume: Path, tmp_path_factory: pytest.TempPathFactory,
           serve: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    settings = {"api_key": KEY, "api_queue": 1}
    with serve(tiny_volume, tmp_path_factory.mktemp("openai"), SERVE_F5_LOAD_BALANCING="1",
               SERVE_F5_SETTINGS=json.dumps(settings)) as served:
        yield served


def client(worker: Any, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{worker.port}/v1", api_key=key,
                         max_retries=0, timeout=300)


def decoded_seconds(path: Path, fmt: str) -> float:
    """The audio's length as FFmpeg decodes it (raw pcm told its layout)."""
    raw = ["-f", "s16le", "-ar", "24000", "-ac", "1"] if fmt == "pcm" else []
    out = subprocess.run(["ffmpeg", "-v", "error", *raw, "-i", str(path), "-f", "s16le",
                          "-ac", "1", "-ar", "24000", "-"], capture_output=True, check=True)
    assert not out.stderr, out.stderr
    return len(out.stdout) / 2 / 24000


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_streams_and_ffmpeg_decodes_it(worker: Any, tmp_path: Path,
                                                   fmt: str) -> None:
    path = tmp_path / f"speech.{fmt}"
    with client(worker).audio.speech.with_streaming_response.create(
            model="tts-1", voice="default", input=TEXT, response_format=fmt,
            speed=1.0) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        chunks = list(response.iter_bytes())
        path.write_bytes(b"".join(chunks))
    assert decoded_seconds(path, fmt) > 1.0


def test_voices_are_listed(worker: Any) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.port}/v1/audio/voices",
                                     headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        listed = json.loads(response.read())
    assert "default" in {voice["voice_id"] for voice in listed["data"]}


@pytest.mark.parametrize(("fields", "param"), [
    ({"voice": "nobody"}, "voice"),
    ({"response_format": "ogg"}, "response_format"),
    ({"speed": 9.0}, "speed"),
    ({"input": ""}, "input"),
])
def test_bad_requests_get_openai_shaped_errors(worker: Any, fields: dict[str, Any],
                                               param: str) -> None:
    ask = {"model": "tts-1", "voice": "default", "input": "Hi.", **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client(worker).audio.speech.create(**ask)
    error = caught.value.response.json()["error"]
    assert caught.value.status_code == 400
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{param}: ")


def test_a_wrong_or_missing_key_gets_401(worker: Any) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(worker, key="sk-wrong").audio.speech.create(model="tts-1", voice="default",
                                                            input="Hi.")
    assert caught.value.response.json()["error"]["code"] == "invalid_api_key"
    request = urllib.request.Request(f"http://127.0.0.1:{worker.port}/runsync",
                                     data=b'{"input": {"action": "list_voices"}}')
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request, timeout=30)
    assert denied.value.code == 401
    assert KEY not in worker.log and "sk-wrong" not in worker.log


def test_past_the_queue_requests_get_429(worker: Any) -> None:
    """One running and one waiting (api_queue = 1): of four at once, two are refused."""
    long = " ".join(["Every request here says this sentence again and again."] * 6)

    def ask(_: int) -> str:
        try:
            client(worker).audio.speech.create(model="tts-1", voice="default", input=long,
                                               response_format="pcm")
        except openai.RateLimitError as exc:
            assert exc.response.json()["error"]["code"] == "rate_limit_exceeded"
            return "429"
        return "ok"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(ask, range(4)))
    assert outcomes == ["429", "429", "ok", "ok"]
