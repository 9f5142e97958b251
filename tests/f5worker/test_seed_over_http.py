"""A drop-in replacement, shown end to end: every example request of the replaced worker's
documentation (``docs/seed-api.md``), read from that page and sent unchanged over
HTTP to the RunPod SDK's real local server, with only the old settings (S3_BUCKET, AWS_*)
pointing at a real S3-compatible server (moto) seeded with the old bucket layout:
``voices/Kurt_12s.wav`` and ``voices/narrator.wav``, no transcript beside either.

The upload example fetches ``https://example.com/audio.wav``: the worker runs in a private
mount namespace whose /etc/hosts sends example.com to 127.0.0.1, where the test serves the
clip over HTTPS with a certificate the worker is told to trust (tests/fixtures/serve_f5.py).
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pysubs2
import pytest
import soundfile
import srt
import webvtt

from f5worker.handler import tiny_model
from tests.s3server import Server, download

NOTE = Path(__file__).resolve().parents[2] / "docs" / "seed-api.md"
OLD_TTS = {"audio_url": str, "duration": float, "job_id": str, "seed": int, "status": str,
           "text": str}
OLD_TIMINGS = {"timing_files": dict, "timing_format": str, "timing_method": str,
               "word_count": int, "timing_confidence": float}


def examples() -> list[dict[str, Any]]:
    """The example requests of the page, in its order, exactly as written there."""
    text = NOTE.read_text().split("## Examples", 1)[1]
    found, pending = [], ""
    for line in text.splitlines():
        if line.strip().startswith('{"input"') or pending:
            pending += line.strip() + " "
            try:
                found.append(json.loads(pending))
            except json.JSONDecodeError:
                continue
            pending = ""
    assert len(found) == 6, found
    return found


def clip(seconds: float, rate: int = 44100) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 150 * t) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
    out = io.BytesIO()
    soundfile.write(out, wave, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


@pytest.fixture(scope="module")
def example_com(tmp_path_factory: pytest.TempPathFactory,
                https_server: Any) -> Iterator[Path]:
    """https://example.com/audio.wav on 127.0.0.1:443; returns its certificate."""
    folder = tmp_path_factory.mktemp("example-com")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=example.com", "-addext", "subjectAltName=DNS:example.com",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True)
    body = clip(3.0)

    class Audio(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/audio.wav" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with https_server(Audio, (folder / "cert.pem", folder / "key.pem"), port=443):
        yield folder / "cert.pem"


@pytest.fixture(scope="module")
def old_bucket(s3: Server) -> Server:
    client = s3.client()
    for item in client.list_objects_v2(Bucket=s3.bucket).get("Contents", []):
        client.delete_object(Bucket=s3.bucket, Key=item["Key"])
    client.put_object(Bucket=s3.bucket, Key="voices/Kurt_12s.wav", Body=clip(12.0))
    client.put_object(Bucket=s3.bucket, Key="voices/narrator.wav", Body=clip(4.0, 22050))
    return s3


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, old_bucket: Server, example_com: Path,
           serve: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    if not shutil.which("unshare"):
        pytest.fail("unshare (util-linux) makes the worker's private /etc/hosts")
    volume = tmp_path_factory.mktemp("seed-volume")
    tiny_model.build(volume)
    hosts = tmp_path_factory.mktemp("hosts") / "hosts"
    hosts.write_text("127.0.0.1 localhost example.com\n")
    in_namespace = ("unshare", "-m", "sh", "-c",
                    f'mount --bind {hosts} /etc/hosts && exec "$@"', "sh")
    # The old settings alone: no BUCKET_* variable, and no setting of this worker (word
    # timings included: tiny_model.settings leaves them off).
    env = {**old_bucket.old_env(), "SERVE_F5_TRUST_CA": str(example_com)}
    assert not {"BOOTSTRAP_TIMINGS", "SERVE_F5_SETTINGS"} & os.environ.keys()
    with serve(volume, tmp_path_factory.mktemp("seed"), in_namespace, **env) as served:
        yield served


def send(worker: Any, request: dict[str, Any]) -> dict[str, Any]:
    answer = worker.post(request, timeout=300)
    assert answer.get("status") == "COMPLETED", answer
    output: dict[str, Any] = answer["output"]
    assert "error" not in output, output
    return output


def check_tts(output: dict[str, Any], timing_format: str) -> None:
    for name, kind in {**OLD_TTS, **OLD_TIMINGS}.items():
        assert isinstance(output[name], kind), (name, output)
    assert output["status"] == "completed" and output["timing_format"] == timing_format
    samples, rate = soundfile.read(io.BytesIO(download(output["audio_url"])))
    assert rate == 24000 and abs(len(samples) / rate - output["duration"]) < 1e-3
    words = output["text"].split()
    files = output["timing_files"]
    assert sorted(files) == ["ass", "csv", "json", "srt", "vtt"]
    parsed = {
        "srt": [c.content for c in srt.parse(download(files["srt"]).decode())],
        "vtt": [c.text for c in webvtt.from_string(download(files["vtt"]).decode())],
        "csv": [r["word"] for r in csv.DictReader(io.StringIO(download(files["csv"]).decode()))],
        "json": [w["word"] for w in json.loads(download(files["json"]))],
        "ass": [e.plaintext for e in pysubs2.SSAFile.from_string(
            download(files["ass"]).decode()).events],
    }
    for fmt, pieces in parsed.items():
        assert " ".join(pieces).split() == words, fmt
    assert output["word_count"] == len(words) and 0 <= output["timing_confidence"] <= 1


def test_every_documented_request_of_the_replaced_worker_works_unchanged(
        worker: Any, old_bucket: Server) -> None:
    tts_ssml, tts_ass, upload, listing, download_audio, download_timing = examples()
    first = send(worker, tts_ssml)
    check_tts(first, "srt")
    assert first["seed"] == 42 and first["reference"]["trimmed"]  # Kurt_12s: 12 s, cut
    second = send(worker, tts_ass)
    check_tts(second, "ass")
    assert second["timing_method"] == "forced_alignment"

    uploaded = send(worker, upload)
    assert uploaded["status"] == "Voice 'john_speaker.wav' uploaded successfully"
    listed = send(worker, listing)
    names = {v["name"] for v in listed["voices"]}
    assert {"Kurt_12s.wav", "narrator.wav", "john_speaker.wav"} <= names
    assert listed["count"] == len(listed["voices"]) and listed["status"] == "success"
    for voice in listed["voices"]:
        assert isinstance(voice["size"], int) and re.match(r"\d{4}-\d\d-\d\dT",
                                                           voice["last_modified"])

    job = first["job_id"]
    for request in (download_audio, download_timing):
        request["input"]["job_id"] = job  # the note's placeholder for "a job_id from a TTS"
    audio = send(worker, download_audio)
    assert (audio["filename"], audio["status"]) == (f"{job}.wav", "ready")
    assert download(audio["audio_url"]) == download(first["audio_url"])
    timing = send(worker, download_timing)
    assert (timing["filename"], timing["format"]) == (f"{job}.srt", "srt")
    assert download(timing["timing_url"]) == download(first["timing_files"]["srt"])

    # The uploaded voice speaks; its transcript was made once and kept beside it.
    spoken = send(worker, {"input": {"text": "Now with the new voice.",
                                     "local_voice": "john_speaker.wav"}})
    assert spoken["status"] == "completed"
    kept = old_bucket.client().get_object(Bucket=old_bucket.bucket,
                                          Key="voices/john_speaker.txt")["Body"].read()
    assert kept.strip()


def test_a_reference_without_its_text_is_transcribed_once(worker: Any) -> None:
    """The current dialect too: ref_audio without ref_text. The second job with the same
    clip reads the transcript from the cache (the events say which happened)."""
    import base64

    rng = np.random.default_rng(7)
    unique = clip(2.0) + bytes(0)  # a clip no other test sends: a fresh cache entry
    samples, rate = soundfile.read(io.BytesIO(unique))
    samples = samples * (0.9 + 0.1 * rng.random())
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    job = {"input": {"text": "Said like the clip.", "nfe_step": 2,
                     "ref_audio": base64.b64encode(out.getvalue()).decode()}}
    done, cached = len(worker.events("transcribe.done")), len(worker.events("transcribe.cached"))
    first = send(worker, job)
    assert "audio" in first or "audio_url" in first
    assert len(worker.events("transcribe.done")) == done + 1
    send(worker, job)
    assert len(worker.events("transcribe.done")) == done + 1
    assert len(worker.events("transcribe.cached")) == cached + 1


def test_with_a_bucket_an_amplifying_reference_is_still_refused_before_compute(
        worker: Any) -> None:
    """With a bucket nothing used to bound the audio (no inline limit applies): 660
    characters over a reference transcribed "A." made 5,433 s of audio. This worker has
    a bucket; the job's audio bound refuses it at the plan."""
    import base64

    planned = len(worker.events("job.planned"))
    answer = worker.post({"input": {"text": ("Go on. " * 95)[:660], "ref_text": "A.",
                                    "ref_audio": base64.b64encode(clip(9.5)).decode()}})
    assert answer["status"] == "FAILED"
    assert answer["error"].startswith("text: would make about "), answer
    assert len(worker.events("job.planned")) == planned
