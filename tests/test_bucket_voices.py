"""Voices in the bucket, in the replaced worker's layout (``voices/<name>.wav``), against a
real S3-compatible server (moto on 127.0.0.1), as part of the voice library."""

from __future__ import annotations

from pathlib import Path

import pytest
from s3server import Server

from bootstrap.storage import Storage
from f5worker.bucket_voices import BucketVoices
from f5worker.voices import VoiceError, VoiceLibrary

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
