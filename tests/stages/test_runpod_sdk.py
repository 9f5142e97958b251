"""The RunPod SDK the worker runs is current: the F5-TTS environment the README's commands
build holds runpod 1.12 and no gradio (the override drops it), and an environment with an
older SDK gets serve.W001 from `bootstrap check`."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap import sdk_version
from bootstrap.environment import envkey, installer, requirements
from bootstrap.kernel.config import Config
from f5worker import app
from tests.boots import MODEL_STAGES, REPO


def test_the_f5_environment_built_by_the_readme_holds_runpod_1_12_and_no_gradio() -> None:
    """This interpreter is the suite's .venv, built by scripts/test.sh (ensure_venv dev,f5)."""
    import runpod

    assert importlib.util.find_spec("f5_tts") is not None, "not the f5 environment"
    assert runpod.__version__.startswith("1.12."), runpod.__version__
    assert importlib.util.find_spec("gradio") is None
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("gradio")


def test_the_image_and_the_apps_overrides_are_the_same_lines() -> None:
    text = (REPO / "image" / "overrides.txt").read_text()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert tuple(lines) == app.OVERRIDES == app.APP.overrides


def test_uv_is_given_the_overrides_and_the_key_holds_them(tmp_path: Path) -> None:
    config = Config(mode="volume", volume=tmp_path, requirements_text="f5-tts",
                    app="f5worker.app:APP")
    reqs = requirements.load(config)
    assert reqs.overrides == app.OVERRIDES
    uv = installer.Installer("uv", "0.9.13", "uv")
    argv = uv.install_argv(Path("python"), Path("r.txt"), config, tmp_path / "o.txt")
    assert argv[argv.index("--override") + 1] == str(tmp_path / "o.txt")
    pip = installer.Installer("pip", "25", sys.executable)
    assert "--override" not in pip.install_argv(Path("python"), Path("r.txt"), config,
                                                tmp_path / "o.txt")
    without = requirements.Requirements(reqs.lines, reqs.source, reqs.added)
    assert envkey.key(envkey.inputs(config, reqs, "uv")) != envkey.key(
        envkey.inputs(config, without, "uv"))
    assert "overrides" not in envkey.inputs(config, without, "uv")  # old keys stay


def test_an_sdk_older_than_1_12_is_judged_old() -> None:
    assert sdk_version.too_old("1.10.0") and sdk_version.too_old("1.11.9")
    assert not sdk_version.too_old("1.12.0") and not sdk_version.too_old("1.13.0rc1")


@pytest.fixture(scope="module")
def old_sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real environment with runpod 1.10.0, made and filled by uv from the index."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = tmp_path_factory.mktemp("old-sdk") / "env"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(env)],
                   check=True, capture_output=True, timeout=120)
    python = env / "bin" / "python"
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python),
                    "runpod==1.10.0", "click>=8.1", "psutil>=5.9", "structlog>=24.1"],
                   check=True, capture_output=True, timeout=600)
    return python


def test_bootstrap_check_warns_of_runpod_1_10_in_the_workers_environment(
        old_sdk_python: Path, tmp_path: Path) -> None:
    probe = subprocess.run([old_sdk_python, "-c", "import runpod; print(runpod.__version__)"],
                           capture_output=True, text=True, timeout=120, check=True)
    assert probe.stdout.strip() == "1.10.0"
    env = {**os.environ, "BOOTSTRAP_SKIP": ",".join(MODEL_STAGES), "PYTHONPATH": str(REPO)}
    result = subprocess.run([old_sdk_python, "-m", "bootstrap", "check", "--mode", "local",
                             "--volume", str(tmp_path), "--output", "json"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    messages = json.loads(result.stdout)["messages"]
    (found,) = [m for m in messages if m["id"] == "serve.W001"]
    assert found["stage"] == "serve"
    assert "1.10.0 is older than 1.12" in found["msg"]
    assert "funnelling" in found["msg"] and "SSRF" in found["msg"]


def test_bootstrap_check_is_silent_about_the_current_sdk(tmp_path: Path) -> None:
    env = {**os.environ, "BOOTSTRAP_SKIP": ",".join(MODEL_STAGES)}
    result = subprocess.run([sys.executable, "-m", "bootstrap", "check", "--mode", "local",
                             "--volume", str(tmp_path), "--output", "json"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    messages = json.loads(result.stdout)["messages"]
    assert not [m for m in messages if m["id"] == "serve.W001"]
