"""An app's mistakes are found before a boot: `bootstrap check` names a misspelt stage or
handler target with its own id, and an app setting that collides with the framework's is
refused when the app loads. Over the real CLI, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.boots import FIXTURES, REPO, boot


def _cli(volume: Path, *args: str, app: str,
         **variables: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{FIXTURES}", "BOOTSTRAP_APP": app,
           "BOOTSTRAP_MODE": "local", "BOOTSTRAP_VOLUME": str(volume),
           "BOOTSTRAP_FALLBACK_REPORTS": str(volume.parent / "fallback-reports"), **variables}
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)


def _check(volume: Path, app: str) -> tuple[int, list[dict[str, Any]]]:
    result = _cli(volume, "check", "--output", "json", app=app)
    return result.returncode, json.loads(result.stdout)["messages"]


def test_check_names_a_misspelt_app_stage_and_its_close_name(volume: Path) -> None:
    code, messages = _check(volume, "misspelt_app:STAGE_TYPO")
    assert code == 3, messages
    found = [m for m in messages if m["id"] == "stage.E001"]
    assert [m["obj"] for m in found] == ["echo_app:GREEET"], messages
    assert "AttributeError" in found[0]["msg"]
    assert "did you mean echo_app:GREET?" in found[0]["hint"]
    order = next(m for m in messages if m["id"] == "check.I002")["msg"]
    assert "echo_app:GREEET -> storage -> serve" in order  # the target, not "GREEET"


def test_check_names_a_misspelt_handler_target_and_its_close_name(volume: Path) -> None:
    code, messages = _check(volume, "misspelt_app:HANDLER_TYPO")
    assert code == 3, messages
    found = [m for m in messages if m["id"] == "serve.E001"]
    assert [m["obj"] for m in found] == ["echo_app:make_handlr"], messages
    assert "did you mean echo_app:make_handler?" in found[0]["hint"]
    assert not [m for m in messages if m["id"] == "stage.E001"]


def test_check_of_a_sound_app_names_neither(volume: Path) -> None:
    _, messages = _check(volume, "echo_app:APP")
    assert not [m for m in messages if m["id"] in ("stage.E001", "serve.E001")], messages


def test_a_boot_with_a_misspelt_stage_fails_in_that_stage_with_its_id(volume: Path) -> None:
    result = boot(volume, env={"BOOTSTRAP_APP": "misspelt_app:STAGE_TYPO",
                               "BOOTSTRAP_HANDLER": "", "BOOTSTRAP_SKIP": ""})
    assert result.returncode == 19, result.stdout[-3000:]
    last = result.last
    assert last["stage"] == "echo_app:GREEET", last
    assert last["code"] == "stage.E001", last
    assert "did you mean echo_app:GREET?" in last["hint"]


def test_an_app_setting_that_collides_with_the_frameworks_is_refused_at_load(
        volume: Path) -> None:
    for command in (("config",), ("check",), ("run",)):
        result = _cli(volume, *command, app="misspelt_app:COLLIDING")
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        out = result.stdout + result.stderr
        assert "'mode' (BOOTSTRAP_MODE) collides with the framework's setting 'mode'" in out, \
            (command, out)
        assert "misspelt_app.CollidingSettings" in out


def test_the_framework_knows_no_apps_setting_or_exit_code(volume: Path) -> None:
    """The F5-TTS app's limits (BOOTSTRAP_LIMIT_*) and exit codes are the app's: another
    app has no such setting, and the kernel's codes have no model, audio or warm-up."""
    from bootstrap.kernel.exit_codes import ExitCode

    assert not {"AUDIO", "MODEL", "WARMUP"} & {code.name for code in ExitCode}
    env = {"BOOTSTRAP_LIMIT_MAX_TEXT_CHARS": "10"}
    echo = _cli(volume, "config", "--output", "json", app="echo_app:APP", **env)
    out = json.loads(echo.stdout)
    assert "job_limits" not in out["config"]
    assert any("BOOTSTRAP_LIMIT_MAX_TEXT_CHARS" in note for note in out["unknown"]), out
    f5 = json.loads(_cli(volume, "config", "--output", "json", app="f5worker.app:APP",
                         **env).stdout)
    assert f5["config"]["job_limits"] == {"value": {"max_text_chars": 10.0},
                                          "source": "env BOOTSTRAP_LIMIT_*"}
