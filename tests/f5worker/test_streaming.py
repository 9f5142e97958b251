"""Streamed synthesis, called directly with the warm tiny model: the parts join to the
plain answer's audio, sample for sample; each part is under RunPod's 1 MB; the first chunk
is cut short; refusals end the stream."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from bootstrap.kernel.context import Context
from f5worker import f5
from f5worker.handler import f5tts, speech, streaming, tiny_model
from f5worker.handler.budget import Budget

# A first sentence under the short first chunk's bound (a quarter of the tiny voice's
# 290 bytes), then one long enough that chunk_text puts it in a chunk of its own: the
# stream's plan is then the plain job's, and their audio must be the same.
FIRST = "The first words come early."
LONG = ("This second sentence goes on and on without a single pause so that it fills "
        "nearly a whole chunk of the tiny voice by itself which is what a long paragraph "
        "read aloud looks like to the model and it still has a great deal more to say "
        "before it ever reaches its end.")
TEXT = f"{FIRST} {LONG} And a third one closes it."


def pcm(part: dict[str, Any]) -> Any:
    import soundfile

    data = base64.b64decode(part["audio"])
    if part["format"] == "pcm16":
        return np.frombuffer(data, dtype="<i2")
    samples, _ = soundfile.read(io.BytesIO(data), dtype="int16")
    return samples


def plain_pcm(answer: dict[str, Any]) -> Any:
    import soundfile

    samples, _ = soundfile.read(io.BytesIO(base64.b64decode(answer["audio"])), dtype="int16")
    return samples


@pytest.fixture(scope="module")
def svc(booted: Context) -> speech.Services:
    return f5tts.services(booted)


@pytest.fixture(scope="module")
def stream(svc: speech.Services) -> Any:
    return streaming.handler(svc, f5tts.answering(svc))


def job(**fields: Any) -> dict[str, Any]:
    return {"id": "stream-1", "input": {"voice": "default", "nfe_step": 4, **fields}}


@pytest.mark.parametrize("lengths", [[24000, 36000, 12000], [1000, 30, 5000, 2], [3600]])
def test_the_joiner_makes_cross_fade_result_sample_for_sample(lengths: list[int]) -> None:
    rng = np.random.default_rng(len(lengths))
    waves = [rng.uniform(-1, 1, n).astype(np.float32) for n in lengths]
    joiner = f5.Joiner(24000)
    joined = np.concatenate([*map(joiner.push, waves), joiner.finish()])
    assert np.array_equal(joined, f5.cross_fade(waves, 24000))


def test_long_audio_goes_in_parts_each_under_a_megabyte() -> None:
    waves = iter([np.zeros(24000 * 25, dtype=np.float32), np.ones(24000 * 21) * 0.1])
    made: list[Any] = []
    parts = list(streaming.audio_parts(waves, 24000, made))
    assert max(len(p) for p in parts) == 24000 * 10 and len(parts) >= 5
    for piece in parts:
        message = {"seq": 0, "type": "audio", "format": "pcm16", "sample_rate": 24000,
                   "samples": len(piece), "audio": base64.b64encode(
                       streaming.encoded(piece, 24000, "pcm16")).decode()}
        assert len(json.dumps(message)) < 1_000_000
    assert sum(len(p) for p in parts) == sum(len(m) for m in made)


@pytest.mark.parametrize("fmt", ["pcm16", "flac"])
def test_the_parts_join_to_the_plain_answers_audio(stream: Any, svc: speech.Services,
                                                   fmt: str) -> None:
    plain = f5tts.answering(svc)(job(text=TEXT, seed=5))
    parts = list(stream(job(text=TEXT, seed=5, stream=True, stream_format=fmt)))
    *audio, final = parts
    assert [p["seq"] for p in parts] == list(range(len(parts)))
    assert {p["type"] for p in audio} == {"audio"} and final["type"] == "final"
    assert final["chunks"] == 3
    streamed, whole = np.concatenate([pcm(p) for p in audio]), plain_pcm(plain)
    # Same length, same samples to the last bit of 16: the tiny model's CPU float math was
    # seen to differ by one step between two runs of one process (its own, not the join's:
    # the joiner is exact, above).
    assert len(streamed) == len(whole)
    assert np.abs(streamed.astype(np.int32) - whole).max() <= 1
    for name in ("duration_s", "seed", "sample_rate", "reference"):
        assert final[name] == plain[name], name
    assert "audio" not in final and all(len(json.dumps(p)) < 1_000_000 for p in parts)


def test_a_long_first_chunk_is_cut_short_for_the_first_audio(svc: speech.Services) -> None:
    request = f5tts.checked({"text": f"{LONG} {FIRST}", "voice": "default"}, svc)
    plain = speech.prepare(request, svc, Budget(svc.limits)).plan
    short = speech.prepare(request, svc, Budget(svc.limits), short_first=True).plan
    bound = len(f5.ref_text_for_model(tiny_model.VOICE_TEXT).encode()) / 2.0 * 20 / 4
    assert len(short.chunks) > len(plain.chunks)
    assert len(short.chunks[0].encode()) <= bound < len(plain.chunks[0].encode())
    assert " ".join(short.chunks).split() == " ".join(plain.chunks).split()


def test_a_job_not_asking_to_stream_gets_its_whole_answer_as_one_part(stream: Any) -> None:
    (answer,) = list(stream(job(text="Just once.", seed=1)))
    assert answer["audio"] and answer["seed"] == 1


@pytest.mark.parametrize(("fields", "error"), [
    ({"stream_format": "ogg"}, "stream_format: must be one of pcm16, flac"),
    ({"remove_silence": True}, "remove_silence: works on the whole audio"),
    ({"speed": "fast"}, "speed: "),
])
def test_a_refused_stream_is_one_error_part(stream: Any, fields: dict[str, Any],
                                            error: str) -> None:
    (part,) = list(stream(job(text="No.", stream=True, **fields)))
    assert part["error"].startswith(error), part


def test_the_job_budget_holds_while_streaming(svc: speech.Services) -> None:
    """A job predicted to run past its deadline before a chunk ends the stream with the
    budget's refusal (job.E001 or E002); the model is free again for the next job."""
    tight = replace(svc, limits=replace(svc.limits, job_timeout_s=0.05))
    handler = streaming.handler(tight, f5tts.answering(tight))
    parts = list(handler(job(text=TEXT, stream=True, nfe_step=8)))
    assert parts[-1]["error"].startswith(("job.E001", "job.E002")), parts[-1]
    assert svc.model.lock.acquire(timeout=1)
    svc.model.lock.release()
