"""The real worker path: stages through the real runner, then the real RunPod SDK local
API server on 127.0.0.1, answering HTTP jobs with the tiny model."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def worker(tiny_volume: Path, tmp_path_factory: pytest.TempPathFactory,
           serve: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    with serve(tiny_volume, tmp_path_factory.mktemp("serve")) as served:
        yield served


def test_runsync_answers_with_a_decodable_wav_of_the_expected_length(worker: Any) -> None:
    import soundfile

    from f5worker.f5 import expected_samples
    from f5worker.handler import tiny_model

    text = "Hello from the local RunPod server."
    answer = worker.post({"input": {"text": text, "voice": "default", "seed": 1,
                                     "nfe_step": 4}})
    assert answer["status"] == "COMPLETED", answer
    wav = base64.b64decode(answer["output"]["audio"])
    samples, rate = soundfile.read(io.BytesIO(wav))
    assert wav[:4] == b"RIFF" and rate == 24000
    ref_samples = int(tiny_model.VOICE_SECONDS * tiny_model.SAMPLE_RATE)
    assert len(samples) == expected_samples(ref_samples, tiny_model.VOICE_TEXT, text)


def test_the_voice_actions_over_http(worker: Any, tmp_path: Path) -> None:
    from f5worker.handler import tiny_model

    wav = tiny_model.write_voice(tmp_path, "served", seconds=2.0)
    audio = base64.b64encode(wav.read_bytes()).decode()
    added = worker.post({"input": {"action": "add_voice", "name": "served",
                                    "ref_audio": audio, "ref_text": "Served over HTTP."}})
    assert added["status"] == "COMPLETED" and added["output"]["voice"]["name"] == "served"
    listed = worker.post({"input": {"action": "list_voices"}})["output"]["voices"]
    assert {"served", "default"} <= {v["name"] for v in listed}
    spoken = worker.post({"input": {"text": "Hi.", "voice": "served", "nfe_step": 2}})
    assert spoken["status"] == "COMPLETED" and spoken["output"]["reference"] == {
        "voice": "served"}
    assert worker.post({"input": {"action": "delete_voice", "name": "served"}})[
        "output"] == {"deleted": "served"}
    refused = worker.post({"input": {"action": "delete_voice", "name": "default"}})
    assert refused["status"] == "FAILED"
    assert refused["error"] == "name: 'default' is a provisioned voice and cannot be deleted"


def test_bad_input_fails_the_job_naming_the_field(worker: Any) -> None:
    answer = worker.post({"input": {"text": "hi", "voice": "default", "speed": "fast"}})
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
        worker: Any, payload: Any) -> None:
    answer = worker.post({"input": payload})
    assert answer.get("status") in ("COMPLETED", "FAILED") or "http_status" in answer, answer
    if answer.get("status") == "FAILED":
        assert isinstance(answer["error"], str) and answer["error"]
    if answer.get("status") == "COMPLETED":
        assert base64.b64decode(answer["output"]["audio"])[:4] in (b"RIFF", b"fLaC")


def test_not_even_json_is_answered_and_the_server_keeps_serving(worker: Any) -> None:
    assert worker.post(b"{not json")["http_status"] == 422
    answer = worker.post({"input": {"text": "Still here.", "voice": "default",
                                     "nfe_step": 2}})
    assert answer["status"] == "COMPLETED"


def test_the_audio_is_not_logged(worker: Any) -> None:
    """The SDK logs whole outputs at DEBUG, its default; the handler turns that down."""
    answer = worker.post({"input": {"text": "Not in the log.", "voice": "default",
                                     "nfe_step": 2}})
    assert answer["status"] == "COMPLETED"
    log = worker.log
    assert answer["output"]["audio"][:200] not in log
    assert "Handler output" not in log
