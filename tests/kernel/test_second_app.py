"""The framework boots an app that is not the F5-TTS one: its setting, its stage, its
handler; and the F5-TTS package and torch never enter its worker."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.boots import FIXTURES, boot

ECHO = {"BOOTSTRAP_APP": "echo_app:APP", "BOOTSTRAP_HANDLER": "", "BOOTSTRAP_SKIP": ""}


def test_a_second_app_boots_serves_a_job_and_never_imports_the_first(volume: Path) -> None:
    result = boot(volume, env={**ECHO, "BOOTSTRAP_GREETING": "bonjour"},
                  test_input=json.dumps({"text": "hi"}))
    assert result.returncode == 0, result.stdout[-3000:]
    last = result.last
    assert last["status"] == "ok"
    # The app's stages, and none of the F5-TTS app's (cuda, audio, model, warmup).
    assert list(last["stages"]) == ["preflight", "volume", "venv", "install", "hydrate",
                                    "greet", "storage", "serve"]
    report = result.report()
    assert report["app"] == {"name": "echo", "target": "echo_app:APP"}
    text = subprocess.run([sys.executable, "-m", "bootstrap", "report", "--volume",
                           str(volume)], capture_output=True, text=True, check=True).stdout
    assert "(local mode, app echo)" in text.splitlines()[0], text
    assert "greet" in text
    greet = next(s for s in report["stages"] if s["stage"] == "greet")
    assert greet["facts"] == {"greeting": "bonjour"}  # the app's own setting, from the env
    lines = [e["line"] for e in result.named("output")]
    answers = [line for line in lines if "'echo': {'text': 'hi'}" in line]
    assert answers, lines
    answer = ast.literal_eval(answers[0][answers[0].index("{"):])
    assert answer["output"]["greeting"] == "bonjour"
    # The worker's sys.modules while it ran the job: the app and the SDK, which shows the
    # look would see torch or the F5-TTS package had either been imported.
    assert answer["output"]["loaded"] == ["echo_app", "runpod"]


def test_config_shows_the_apps_settings_beside_the_frameworks(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(FIXTURES),
           "BOOTSTRAP_APP": "echo_app:APP", "BOOTSTRAP_GREETING": "hej"}
    out = subprocess.run([sys.executable, "-m", "bootstrap", "config", "--output", "json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    config = json.loads(out.stdout)["config"]
    assert config["greeting"] == {"value": "hej", "source": "env BOOTSTRAP_GREETING"}
    assert config["app"]["value"] == "echo_app:APP"
    assert "model_ckpt" not in config  # the F5-TTS app's settings belong to that app
    # A setting of another app is no setting here, and is named as such.
    env["BOOTSTRAP_MODEL_CKPT"] = "x"
    out = subprocess.run([sys.executable, "-m", "bootstrap", "config", "--output", "json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert any("BOOTSTRAP_MODEL_CKPT" in note for note in json.loads(out.stdout)["unknown"])
