from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from bootstrap.kernel import config
from bootstrap.kernel.config import Config, ConfigError


def test_precedence_is_flag_then_env_then_file_then_default(tmp_path: Path) -> None:
    toml = tmp_path / "bootstrap.toml"
    toml.write_text('mode = "image"\nheartbeat_s = 5\nreports_keep = 7\n')
    loaded = config.load(flags={"mode": "local"},
                         environ={"BOOTSTRAP_HEARTBEAT_S": "9"}, toml_path=toml)
    assert loaded.config.mode == "local" and loaded.sources["mode"] == "flag"
    assert loaded.config.heartbeat_s == 9.0
    assert loaded.sources["heartbeat_s"] == "env BOOTSTRAP_HEARTBEAT_S"
    assert loaded.config.reports_keep == 7 and loaded.sources["reports_keep"] == str(toml)
    assert loaded.sources["stop_grace_s"] == "default"


def test_local_mode_allows_the_cpu_unless_told_otherwise() -> None:
    assert config.load(environ={"BOOTSTRAP_MODE": "local"}).config.allow_cpu is True
    assert config.load(environ={"BOOTSTRAP_MODE": "local",
                                "BOOTSTRAP_ALLOW_CPU": "no"}).config.allow_cpu is False
    assert config.load(environ={}).config.allow_cpu is False


def test_deadlines_per_stage_from_the_environment() -> None:
    loaded = config.load(environ={"BOOTSTRAP_DEADLINE_MODEL": "1200"})
    assert loaded.config.deadline_for("model", 900) == 1200
    assert loaded.config.deadline_for("cuda", 120) == 120


@pytest.mark.parametrize(("environ", "words"), [
    ({"BOOTSTRAP_MODE": "cloud"}, "mode: 'cloud' from env BOOTSTRAP_MODE"),
    ({"BOOTSTRAP_HEARTBEAT_S": "often"}, "heartbeat_s: cannot use 'often'"),
    ({"BOOTSTRAP_HANDLER": "bootstrap.echo"}, "should be module:callable"),
    ({"BOOTSTRAP_CONFIG": "/nonexistent/bootstrap.toml"}, "does not exist"),
])
def test_bad_settings_name_the_setting(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(environ=environ)
    assert words in str(info.value)


def test_unknown_setting_in_the_file_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "bootstrap.toml"
    toml.write_text("volumme = '/data'\n")
    with pytest.raises(ConfigError, match="unknown setting 'volumme'"):
        config.load(environ={}, toml_path=toml)


def test_the_worker_receives_the_same_configuration() -> None:
    original = config.load(environ={"BOOTSTRAP_MODE": "local", "BOOTSTRAP_SKIP": "cuda,audio",
                                    "BOOTSTRAP_DEADLINE_MODEL": "5"}).config
    assert Config.from_env(original.to_env()) == original


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=60)


def test_config_command_shows_sources_and_hides_secrets() -> None:
    secret = "sk_live_abcdef123456"
    result = run_cli("config", "--mode", "local", "--output", "json", env={
        "API_SECRET_KEY": secret,
        "BOOTSTRAP_TEST_INPUT": json.dumps({"token": secret}),
    })
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["version"] == 1
    assert data["config"]["mode"] == {"value": "local", "source": "flag"}
    assert data["config"]["test_input"]["source"] == "env BOOTSTRAP_TEST_INPUT"
    assert secret not in result.stdout
    assert "[redacted]" in data["config"]["test_input"]["value"]


def test_a_configuration_error_exits_2_with_one_event() -> None:
    result = run_cli("run", env={"BOOTSTRAP_MODE": "cloud", "BOOTSTRAP_LOG_FORMAT": "json"})
    assert result.returncode == 2
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["event"] == "summary" and last["stage"] == "config"
    assert "BOOTSTRAP_MODE" in last["msg"] and last["hint"]


def test_a_bad_deadline_names_its_variable_and_where_it_came_from() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(environ={"BOOTSTRAP_DEADLINE_SERVE": "soon"})
    assert str(caught.value).startswith(
        "BOOTSTRAP_DEADLINE_SERVE: cannot use 'soon' from env BOOTSTRAP_DEADLINE_SERVE")
    assert "stop_grace_s" not in str(caught.value)


def test_a_misspelt_variable_is_named_with_the_closest_setting() -> None:
    loaded = config.load(environ={"BOOTSTRAP_INSTAL_ATTEMPTS": "2", "BOOTSTRAP_MODE": "local",
                                  "BOOTSTRAP_STORAGE_ATTEMPTS": "3", "BOOTSTRAP_RUN_ID": "r"})
    assert loaded.unknown == ("BOOTSTRAP_INSTAL_ATTEMPTS is not a setting and is ignored; did "
                              "you mean BOOTSTRAP_INSTALL_ATTEMPTS?",)
    assert config.load(environ={"BOOTSTRAP_XYZZY": "1"}).unknown == (
        "BOOTSTRAP_XYZZY is not a setting and is ignored",)


def test_a_boot_warns_about_a_misspelt_variable(tmp_path: Path) -> None:
    from conftest import boot

    result = boot(tmp_path, env={"BOOTSTRAP_HEARTBEAT_SECONDS": "5"})
    assert result.returncode == 0, result.stdout
    warned = result.named("config.unknown")
    assert len(warned) == 1 and warned[0]["level"] == "warn"
    assert warned[0]["msg"].startswith("BOOTSTRAP_HEARTBEAT_SECONDS is not a setting")
