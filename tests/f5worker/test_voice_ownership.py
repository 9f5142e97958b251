"""The bucket's voices belong to the operator, over HTTP to the RunPod SDK's real local
server with the replaced worker's settings pointing at a real S3-compatible server (moto):
a client may upload a new voice, but not replace or delete one already there (it is heard
by every endpoint using the bucket), nor upload one a local voice would shadow; look-alike
names are normalised (NFKC) or refused, so every stored name can be named again.

The clip to upload is served by the test over HTTPS on loopback, which the test worker
alone may fetch from (tests/fixtures/serve_f5.py).
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
from tests.s3server import Server

OPERATOR_WAV = clip(24000, 2.0)
OPERATOR_TEXT = b"The operator's own transcript."


@pytest.fixture(scope="module")
def clip_url(tls: tuple[Path, Path], https_server: Any) -> Iterator[str]:
    body = clip(24000, 1.5, amplitude=0.2)

    with https_server(body, tls) as port:
        yield f"https://localhost:{port}/clip.wav"


@pytest.fixture(scope="module")
def bucket(s3: Server) -> Server:
    client = s3.client()
    for item in client.list_objects_v2(Bucket=s3.bucket).get("Contents", []):
        client.delete_object(Bucket=s3.bucket, Key=item["Key"])
    for name in ("shared", "narrator"):
        client.put_object(Bucket=s3.bucket, Key=f"voices/{name}.wav", Body=OPERATOR_WAV)
        client.put_object(Bucket=s3.bucket, Key=f"voices/{name}.txt", Body=OPERATOR_TEXT)
    return s3


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, bucket: Server, tls: tuple[Path, Path],
           serve: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    volume = tmp_path_factory.mktemp("ownership-volume")
    tiny_model.build(volume)  # provisions the "default" voice on the volume
    env = {**bucket.old_env(), "SERVE_F5_TRUST_CA": str(tls[0]),
           "SERVE_F5_SETTINGS": json.dumps({"transcribe": False})}
    with serve(volume, tmp_path_factory.mktemp("ownership"), **env) as served:
        yield served


def keys(bucket: Server) -> dict[str, bytes]:
    client = bucket.client()
    listed = client.list_objects_v2(Bucket=bucket.bucket, Prefix="voices/")
    return {o["Key"]: client.get_object(Bucket=bucket.bucket, Key=o["Key"])["Body"].read()
            for o in listed.get("Contents", [])}


def upload(worker: Any, name: str, url: str) -> dict[str, Any]:
    answer: dict[str, Any] = worker.post({"input": {"endpoint": "upload", "voice_name": name,
                                                    "voice_file_url": url}})
    return answer


def test_a_clients_upload_over_a_bucket_voice_is_refused_and_leaves_it_whole(
        worker: Any, bucket: Server, clip_url: str) -> None:
    before = keys(bucket)
    answer = upload(worker, "shared.wav", clip_url)
    # Today's code replaced the clip and deleted the operator's transcript beside it.
    assert answer["status"] == "FAILED", answer
    assert answer["error"].startswith("voice_name: 'shared' is a voice in the bucket, shared "
                                      "by every endpoint using it: clients may not replace "
                                      "or delete it"), answer
    assert keys(bucket) == before
    assert before["voices/shared.txt"] == OPERATOR_TEXT


def test_a_clients_delete_of_a_bucket_voice_is_refused(worker: Any, bucket: Server) -> None:
    answer = worker.post({"input": {"action": "delete_voice", "name": "narrator"}})
    assert answer["status"] == "FAILED", answer
    assert answer["error"].startswith("name: 'narrator' is a voice in the bucket"), answer
    assert {"voices/narrator.wav", "voices/narrator.txt"} <= set(keys(bucket))
    listed = worker.post({"input": {"action": "list_voices"}})["output"]["voices"]
    narrator = next(v for v in listed if v["name"] == "narrator")
    assert narrator["deletable"] is False


def test_a_new_voice_is_still_uploaded_and_reported_by_its_stored_key(
        worker: Any, bucket: Server, clip_url: str) -> None:
    answer = upload(worker, "Client_Voice.WAV", clip_url)
    assert answer["status"] == "COMPLETED", answer
    # Today's answer said voices/Client_Voice.WAV, a key that does not exist.
    assert answer["output"]["message"].startswith("stored as voices/Client_Voice.wav: ")
    assert "voices/Client_Voice.wav" in keys(bucket)
    again = upload(worker, "Client_Voice.wav", clip_url)
    assert again["status"] == "FAILED" and "may not replace" in again["error"], again


def test_an_upload_a_provisioned_voice_would_shadow_is_refused(
        worker: Any, bucket: Server, clip_url: str) -> None:
    answer = upload(worker, "default.wav", clip_url)
    # Today's code stored voices/default.wav and said it was uploaded; no job could use it.
    assert answer["status"] == "FAILED", answer
    assert answer["error"] == ("voice_name: 'default' is a provisioned voice on this worker: "
                               "an upload of that name would never be spoken; choose another "
                               "name"), answer
    assert "voices/default.wav" not in keys(bucket)


@pytest.mark.parametrize(("raw", "stored"), [("\u212aelvin.wav", "Kelvin.wav"),
                                             ("\u017fam.wav", "sam.wav"),
                                             ("\uff26ull.wav", "Full.wav")])
def test_a_look_alike_name_is_stored_as_its_ascii_form_and_can_be_named_again(
        worker: Any, bucket: Server, clip_url: str, raw: str, stored: str) -> None:
    answer = upload(worker, raw, clip_url)
    assert answer["status"] == "COMPLETED", answer
    # Today's code stored voices/<raw>, which no listing, use or delete could name.
    assert f"voices/{stored}" in keys(bucket)
    listed = worker.post({"input": {"endpoint": "list_voices"}})["output"]["voices"]
    assert stored in {v["name"] for v in listed}
    # The same look-alike names it in the other dialect: the delete finds it (and, as it
    # is in the bucket, refuses it).
    deleted = worker.post({"input": {"action": "delete_voice", "name": raw[:-4]}})
    assert deleted["error"].startswith(f"name: {stored[:-4]!r} is a voice in the bucket"), \
        deleted


@pytest.mark.parametrize("raw", ["\u0131vy.wav", "\u0130vy.wav", "caf\u00e9.wav"])
def test_a_name_not_ascii_after_nfkc_is_refused_by_field(
        worker: Any, bucket: Server, clip_url: str, raw: str) -> None:
    before = keys(bucket)
    answer = upload(worker, raw, clip_url)
    assert answer["status"] == "FAILED", answer
    assert answer["error"].startswith("voice_name: must be a file name ending in .wav: ASCII"), \
        answer
    assert keys(bucket) == before


def test_a_stored_answers_url_lives_an_hour_by_default(worker: Any) -> None:
    answer = worker.post({"input": {"text": "Hi.", "local_voice": "default.wav"}})
    assert answer["status"] == "COMPLETED", answer
    # Today's default: X-Amz-Expires=604800 (7 days); the replaced worker's lived 1 hour.
    assert "X-Amz-Expires=3600&" in answer["output"]["audio_url"], answer
