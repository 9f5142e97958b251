"""The replaced worker's dialect through the real handler, the tiny model and a real
S3-compatible server (moto on 127.0.0.1) holding that worker's bucket layout."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pysubs2
import pytest
import soundfile
import srt
import webvtt

from bootstrap.kernel.context import Context
from bootstrap.storage import Storage
from f5worker.handler import f5tts, tiny_model
from tests.s3server import Server, download

OLD_FIELDS = {"audio_url": str, "duration": float, "job_id": str, "seed": int, "status": str,
              "text": str}
TIMING_FIELDS = {"timing_files": dict, "timing_format": str, "timing_method": str,
                 "word_count": int, "timing_confidence": float}


@pytest.fixture
def bucket(s3: Server, tmp_path: Path) -> Iterator[Server]:
    """The old layout: voices/narrator.wav with its transcript, voices/mute.wav without."""
    client = s3.client()
    for item in client.list_objects_v2(Bucket=s3.bucket).get("Contents", []):
        client.delete_object(Bucket=s3.bucket, Key=item["Key"])
    for name in ("narrator", "mute"):
        wav = tiny_model.write_voice(tmp_path, name, seconds=3.0)
        client.put_object(Bucket=s3.bucket, Key=f"voices/{name}.wav", Body=wav.read_bytes())
    client.put_object(Bucket=s3.bucket, Key="voices/narrator.txt",
                      Body=tiny_model.VOICE_TEXT.encode())
    yield s3


def handler_for(booted: Context, env: dict[str, str] | None, **state: Any) -> Any:
    storage = Storage.from_env(env) if env is not None else None
    ctx = replace(booted, outputs={**booted.outputs, "storage": storage},
                  app_state=replace(booted.app_state, **state))
    return f5tts.make_handler(ctx)


def run(handler: Any, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = handler({"id": "rp-job", "input": fields})
    return answer


def test_tts_answers_every_old_field_and_stores_in_the_old_layout(
        booted: Context, bucket: Server, tiny_aligner: Any) -> None:
    handler = handler_for(booted, bucket.old_env(), aligner=tiny_aligner)
    text = "I am a puppet, and the digital world owns me!"
    answer = run(handler, text=text, speed=0.9, seed=42, local_voice="narrator.wav",
                 return_word_timings=True, timing_format="srt")
    assert "error" not in answer, answer
    for name, kind in {**OLD_FIELDS, **TIMING_FIELDS}.items():
        assert isinstance(answer[name], kind), (name, answer)
    assert (answer["status"], answer["seed"], answer["text"]) == ("completed", 42, text)
    assert answer["timing_method"] == "forced_alignment"
    assert answer["word_count"] == len(text.split()) and 0 <= answer["timing_confidence"] <= 1
    samples, rate = soundfile.read(io.BytesIO(download(answer["audio_url"])))
    assert rate == 24000 and abs(len(samples) / rate - answer["duration"]) < 1e-3
    files = answer["timing_files"]
    assert sorted(files) == ["ass", "csv", "json", "srt", "vtt"]
    words = text.split()
    assert " ".join(c.content for c in srt.parse(download(files["srt"]).decode())).split() == words
    assert " ".join(c.text for c in webvtt.from_string(
        download(files["vtt"]).decode())).split() == words
    rows = csv.DictReader(io.StringIO(download(files["csv"]).decode()))
    assert [row["word"] for row in rows] == words
    assert [w["word"] for w in json.loads(download(files["json"]))] == words
    events = pysubs2.SSAFile.from_string(download(files["ass"]).decode()).events
    assert " ".join(e.plaintext for e in events).split() == words
    keys = sorted(o["Key"] for o in bucket.client().list_objects_v2(
        Bucket=bucket.bucket).get("Contents", []) if not o["Key"].startswith("voices/"))
    job = answer["job_id"]
    assert keys == sorted([f"output/{job}.wav", *(f"timings/{job}.{f}" for f in files)])


def test_download_returns_the_same_objects_and_names_an_unknown_job(
        booted: Context, bucket: Server, tiny_aligner: Any) -> None:
    handler = handler_for(booted, bucket.old_env(), aligner=tiny_aligner)
    spoken = run(handler, text="Hello world, this is a test of the timing system.", seed=123,
                 return_word_timings=True, timing_format="ass", timing_method="whisperx",
                 local_voice="narrator.wav")
    job = spoken["job_id"]
    audio = run(handler, endpoint="download", job_id=job)
    assert audio == {"audio_url": audio["audio_url"], "content_type": "audio/wav",
                     "filename": f"{job}.wav", "status": "ready"}
    assert download(audio["audio_url"]) == download(spoken["audio_url"])
    timing = run(handler, endpoint="download", job_id=job, type="timing", format="srt")
    assert (timing["format"], timing["filename"], timing["status"]) == ("srt", f"{job}.srt",
                                                                         "ready")
    assert download(timing["timing_url"]) == download(spoken["timing_files"]["srt"])
    unknown = run(handler, endpoint="download", job_id="0b9e8a7c-no-such-job")
    assert unknown["error"] == "job_id: no stored audio for job '0b9e8a7c-no-such-job'"


def test_an_engine_it_cannot_run_is_answered_with_what_was_done(
        booted: Context, bucket: Server, tiny_aligner: Any) -> None:
    handler = handler_for(booted, bucket.old_env(), aligner=tiny_aligner)
    answer = run(handler, text="Timed by another engine.", local_voice="narrator",
                 return_word_timings=True, timing_method="google")
    assert answer["status"] == "completed", answer
    assert answer["timing_method"] == "forced_alignment"
    assert "timing_method 'google' is not available" in answer["timing_note"]


def test_list_voices_in_the_old_shape(booted: Context, bucket: Server) -> None:
    answer = run(handler_for(booted, bucket.old_env()), endpoint="list_voices")
    assert answer["status"] == "success" and answer["count"] == len(answer["voices"])
    by_name = {v["name"]: v for v in answer["voices"]}
    assert {"narrator.wav", "mute.wav", "default.wav"} <= set(by_name)
    assert by_name["narrator.wav"]["size"] > 0
    assert by_name["narrator.wav"]["last_modified"].endswith("Z")


def test_a_bucket_voice_without_a_transcript_is_transcribed_once_and_kept_beside_it(
        booted: Context, bucket: Server) -> None:
    transcriber = booted.app_state.transcriber
    handler = handler_for(booted, bucket.old_env())
    before = transcriber.transcriptions
    first = run(handler, text="Hi.", local_voice="mute.wav")
    assert first["status"] == "completed", first
    kept = bucket.client().get_object(Bucket=bucket.bucket, Key="voices/mute.txt")
    assert kept["Body"].read().strip()
    second = run(handler, text="Again.", local_voice="mute.wav")
    assert second["status"] == "completed" and transcriber.transcriptions == before + 1
    # With transcription off (BOOTSTRAP_TRANSCRIBE=0), a voice without one is refused.
    bucket.client().delete_object(Bucket=bucket.bucket, Key="voices/mute.txt")
    off = handler_for(booted, bucket.old_env(), transcriber=None)
    answer = run(off, text="Hi.", local_voice="mute.wav")
    assert answer["error"].startswith("local_voice: is needed: this reference has no "
                                      "transcript, and transcription is off"), answer


@pytest.mark.parametrize(("fields", "error"), [
    ({"endpoint": "speak"}, "endpoint: unknown endpoint 'speak'"),
    ({"endpoint": "upload", "voice_name": "john_speaker.wav"},
     "voice_file_url: is required for upload"),
    ({"endpoint": "upload", "voice_file_url": "https://example.com/a.wav"},
     "voice_name: is required for upload"),
    ({"endpoint": "upload", "voice_name": "../x.wav", "voice_file_url": "https://e.com/a"},
     "voice_name: must be a file name ending in .wav"),
    ({"text": "Hi.", "local_voice": "../../etc/passwd"}, "local_voice: must be a voice file"),
    ({"text": "Hi.", "local_voice": "http://example.com/a.wav"},
     "local_voice: only https:// URLs are fetched"),
    ({"text": "Hi.", "timing_format": "txt", "local_voice": "narrator.wav"},
     "timing_format: must be one of srt, vtt, csv, json, ass"),
    ({"text": "Hi.", "local_voice": "nobody.wav"}, "local_voice: unknown voice 'nobody'"),
    ({"endpoint": "download"}, "job_id: is required"),
    ({"endpoint": "list_voices", "nfe_step": 4}, "nfe_step: is not a field of list_voices"),
])
def test_bad_old_requests_are_refused_by_their_field(booted: Context, bucket: Server,
                                                      fields: dict[str, Any],
                                                      error: str) -> None:
    answer = run(handler_for(booted, bucket.old_env()), **fields)
    assert answer["error"].startswith(error), answer


def test_without_a_bucket_the_audio_comes_inline(booted: Context) -> None:
    answer = run(handler_for(booted, None), text="Hello there.")  # the default voice
    assert answer["status"] == "completed" and answer["audio_url"] is None
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(answer["audio"])))
    assert rate == 24000 and len(samples) > 0
    refused = run(handler_for(booted, None), endpoint="download", job_id="abc")
    assert refused["error"].startswith("job_id: no bucket is configured")


@pytest.fixture
def clip_server(tls: tuple[Path, Path], tmp_path: Path, https_server: Any) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 (certificate for localhost) serving one voice clip."""
    body = tiny_model.write_voice(tmp_path / "served", "john", seconds=2.5).read_bytes()

    with https_server(body, tls) as port:
        yield f"https://localhost:{port}/audio.wav"


