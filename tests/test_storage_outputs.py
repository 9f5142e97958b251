"""A job's files as response fields: inline, stored with URLs, or refused by name; against a
real S3-compatible server (moto on 127.0.0.1)."""

from __future__ import annotations

import base64
import urllib.parse

import pytest
from s3server import Server, download, free_port

from bootstrap.storage import Storage, StorageError
from f5worker.handler import outputs
from f5worker.handler.outputs import OutputRefused

WAV = b"RIFF" + bytes(range(256)) * 1200  # ~300 KB
SRT = b"1\n00:00:00,000 --> 00:00:01,200\nHello there.\n"
FILES = {"audio.wav": (WAV, "audio/wav"), "timings.srt": (SRT, "application/x-subrip")}
ROOMY = 10 * 2**20


@pytest.fixture
def store(s3: Server) -> Storage:
    found = Storage.from_env(s3.env(BOOTSTRAP_STORAGE_URL_TTL_S="900"))
    assert found is not None
    return found


def test_without_storage_a_small_result_is_inline() -> None:
    out = outputs.fields(FILES, None, ROOMY, "job-1")
    assert set(out) == {"audio", "files"}
    assert base64.b64decode(out["audio"]) == WAV
    assert base64.b64decode(out["files"]["timings.srt"]) == SRT


def test_without_storage_a_result_over_the_limit_is_refused_by_name() -> None:
    limit = outputs.inline_size(FILES) - 1
    with pytest.raises(OutputRefused) as caught:
        outputs.fields(FILES, None, limit, "job-1")
    assert caught.value.message == outputs.E001.at("job-1")
    assert caught.value.id == "outputs.E001"
    assert str(outputs.inline_size(FILES)) in str(caught.value)


def test_the_inline_size_is_the_base64_size() -> None:
    assert outputs.inline_size(FILES) == sum(len(base64.b64encode(d)) for d, _ in FILES.values())


def test_with_storage_the_result_is_urls_that_download_the_same_bytes(store: Storage) -> None:
    out = outputs.fields(FILES, store, ROOMY, "job-2")
    assert set(out) == {"audio_url", "url_expires_s", "file_urls"}
    assert out["url_expires_s"] == 900
    assert download(out["audio_url"]) == WAV
    assert download(out["file_urls"]["timings.srt"]) == SRT


def test_audio_alone_has_no_file_urls(store: Storage) -> None:
    out = outputs.fields({"speech.mp3": (b"ID3" * 100, "audio/mpeg")}, store, ROOMY)
    assert set(out) == {"audio_url", "url_expires_s"}
    assert download(out["audio_url"]) == b"ID3" * 100


def test_inline_when_small_stores_only_what_does_not_fit(store: Storage) -> None:
    small = outputs.fields(FILES, store, ROOMY, "job-3", inline_when_small=True)
    assert base64.b64decode(small["audio"]) == WAV
    big = outputs.fields(FILES, store, 1000, "job-3", inline_when_small=True)
    assert "audio" not in big
    assert download(big["audio_url"]) == WAV


def test_two_jobs_with_the_same_id_do_not_overwrite_each_other(store: Storage) -> None:
    first = outputs.fields({"audio.wav": (b"first", "audio/wav")}, store, ROOMY, "local_test")
    second = outputs.fields({"audio.wav": (b"second", "audio/wav")}, store, ROOMY, "local_test")
    assert (download(first["audio_url"]), download(second["audio_url"])) == (b"first", b"second")


@pytest.mark.parametrize("job_id", ["../../etc/passwd", "a/b?c#d", "x" * 5000, "naïve id"])
def test_a_client_job_id_stays_one_path_segment_of_the_key(store: Storage, job_id: str) -> None:
    out = outputs.fields({"audio.wav": (b"mine", "audio/wav")}, store, ROOMY, job_id)
    path = urllib.parse.urlsplit(out["audio_url"]).path
    key = path.split(f"/{store.settings.bucket}/", 1)[1]
    prefix, folder, name = key.split("/")
    assert (prefix, name) == (store.settings.prefix, "audio.wav")
    assert len(folder) <= 80 + 13 and folder.replace("-", "").replace("_", "").isalnum()
    assert download(out["audio_url"]) == b"mine"


def test_a_failed_upload_is_a_named_error_not_an_empty_answer() -> None:
    dead = Storage.from_env({"BUCKET_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                             "BUCKET_ACCESS_KEY_ID": "a", "BUCKET_SECRET_ACCESS_KEY": "bbbb",
                             "BUCKET_NAME": "b", "BOOTSTRAP_STORAGE_ATTEMPTS": "2",
                             "BOOTSTRAP_STORAGE_BACKOFF_S": "0"})
    with pytest.raises(StorageError) as caught:
        outputs.fields(FILES, dead, ROOMY, "job-4")
    assert caught.value.id == "storage.E005"
    assert caught.value.to_dict()["hint"]


def test_files_without_audio_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no audio"):
        outputs.fields({"timings.srt": (SRT, "application/x-subrip")}, None, ROOMY)
