"""The object store against a real S3-compatible server (moto, over HTTP on 127.0.0.1)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from s3server import FlakyProxy, Server, download, free_port

from bootstrap import storage
from bootstrap.kernel import events
from bootstrap.storage import Settings, Storage, StorageError

AUDIO = bytes(range(256)) * 4096  # 1 MiB, every byte value, so a lost chunk shows


def test_not_configured_is_none_and_does_not_import_boto3() -> None:
    code = ("import sys; from bootstrap.storage import Storage; "
            "assert Storage.from_env({}) is None; assert 'boto3' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ,
                   "PYTHONPATH": os.getcwd()})


@pytest.mark.parametrize("env, missing", [
    ({"BUCKET_ENDPOINT_URL": "http://x"}, "BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY"),
    ({"BUCKET_ACCESS_KEY_ID": "a", "BUCKET_SECRET_ACCESS_KEY": "b"}, "BUCKET_ENDPOINT_URL"),
    ({"BUCKET_NAME": "b"}, "BUCKET_NAME"),
])
def test_half_configured_is_a_named_error(env: dict[str, str], missing: str) -> None:
    with pytest.raises(StorageError) as caught:
        Storage.from_env(env)
    assert caught.value.message == storage.E001.at(missing)


@pytest.mark.parametrize("name, value", [("BOOTSTRAP_STORAGE_URL_TTL_S", "forever"),
                                         ("BOOTSTRAP_STORAGE_URL_TTL_S", "999999999"),
                                         ("BUCKET_ENDPOINT_URL", "s3.example.com")])
def test_bad_settings_are_named(name: str, value: str) -> None:
    env = {"BUCKET_ENDPOINT_URL": "http://x", "BUCKET_ACCESS_KEY_ID": "a",
           "BUCKET_SECRET_ACCESS_KEY": "b", name: value}
    with pytest.raises(StorageError) as caught:
        Storage.from_env(env)
    assert caught.value.id == "storage.E002"
    assert name in caught.value.message.msg


@pytest.mark.parametrize("endpoint, bucket, want", [
    ("https://s3.example.com/mine", "", ("https://s3.example.com", "mine", "endpoint URL")),
    ("https://mine.s3.eu-west-1.amazonaws.com", "",
     ("https://s3.eu-west-1.amazonaws.com", "mine", "endpoint URL")),
    ("https://mine.s3.eu-west-1.amazonaws.com", "mine",
     ("https://s3.eu-west-1.amazonaws.com", "mine", "BUCKET_NAME")),
    ("https://acct.r2.cloudflarestorage.com", "b",
     ("https://acct.r2.cloudflarestorage.com", "b", "BUCKET_NAME")),
    ("https://acct.r2.cloudflarestorage.com", "",
     ("https://acct.r2.cloudflarestorage.com", time.strftime("%m-%y"), "month default")),
])
def test_the_bucket_name_follows_runpod_conventions(endpoint: str, bucket: str,
                                                    want: tuple[str, str, str]) -> None:
    env = {"BUCKET_ENDPOINT_URL": endpoint, "BUCKET_ACCESS_KEY_ID": "a",
           "BUCKET_SECRET_ACCESS_KEY": "b", "BUCKET_NAME": bucket}
    settings = Settings.from_env(env)
    assert settings is not None
    assert (settings.endpoint, settings.bucket, settings.bucket_source) == want


@pytest.mark.parametrize("endpoint, region", [
    ("https://b.s3.eu-west-1.amazonaws.com", "eu-west-1"),
    ("https://s3.eu-west-1.amazonaws.com/media", "eu-west-1"),  # path style
    ("https://b.s3-ap-southeast-2.amazonaws.com", "ap-southeast-2"),  # legacy dash form
    ("https://b.s3.dualstack.us-west-2.amazonaws.com", "us-west-2"),
    ("https://b.s3.amazonaws.com", "us-east-1"),  # global: no region in the name
    ("https://b.nyc3.digitaloceanspaces.com", "nyc3"),
    ("http://127.0.0.1:9", "us-east-1"),
])
def test_the_signing_region_comes_from_the_endpoint(endpoint: str, region: str) -> None:
    settings = Settings.from_env({"BUCKET_ACCESS_KEY_ID": "a", "BUCKET_SECRET_ACCESS_KEY": "b",
                                  "BUCKET_ENDPOINT_URL": endpoint})
    assert settings is not None and settings.region == region


def test_an_upload_returns_a_url_that_downloads_the_same_bytes(s3: Server) -> None:
    store = Storage.from_env(s3.env(BOOTSTRAP_STORAGE_URL_TTL_S="600"))
    assert store is not None
    url = store.upload("job-1/audio.wav", AUDIO, "audio/wav")
    assert "X-Amz-Expires=600" in url and "X-Amz-Signature=" in url
    assert download(url) == AUDIO
    head = s3.client().head_object(Bucket=s3.bucket, Key="outputs/job-1/audio.wav")
    assert head["ContentType"] == "audio/wav"


def test_a_missing_bucket_is_a_named_error_without_retries(s3: Server) -> None:
    store = Storage.from_env(s3.env(BUCKET_NAME="no-such-bucket"))
    assert store is not None
    with events.capture() as captured, pytest.raises(StorageError) as caught:
        store.upload("a.wav", b"x", "audio/wav")
    assert caught.value.message == storage.E004.at("no-such-bucket")
    assert not [e for e in captured if e["event"] == "storage.retry"]
    with pytest.raises(StorageError) as head:
        store.check_bucket()  # HEAD: only a 404, no error code in a body
    assert head.value.id == "storage.E004"


@pytest.mark.parametrize("which", ["key", "secret"])
def test_wrong_credentials_are_a_named_error_without_retries(s3_auth: Server,
                                                             which: str) -> None:
    good = s3_auth.env()
    if which == "key":
        good["BUCKET_ACCESS_KEY_ID"] = "AKIAUNKNOWNKEY000000"
    else:
        good["BUCKET_SECRET_ACCESS_KEY"] = "wrong-secret-value-1234"
    store = Storage.from_env(good)
    assert store is not None
    with events.capture() as captured, pytest.raises(StorageError) as caught:
        store.upload("a.wav", b"x", "audio/wav")
    assert caught.value.id == "storage.E003"
    code = {"key": "InvalidAccessKeyId", "secret": "SignatureDoesNotMatch"}[which]
    assert code in caught.value.message.msg
    assert not [e for e in captured if e["event"] == "storage.retry"]
    assert good["BUCKET_SECRET_ACCESS_KEY"] not in str(caught.value.to_dict())


def test_the_right_credentials_pass_the_authenticating_server(s3_auth: Server) -> None:
    """The refusals above are the credentials', not the server's: the real key works."""
    store = Storage.from_env(s3_auth.env())
    assert store is not None
    store.check_bucket()
    store.upload("ok.wav", b"RIFF", "audio/wav")
    assert s3_auth.client().get_object(Bucket=s3_auth.bucket,
                                       Key="outputs/ok.wav")["Body"].read() == b"RIFF"


# A hang (an unbounded connect) fails the test; how fast it answers is the bench's business.
@pytest.mark.timeout(60)
def test_a_dead_endpoint_is_a_named_error_after_retries() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = Storage.from_env({"BUCKET_ENDPOINT_URL": dead, "BUCKET_ACCESS_KEY_ID": "a",
                              "BUCKET_SECRET_ACCESS_KEY": "bbbb", "BUCKET_NAME": "b",
                              "BOOTSTRAP_STORAGE_ATTEMPTS": "3",
                              "BOOTSTRAP_STORAGE_BACKOFF_S": "0.01"})
    assert store is not None
    with events.capture() as captured, pytest.raises(StorageError) as caught:
        store.upload("a.wav", b"x", "audio/wav")
    assert caught.value.message == storage.E005.at(dead)
    assert "3 attempts" in caught.value.message.msg
    assert [e["attempt"] for e in captured if e["event"] == "storage.retry"] == [1, 2]


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_nothing_is_lost_when_the_first_upload_attempt_fails(s3: Server, mode: str) -> None:
    with FlakyProxy(s3.url, failures=1, mode=mode) as proxy:
        store = Storage.from_env(s3.env(BUCKET_ENDPOINT_URL=proxy.url))
        assert store is not None
        with events.capture() as captured:
            url = store.upload(f"flaky-{mode}/audio.wav", AUDIO, "audio/wav")
        retries = [e for e in captured if e["event"] == "storage.retry"]
        assert len(retries) == 1 and retries[0]["op"] == "upload"
        assert proxy.puts == [len(AUDIO), len(AUDIO)]  # the first attempt really was sent
        assert download(url) == AUDIO  # through the proxy, as a client would


def test_a_store_that_keeps_failing_is_named_after_its_attempts(s3: Server) -> None:
    with FlakyProxy(s3.url, failures=10) as proxy:
        store = Storage.from_env(s3.env(BUCKET_ENDPOINT_URL=proxy.url,
                                        BOOTSTRAP_STORAGE_ATTEMPTS="3"))
        assert store is not None
        with pytest.raises(StorageError) as caught:
            store.upload("busy.wav", b"x", "audio/wav")
    assert caught.value.id == "storage.E006"
    assert "SlowDown" in caught.value.message.msg
    assert len(proxy.puts) == 3


def test_the_replaced_workers_settings_alone_configure_the_store(s3: Server) -> None:
    store = Storage.from_env(s3.old_env())
    assert store is not None
    s = store.settings
    assert (s.endpoint, s.bucket, s.region, s.names) == (s3.url, s3.bucket, "us-east-1",
                                                          "S3_BUCKET/AWS_*")
    assert download(store.upload("old/audio.wav", AUDIO, "audio/wav")) == AUDIO


def test_without_an_endpoint_the_replaced_settings_mean_aws_s3_in_their_region() -> None:
    store = Storage.from_env({"S3_BUCKET": "voices-b", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
                              "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "eu-west-3"})
    assert store is not None
    s = store.settings
    assert (s.endpoint, s.bucket, s.region) == ("https://s3.eu-west-3.amazonaws.com",
                                                "voices-b", "eu-west-3")


def test_the_bucket_variables_win_over_the_replaced_ones(s3: Server) -> None:
    both = {**s3.old_env(S3_BUCKET="not-this-one"), **s3.env()}
    store = Storage.from_env(both)
    assert store is not None and store.settings.names == "BUCKET_*"
    assert store.settings.bucket == s3.bucket


@pytest.mark.parametrize("env, missing", [
    ({"S3_BUCKET": "b"}, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
    ({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, "S3_BUCKET"),
    ({"S3_BUCKET": "b", "AWS_ACCESS_KEY_ID": "a"}, "AWS_SECRET_ACCESS_KEY"),
])
def test_half_of_the_replaced_settings_is_a_named_error(env: dict[str, str],
                                                        missing: str) -> None:
    """Never a silent switch to inline results."""
    with pytest.raises(StorageError) as caught:
        Storage.from_env(env)
    assert caught.value.message == storage.E010.at(missing)
