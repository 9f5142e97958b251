from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.kernel import config
from bootstrap.kernel.context import Context
from bootstrap.stages import preflight
from tests.boots import MODEL_STAGES, REPO, boot


def context(**environ: str) -> Context:
    return Context(config.load(environ=environ).config, "test", "worker")


@pytest.fixture(autouse=True)
def on_runpod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_POD_ID", "pod-1")
    monkeypatch.delenv("RUNPOD_INIT_TIMEOUT", raising=False)


def test_a_healthy_machine_has_nothing_to_say() -> None:
    assert preflight.check(context()) == []


def test_the_init_timeout_warning_suggests_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_INIT_TIMEOUT", "300")
    messages = preflight.check(context(BOOTSTRAP_EXPECTED_BOOT_S="280"))
    assert messages == [preflight.W001.at("RUNPOD_INIT_TIMEOUT")]
    assert "above 410 s" in messages[0].hint


def test_the_default_seven_minutes_is_assumed_without_the_variable() -> None:
    assert preflight.check(context(BOOTSTRAP_EXPECTED_BOOT_S="400")) == [
        preflight.W001.at("RUNPOD_INIT_TIMEOUT")]


def test_a_bad_init_timeout_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_INIT_TIMEOUT", "10m")
    assert preflight.check(context()) == [preflight.W002.at("RUNPOD_INIT_TIMEOUT")]


def test_not_on_runpod_is_only_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_POD_ID")
    assert preflight.check(context()) == [preflight.I001.at("RUNPOD_POD_ID")]


def test_too_little_disk_fails_the_boot_with_the_disk_named(volume: Path) -> None:
    need = 1 << 40  # a terabyte more than any test machine has free
    result = boot(volume, (), min_free_disk_mb=str(need))
    assert result.returncode == 10
    assert result.last["code"] == "preflight.E002"
    assert f"{need} MB needed" in result.last["msg"]
    assert "container disk" in result.last["hint"]


def test_facts_describe_the_machine() -> None:
    facts = preflight.facts()
    assert facts["cpus"] >= 1 and facts["memory_total_mb"] > 0
    assert facts["runpod"] == {"RUNPOD_POD_ID": "pod-1"}


def test_check_command_prints_ids_hints_and_a_count(tmp_path: Path) -> None:
    env = {**os.environ, "RUNPOD_INIT_TIMEOUT": "60", "BOOTSTRAP_EXPECTED_BOOT_S": "300",
           "BOOTSTRAP_SKIP": ",".join(MODEL_STAGES)}
    env.pop("RUNPOD_POD_ID")
    text = subprocess.run([sys.executable, "-m", "bootstrap", "check", "--mode", "local"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert text.returncode == 0  # warnings do not fail at the default --fail-level error
    assert "RUNPOD_INIT_TIMEOUT: (preflight.W001)" in text.stdout
    assert "\tHINT: set RUNPOD_INIT_TIMEOUT above" in text.stdout
    # preflight.W001 and .I001, and from the volume and venv stages: no volume needed in
    # local mode (volume.I001), no environment without requirements (venv.I003), and
    # from the worker: no bucket, outputs inline only (storage.I001); and the boot order
    # (check.I002)
    for id in ("preflight.I001", "volume.I001", "venv.I003", "storage.I001", "check.I002"):
        assert f"({id})" in text.stdout
    assert text.stdout.rstrip().endswith("System check identified 6 issues (0 silenced).")
    strict = subprocess.run([sys.executable, "-m", "bootstrap", "check", "--mode", "local",
                             "--fail-level", "warning", "--output", "json"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert strict.returncode == 3
    data = json.loads(strict.stdout)
    assert data["version"] == 1 and data["failed"] is True
    assert {m["id"] for m in data["messages"]} == {
        "preflight.W001", "preflight.I001", "volume.I001", "venv.I003", "storage.I001",
        "check.I002"}


def check_cli(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """`bootstrap check` as on a laptop (not on RunPod), the model stages skipped."""
    env = {**os.environ, "BOOTSTRAP_SKIP": ",".join(MODEL_STAGES), **environ}
    env.pop("RUNPOD_POD_ID")
    return subprocess.run([sys.executable, "-m", "bootstrap", "check", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def test_silenced_ids_are_counted_not_shown() -> None:
    result = check_cli("--mode", "local", "--silence", "preflight.I001",
                       RUNPOD_INIT_TIMEOUT="60", BOOTSTRAP_SILENCE="preflight.W001")
    # the flag replaces the environment's list, as every flag does
    assert "preflight.I001" not in result.stdout and "(preflight.W001)" in result.stdout
    # and volume.I001, venv.I003: local mode without a volume or requirements; storage.I001;
    # check.I002, the boot order
    assert result.stdout.rstrip().endswith("identified 5 issues (1 silenced).")
    result = check_cli("--mode", "local", "--output", "json", RUNPOD_INIT_TIMEOUT="60",
                       BOOTSTRAP_SILENCE="preflight.W001,preflight.I001")
    assert json.loads(result.stdout)["silenced"] == 2


def test_platform_runpod_predicts_what_the_platform_will_refuse() -> None:
    result = check_cli("--platform", "runpod", "--mode", "volume", "--volume", "/workspace",
                       "--output", "json", BOOTSTRAP_TEST_INPUT='{"text": "hi"}')
    assert result.returncode == 3
    ids = {m["id"] for m in json.loads(result.stdout)["messages"]}
    assert {"platform.E001", "platform.E003"} <= ids
    assert "preflight.I001" not in ids, "on the platform RUNPOD_POD_ID is always set"
    local = check_cli("--platform", "runpod", "--mode", "local", "--output", "json")
    assert {"platform.E002", "platform.W001"} <= {m["id"] for m in
                                                  json.loads(local.stdout)["messages"]}
