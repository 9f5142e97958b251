"""`bootstrap check` against the broken setups the stage tests build: it reports the id
that `bootstrap run` then fails (or warns) with, and the volume is exactly as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bootstrap.stages import serve, venv, volume
from tests.boots import read_only, snapshot
from tests.environment.envboot import BootFn, base_env


def check(tmp_path: Path, wheels: Path, vol: Path, prefix: Sequence[str] = (),
          **env: str) -> set[str]:
    full = base_env(tmp_path, wheels, vol) | env
    result = subprocess.run([*prefix, sys.executable, "-m", "bootstrap", "check", "--output",
                             "json"], capture_output=True, text=True, env=full, cwd=tmp_path,
                            timeout=120)
    assert result.stdout.startswith("{"), result.stderr
    return {m["id"] for m in json.loads(result.stdout)["messages"]}


def test_a_missing_volume(boot: BootFn, tmp_path: Path, wheels: Path) -> None:
    vol = tmp_path / "vol"
    before = snapshot(tmp_path)
    assert volume.E001.id in check(tmp_path, wheels, vol)
    assert snapshot(tmp_path) == before and not vol.exists()
    result = boot(vol, create=False)
    assert result.summary["code"] == volume.E001.id


def test_a_read_only_volume(boot: BootFn, tmp_path: Path, wheels: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "models").mkdir(parents=True)
    (vol / "models" / "vocab.txt").write_text(" \na\n")
    before = snapshot(vol)
    assert volume.E003.id in check(tmp_path, wheels, vol, prefix=read_only(vol))
    assert snapshot(vol) == before
    result = boot(vol, prefix=read_only(vol))
    assert result.summary["code"] == volume.E003.id


def test_an_unhealthy_environment(boot: BootFn, tmp_path: Path, wheels: Path) -> None:
    vol = tmp_path / "vol"
    assert boot(vol).returncode == 0
    (env,) = (vol / ".bootstrap" / "envs").iterdir()
    cfg = env / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace("version_info = 3.11", "version_info = 3.9"))
    before = snapshot(vol)
    assert venv.W001.id in check(tmp_path, wheels, vol)
    assert snapshot(vol) == before, "the check left the volume as it was"
    result = boot(vol)
    assert venv.W001.id in result.codes()  # run says the same, then rebuilds
    assert result.returncode == 0


def _contents(tmp_path: Path, wheels: Path, vol: Path, **env: str) -> str:
    full = base_env(tmp_path, wheels, vol) | env
    result = subprocess.run([sys.executable, "-m", "bootstrap", "check", "--output", "json"],
                            capture_output=True, text=True, env=full, cwd=tmp_path,
                            timeout=120)
    (found,) = [m for m in json.loads(result.stdout)["messages"] if m["id"] == venv.I005.id]
    return str(found["msg"])


def test_check_says_what_the_environment_holds_and_who_added_what(
        tmp_path: Path, wheels: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    serving = _contents(tmp_path, wheels, vol, BOOTSTRAP_MODE="volume", BOOTSTRAP_SKIP="",
                        BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_a")
    assert serving.startswith("environment cpython-"), serving
    assert "bsdemo_a; " in serving
    assert "runpod>=1.10,<1.13 (added: the serve stage)" in serving
    assert "click>=8.1 (added: bootstrap's worker process)" in serving
    # a boot that does not serve gets no SDK
    assert "runpod" not in _contents(tmp_path, wheels, vol, BOOTSTRAP_MODE="volume",
                                     BOOTSTRAP_SKIP="serve")
    assert list(vol.iterdir()) == []  # nothing built or written by the check


def interpreter_without_runpod(tmp_path: Path) -> Path:
    """A real virtualenv holding bootstrap and its three dependencies, as an image built
    without the serve extra would: the test run's own packages, linked in, and no runpod."""
    import click
    import psutil
    import structlog

    import bootstrap

    env = tmp_path / "image-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next((env / "lib").glob("python3*/site-packages"))
    for module in (bootstrap, click, psutil, structlog):
        package = Path(module.__file__ or "").parent
        (site / package.name).symlink_to(package)
    return env / "bin" / "python"


def test_an_image_without_the_runpod_sdk(tmp_path: Path) -> None:
    """In image mode nothing installs the SDK: the image's Python must hold it. Check says
    so before the boot, which otherwise learns it at serve, after every other stage."""
    python = interpreter_without_runpod(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "BOOTSTRAP_MODE": "image", "BOOTSTRAP_APP": "",
           "BOOTSTRAP_HANDLER": "bootstrap.echo:make_handler", "BOOTSTRAP_ALLOW_CPU": "1",
           "BOOTSTRAP_VOLUME": str(tmp_path / "no-volume"), "BOOTSTRAP_LOG_FORMAT": "json",
           "BOOTSTRAP_SKIP": "cuda,audio,model,warmup",
           "BOOTSTRAP_FALLBACK_REPORTS": str(tmp_path / "reports")}
    checked = subprocess.run([str(python), "-m", "bootstrap", "check", "--output", "json"],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert checked.stdout.startswith("{"), checked.stderr
    found = {m["id"] for m in json.loads(checked.stdout)["messages"]}
    assert serve.E003.id in found, checked.stdout
    ran = subprocess.run([str(python), "-m", "bootstrap", "run"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    summary = json.loads(ran.stdout.strip().splitlines()[-1])
    assert (summary["stage"], summary["code"]) == ("serve", serve.E003.id), ran.stdout
