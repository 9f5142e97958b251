"""The storage boot stage, in real boots (supervisor and worker processes) against a real
S3-compatible server; the model stages and serve are skipped (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Boot, boot
from s3server import Server, free_port

from bootstrap.kernel.context import Context
from bootstrap.stages import storage as stage

# A secret no other part of the environment holds, to look for in everything the boot wrote.
SECRET = "s3cret-Zq8v-never-printed"


def storage_events(result: Boot) -> list[dict[str, Any]]:
    return [e for e in result.events if e.get("stage") == "storage"]


def end_of(result: Boot) -> dict[str, Any]:
    done = [e for e in storage_events(result) if e["event"] == "stage"
            and e["status"] != "start"]
    assert len(done) == 1, result.stdout
    return done[0]


def test_unconfigured_storage_is_skipped_with_a_note(volume: Path) -> None:
    result = boot(volume)
    assert result.returncode == 0, result.stdout
    assert end_of(result)["status"] == "skip"
    notes = [e for e in storage_events(result) if e.get("code") == "storage.I001"]
    assert len(notes) == 1


def test_a_working_store_passes_and_leaves_no_probe(s3: Server, volume: Path) -> None:
    result = boot(volume, env=s3.env())
    assert result.returncode == 0, result.stdout
    end = end_of(result)
    assert end["status"] == "ok"
    assert end["facts"]["bucket"] == s3.bucket
    assert end["facts"]["bucket_source"] == "BUCKET_NAME"
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="outputs/.bootstrap-probe")
    assert listed.get("KeyCount", 0) == 0


def test_a_probe_whose_url_fails_is_still_deleted(s3_auth: Server, volume: Path) -> None:
    # moto with authentication on takes the signed PUT but answers presigned GETs with a
    # 500: the boot fails on its URL (E009), after the probe was written.
    result = boot(volume, env=s3_auth.env())
    assert result.returncode == 22, result.stdout
    end = end_of(result)
    assert (end["status"], end["failure"]["code"]) == ("fail", "storage.E009")
    listed = s3_auth.client().list_objects_v2(Bucket=s3_auth.bucket,
                                              Prefix="outputs/.bootstrap-probe")
    assert listed.get("KeyCount", 0) == 0


@pytest.mark.parametrize("case, code", [("bucket", "storage.E004"), ("key", "storage.E003"),
                                        ("secret", "storage.E003"), ("dead", "storage.E005"),
                                        ("half", "storage.E001")])
def test_a_broken_store_fails_the_boot_by_name(s3_auth: Server, volume: Path, case: str,
                                               code: str) -> None:
    env = s3_auth.env(BUCKET_SECRET_ACCESS_KEY=SECRET) if case == "secret" else s3_auth.env()
    if case == "bucket":
        env["BUCKET_NAME"] = "no-such-bucket"
    elif case == "key":
        env["BUCKET_ACCESS_KEY_ID"] = "AKIAUNKNOWNKEY000000"
    elif case == "dead":
        env["BUCKET_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    elif case == "half":
        env["BUCKET_ACCESS_KEY_ID"] = ""
    result = boot(volume, env=env)
    assert result.returncode == 22, result.stdout
    end = end_of(result)
    assert (end["status"], end["failure"]["code"]) == ("fail", code)
    report = result.report()
    assert report["failure"]["code"] == code
    if case == "secret":
        written = result.stdout + result.stderr + json.dumps(report)
        assert "SignatureDoesNotMatch" in written
        assert SECRET not in written


def test_check_reads_without_writing(s3: Server, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    from bootstrap.kernel.config import Config

    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    ctx = Context(Config(volume=tmp_path), run_id="r", worker_id="w", dry_run=True)
    before = s3.client().list_objects_v2(Bucket=s3.bucket).get("KeyCount", 0)
    assert stage.check(ctx) == []
    assert s3.client().list_objects_v2(Bucket=s3.bucket).get("KeyCount", 0) == before
    monkeypatch.setenv("BUCKET_NAME", "no-such-bucket")
    assert [m.id for m in stage.check(ctx)] == ["storage.E004"]
    monkeypatch.delenv("BUCKET_ENDPOINT_URL")
    assert [m.id for m in stage.check(ctx)] == ["storage.E001"]


def _imports(lines: list[str]) -> set[str]:
    return {line.split("|")[-1].strip().split(".")[0]
            for line in lines if line.startswith("import time:")}


@pytest.mark.parametrize("configured", [True, False])
def test_boto3_is_imported_only_by_a_worker_with_storage(s3: Server, volume: Path,
                                                         configured: bool) -> None:
    """From Python's import-time report: the supervisor's own stderr, and the worker's,
    relayed as events."""
    env = {"PYTHONPROFILEIMPORTTIME": "1", **(s3.env() if configured else {})}
    result = boot(volume, env=env)
    assert result.returncode == 0, result.stdout
    supervisor = _imports(result.stderr.splitlines())
    worker = _imports([e["line"] for e in result.named("output") if e["stream"] == "stderr"])
    assert "bootstrap" in supervisor and "bootstrap" in worker  # the measurement works
    assert not supervisor & {"boto3", "botocore"}
    assert ("boto3" in worker) is configured


def test_the_replaced_workers_settings_boot_with_a_warning_naming_the_mapping(
        s3: Server, volume: Path) -> None:
    result = boot(volume, env=s3.old_env())
    assert result.returncode == 0, result.stdout
    end = end_of(result)
    assert end["status"] == "warn" and end["facts"]["bucket"] == s3.bucket
    warned = [e for e in storage_events(result) if e.get("code") == "storage.W002"]
    assert len(warned) == 1 and "S3_BUCKET -> BUCKET_NAME" in warned[0]["msg"]


def test_half_of_the_replaced_settings_fails_the_boot_by_name(s3: Server,
                                                              volume: Path) -> None:
    env = s3.old_env()
    del env["AWS_SECRET_ACCESS_KEY"]
    result = boot(volume, env=env)
    assert result.returncode != 0
    assert result.last["code"] == "storage.E010", result.last