def test_an_uploaded_voice_lands_in_the_bucket_and_speaks(
        booted: Context, bucket: Server, clip_server: str, tls: tuple[Path, Path]) -> None:
    import functools
    import ssl

    from f5worker.handler import refaudio

    # Loopback is refused in production; this test's host is trusted explicitly.
    fetch = functools.partial(refaudio.fetch, allowed=lambda a: a.is_loopback,
                              context=ssl.create_default_context(cafile=str(tls[0])))
    storage = Storage.from_env(bucket.old_env())
    ctx = replace(booted, outputs={**booted.outputs, "storage": storage})
    handler = f5tts.make_handler(ctx, fetch=fetch)
    answer = run(handler, endpoint="upload", voice_name="john_speaker.wav",
                 voice_file_url=clip_server)
    assert answer["status"] == "Voice 'john_speaker.wav' uploaded successfully", answer
    assert isinstance(answer["message"], str)
    stored = bucket.client().get_object(Bucket=bucket.bucket, Key="voices/john_speaker.wav")
    info = soundfile.info(io.BytesIO(stored["Body"].read()))
    assert (info.samplerate, info.channels) == (24000, 1)
    listed = run(handler, endpoint="list_voices")
    assert "john_speaker.wav" in {v["name"] for v in listed["voices"]}
    # No transcript came with it: it is transcribed at its first use, and kept beside it.
    spoken = run(handler, text="Hi.", local_voice="john_speaker.wav")
    assert spoken["status"] == "completed", spoken
    assert bucket.client().get_object(Bucket=bucket.bucket,
                                      Key="voices/john_speaker.txt")["Body"].read().strip()
