"""The real worker path: stages through the real runner, then the real RunPod SDK local
API server on 127.0.0.1, answering HTTP jobs with the tiny model."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "tests" / "fixtures" / "serve_f5.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(port: int, body: Any, timeout: float = 60) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/runsync", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # FastAPI answers schema errors with 422
        return {"http_status": exc.code}
    return answer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def server(tiny_volume: Path, workdir: Path) -> Iterator[int]:
    port = free_port()
  # the SDK keeps .runpod_jobs.pkl in its cwd
    log = (workdir / "worker.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("RUNPOD_LOG_LEVEL", None)
    proc = subprocess.Popen([sys.executable, str(SERVE), str(tiny_volume), str(port)],
                            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode}: "
                                 f"{(workdir / 'worker.log').read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("worker did not start serving in 120 s") from None
            time.sleep(0.5)
    yield port
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_runsync_answers_with_a_decodable_wav_of_the_expected_length(server: int) -> None:
    import soundfile

    from bootstrap.f5 import expected_samples
    from handler import tiny_model

    text = "Hello from the local RunPod server."
    answer = post(server, {"input": {"text": text, "voice": "default", "seed": 1,
                                     "nfe_step": 4}})
    assert answer["status"] == "COMPLETED", answer
    wav = base64.b64decode(answer["output"]["audio"])
    samples, rate = soundfile.read(io.BytesIO(wav))
    assert wav[:4] == b"RIFF" and rate == 24000
    ref_samples = int(tiny_model.VOICE_SECONDS * tiny_model.SAMPLE_RATE)
    assert len(samples) == expected_samples(ref_samples, tiny_model.VOICE_TEXT, text)


def test_the_voice_actions_over_http(server: int, tmp_path: Path) -> None:
    from handler import tiny_model

    wav = tiny_model.write_voice(tmp_path, "served", seconds=2.0)
    audio = base64.b64encode(wav.read_bytes()).decode()
    added = post(server, {"input": {"action": "add_voice", "name": "served",
                                    "ref_audio": audio, "ref_text": "Served over HTTP."}})
    assert added["status"] == "COMPLETED" and added["output"]["voice"]["name"] == "served"
    listed = post(server, {"input": {"action": "list_voices"}})["output"]["voices"]
    assert {"served", "default"} <= {v["name"] for v in listed}
    spoken = post(server, {"input": {"text": "Hi.", "voice": "served", "nfe_step": 2}})
    assert spoken["status"] == "COMPLETED" and spoken["output"]["reference"] == {
        "voice": "served"}
    assert post(server, {"input": {"action": "delete_voice", "name": "served"}})[
        "output"] == {"deleted": "served"}
    refused = post(server, {"input": {"action": "delete_voice", "name": "default"}})
    assert refused["status"] == "FAILED"
    assert refused["error"] == "name: 'default' is a provisioned voice and cannot be deleted"


def test_bad_input_fails_the_job_naming_the_field(server: int) -> None:
    answer = post(server, {"input": {"text": "hi", "voice": "default", "speed": "fast"}})
    assert answer["status"] == "FAILED" and answer["error"].startswith("speed: ")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=8)
FIELDS = st.fixed_dictionaries({}, optional={
    "text": st.one_of(st.text(max_size=60), st.integers(), st.none()),
    "voice": st.one_of(st.just("default"), st.text(max_size=12), st.integers()),
    "ref_audio": st.one_of(st.text(max_size=40), st.binary(max_size=30).map(
        lambda b: base64.b64encode(b).decode()), st.just("https://127.0.0.1/x.wav")),
    "ref_text": st.one_of(st.text(max_size=20), st.none()),
    "speed": st.one_of(st.floats(), st.integers(), st.text(max_size=5)),
    "seed": st.one_of(st.integers(), st.booleans(), st.floats()),
    "nfe_step": st.one_of(st.integers(-5, 200), st.text(max_size=3)),
    "cfg_strength": st.one_of(st.floats(), st.none()),
    "remove_silence": st.one_of(st.booleans(), st.integers()),
    "format": st.one_of(st.sampled_from(["wav", "flac", "mp3"]), st.integers()),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)
@given(payload=st.one_of(FIELDS, JSON))
def test_random_and_malformed_inputs_get_answers_and_the_server_keeps_serving(
        server: int, payload: Any) -> None:
    answer = post(server, {"input": payload})
    assert answer.get("status") in ("COMPLETED", "FAILED") or "http_status" in answer, answer
    if answer.get("status") == "FAILED":
        assert isinstance(answer["error"], str) and answer["error"]
    if answer.get("status") == "COMPLETED":
        assert base64.b64decode(answer["output"]["audio"])[:4] in (b"RIFF", b"fLaC")


def test_not_even_json_is_answered_and_the_server_keeps_serving(server: int) -> None:
    assert post(server, b"{not json")["http_status"] == 422
    answer = post(server, {"input": {"text": "Still here.", "voice": "default",
                                     "nfe_step": 2}})
    assert answer["status"] == "COMPLETED"


def test_the_audio_is_not_logged(server: int, workdir: Path) -> None:
    """The SDK logs whole outputs at DEBUG, its default; the handler turns that down."""
    answer = post(server, {"input": {"text": "Not in the log.", "voice": "default",
                                     "nfe_step": 2}})
    assert answer["status"] == "COMPLETED"
    log = (workdir / "worker.log").read_text()
    assert answer["output"]["audio"][:200] not in log
    assert "Handler output" not in log
