"""Voices in the bucket, in the replaced worker's layout (``voices/<name>.wav``), against a
real S3-compatible server (moto on 127.0.0.1), as part of the voice library."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.storage import Storage
from f5worker.bucket_voices import BucketVoices
from f5worker.voices import VoiceError, VoiceLibrary
from tests.s3server import Server

WAV = b"RIFF" + bytes(2000)


@pytest.fixture
def bucket(s3: Server) -> BucketVoices:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix="voices/")
    for item in listed.get("Contents", []):
        client.delete_object(Bucket=s3.bucket, Key=item["Key"])
    client.put_object(Bucket=s3.bucket, Key="voices/Kurt_12s.wav", Body=WAV)
    client.put_object(Bucket=s3.bucket, Key="voices/narrator.wav", Body=WAV + b"n")
    client.put_object(Bucket=s3.bucket, Key="voices/readme.md", Body=b"not a voice")
    store = Storage.from_env(s3.env())
    assert store is not None
    return BucketVoices(store)


def test_the_old_layout_is_listed_with_size_and_time(bucket: BucketVoices,
                                                     tmp_path: Path) -> None:
    voices = VoiceLibrary(tmp_path / "voices", None, bucket).all()
    assert sorted(voices) == ["Kurt_12s", "narrator"]
    kurt = voices["Kurt_12s"]
    assert (kurt.source, kurt.size, kurt.key, kurt.deletable) == (
        "bucket", len(WAV), "voices/Kurt_12s.wav", True)
    assert kurt.last_modified and kurt.last_modified.endswith("Z")


def test_a_voice_is_read_from_the_bucket_and_its_transcript_kept_beside_it(
        bucket: BucketVoices, s3: Server, tmp_path: Path) -> None:
    lib = VoiceLibrary(tmp_path / "voices", None, bucket)
    found = lib.read("Kurt_12s")
    assert found is not None and found[1] == WAV and found[0].text == ""
    bucket.keep_text("Kurt_12s", "What Kurt says.")
    assert s3.client().get_object(Bucket=s3.bucket, Key="voices/Kurt_12s.txt")[
        "Body"].read() == b"What Kurt says."
    assert lib.get("Kurt_12s").text == "What Kurt says."  # type: ignore[union-attr]
    assert lib.read("nobody") is None and lib.get("../Kurt_12s") is None


def test_a_local_voice_of_the_same_name_wins(bucket: BucketVoices, tmp_path: Path) -> None:
    folder = tmp_path / "voices"
    folder.mkdir()
    (folder / "narrator.wav").write_bytes(WAV)
    (folder / "narrator.txt").write_text("The provisioned one.")
    lib = VoiceLibrary(folder, None, bucket)
    assert lib.get("narrator").source == "provisioned"  # type: ignore[union-attr]
    assert lib.all()["narrator"].source == "provisioned"


def test_upload_replaces_and_delete_removes_the_clip_and_its_text(
        bucket: BucketVoices, s3: Server, tmp_path: Path) -> None:
    voice, replaced = bucket.add("john_speaker", WAV, "John speaks.")
    assert not replaced and voice.key == "voices/john_speaker.wav"
    _, replaced = bucket.add("john_speaker", WAV + b"2", "")
    assert replaced
    # The old transcript described the old clip: it is gone with it.
    assert bucket.get("john_speaker").text == ""  # type: ignore[union-attr]
    lib = VoiceLibrary(tmp_path / "voices", None, bucket)
    assert lib.delete("john_speaker").source == "bucket"
    keys = [o["Key"] for o in s3.client().list_objects_v2(
        Bucket=s3.bucket, Prefix="voices/john").get("Contents", [])]
    assert keys == []
    with pytest.raises(VoiceError, match="no voice 'john_speaker'"):
        lib.delete("john_speaker")


RACER = """
import hashlib, json, os, sys
from bootstrap.storage import Storage
from f5worker.bucket_voices import BucketVoices

bucket = BucketVoices(Storage.from_env(json.loads(os.environ["RACE_ENV"])))
voice, data = bucket.read("racer")
print(hashlib.sha256(data).hexdigest(), flush=True)
sys.stdin.readline()  # the other worker replaces the clip meanwhile
bucket.keep_text("racer", "What the old clip said.", hashlib.sha256(data).hexdigest())
"""


def test_a_transcript_written_after_its_clip_was_replaced_is_not_paired_with_the_new_one(
        bucket: BucketVoices, s3: Server, tmp_path: Path) -> None:
    bucket.add("racer", WAV + b"old", "")
    env = {**os.environ, "RACE_ENV": json.dumps(s3.env())}
    # Worker A: reads the clip and transcribes it (slowly); worker B replaces the clip
    # meanwhile, in a process of its own; then A keeps its text.
    a = subprocess.Popen([sys.executable, "-c", RACER], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert a.stdout is not None and a.stdin is not None
    old_digest = a.stdout.readline().strip()
    subprocess.run([sys.executable, "-c", RACER.split("voice, data")[0] +
                    "bucket.changes = True\nbucket.add('racer', b'RIFF' + bytes(2000) + "
                    "b'new', '')\n"], env=env, check=True)
    a.stdin.write("\n")
    a.stdin.flush()
    assert a.wait(60) == 0
    stored = s3.client().get_object(Bucket=s3.bucket, Key="voices/racer.txt")
    assert stored["Body"].read() == b"What the old clip said."  # A's late write landed
    found = VoiceLibrary(tmp_path / "voices", None, bucket).read("racer")
    assert found is not None and found[1].endswith(b"new")
    # Today's code paired the old clip's text with the new clip.
    assert found[0].text == "", (found[0].text, old_digest)
    # A text made from the clip read is used.
    bucket.keep_text("racer", "What the new clip says.", hashlib.sha256(found[1]).hexdigest())
    again = bucket.read("racer")
    assert again is not None and again[0].text == "What the new clip says."
