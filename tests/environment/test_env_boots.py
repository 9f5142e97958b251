"""Whole boots (``bootstrap run``) against a volume: cold, warm, concurrent, crashed,
drifted. The worker really starts from the environment's Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bootstrap.environment import envstore
from bootstrap.kernel.message import Level, Message
from bootstrap.stages import install, venv
from tests.environment.envboot import WORKER_STAGES, Boot, BootFn, StartFn, envs, parse


def test_cold_boot_builds_publishes_and_starts_the_worker_from_the_env(
        boot: BootFn, tmp_path: Path) -> None:
    result = boot(tmp_path / "vol")
    assert result.returncode == 0, result.output
    assert result.summary["status"] == "ok"
    key = result.stage("venv")["facts"]["key"]
    assert envs(tmp_path / "vol") == [key]
    env = tmp_path / "vol" / ".bootstrap" / "envs" / key
    assert result.named("worker.start")[0]["argv"][0] == str(env / "bin" / "python")
    marker = envstore.read_marker(env)
    assert marker is not None and marker["versions"]["bsdemo-a"] == "1.0"
    assert set(marker["imports"]) == {"click", "psutil", "structlog"}
    # byte-compiled at install: workers never write .pyc files to the shared volume
    site = next((env / "lib").glob("python3*/site-packages"))
    assert list((site / "bsdemo_a" / "__pycache__").glob("__init__.*.pyc"))


def test_an_install_attempt_that_runs_past_its_timeout_is_retried_then_named(
        boot: BootFn, tmp_path: Path) -> None:
    result = boot(tmp_path / "vol", BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_slow",
                  BSDEMO_SLOW_SLEEP="60", BOOTSTRAP_INSTALL_TIMEOUT_S="2",
                  BOOTSTRAP_INSTALL_ATTEMPTS="2")
    assert result.returncode == 13, result.output
    assert result.summary["code"] == install.E002.id
    assert "timed out after 2 s" in result.summary["msg"]
    assert len(result.named("install.retry")) == 1
    assert envs(tmp_path / "vol") == []


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_warm_boot_runs_no_installer(boot: BootFn, tmp_path: Path, installer: str) -> None:
    first = boot(tmp_path / "vol", BOOTSTRAP_INSTALLER=installer)
    assert first.returncode == 0, first.output
    assert first.stage("venv")["facts"]["installer"].startswith(installer)
    second = boot(tmp_path / "vol", BOOTSTRAP_INSTALLER=installer)
    assert second.returncode == 0, second.output
    assert second.stage("venv")["facts"]["reused"] is True
    assert install.I001.id in second.codes()
    assert not second.named("install.output")


def test_eight_concurrent_cold_boots_build_once(tmp_path: Path, start: StartFn) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    procs = [start(volume, RUNPOD_POD_ID=f"worker-{i}",
                   BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_a\nbsdemo_many") for i in range(8)]
    boots = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        boots.append(Boot(proc.returncode, parse(out), out, err))
    for b in boots:
        assert b.returncode == 0, b.output + b.stderr
    # the install stage says who built it: whoever held the lease when it was missing
    built = [b for b in boots if b.stage("install")["facts"]["built"]]
    assert len(built) == 1
    pythons = {b.named("worker.start")[0]["argv"][0] for b in boots}
    assert len(pythons) == 1
    assert envs(volume) == [built[0].stage("venv")["facts"]["key"]]  # no .tmp- left
    assert not list((volume / ".bootstrap" / "locks").glob("*.lease"))


def test_sigkill_mid_install_next_boot_takes_over_and_cleans_up(
        tmp_path: Path, start: StartFn, boot: BootFn) -> None:
    volume = tmp_path / "vol"
    started = tmp_path / "build-started"
    proc = start(volume, RUNPOD_POD_ID="doomed", BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_slow",
                 BSDEMO_SLOW_SLEEP="120", BSDEMO_SLOW_STARTED=str(started))
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the slow build never started"
        time.sleep(0.05)
    # the container dies: the supervisor and every process under it (the installer runs
    # in a session of its own, so the process group alone would not take it)
    tree = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    for member in tree:
        member.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=30)
    proc.wait()
    leftovers = envs(volume)
    assert len(leftovers) == 1 and ".tmp-doomed-" in leftovers[0]
    assert list((volume / ".bootstrap" / "locks").glob("*.lease"))

    result = boot(volume, RUNPOD_POD_ID="survivor", BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_slow")
    assert result.returncode == 0, result.output
    takeover = result.named("lease.takeover")
    assert takeover and "doomed" in takeover[0]["holder"]
    facts = result.stage("install")["facts"]  # the build, under the lease, cleans up
    assert facts["removed_leftovers"] == leftovers
    assert envs(volume) == [facts["key"]]


def _built(boot: BootFn, volume: Path) -> Path:
    result = boot(volume)
    assert result.returncode == 0, result.output
    return volume / ".bootstrap" / "envs" / result.stage("venv")["facts"]["key"]


def test_env_whose_pyvenv_cfg_names_another_python_is_rebuilt(
        boot: BootFn, tmp_path: Path) -> None:
    env = _built(boot, tmp_path / "vol")
    cfg = env / "pyvenv.cfg"
    lines = [("version_info = 3.9.1" if line.startswith(("version ", "version_info"))
              else line) for line in cfg.read_text().splitlines()]
    cfg.write_text("\n".join(lines) + "\n")
    result = boot(tmp_path / "vol")
    assert result.returncode == 0, result.output
    assert venv.W001.at(env) in _messages(result)
    assert "pyvenv.cfg names Python 3.9.1" in result.named("venv.rebuild")[0]["reason"]
    assert result.stage("venv")["facts"]["reused"] is False
    assert envstore.health(env) is None


def test_env_whose_bin_python_dangles_is_rebuilt(boot: BootFn, tmp_path: Path) -> None:
    env = _built(boot, tmp_path / "vol")
    python = env / "bin" / "python"
    python.unlink()
    python.symlink_to("/opt/gone/bin/python3.11")
    result = boot(tmp_path / "vol")
    assert result.returncode == 0, result.output
    reason = result.named("venv.rebuild")[0]["reason"]
    assert "points at /opt/gone/bin/python3.11" in reason
    assert envstore.health(env) is None


def _messages(result: Boot) -> list[Message]:
    return [Message(e["code"], Level.from_name({"warn": "warning"}.get(e["level"], e["level"])),
                    e["msg"], obj=e.get("obj", "")) for e in result.named("message")]


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_nonexistent_requirement_is_permanent_not_retried_with_stderr_tail(
        boot: BootFn, tmp_path: Path, installer: str) -> None:
    result = boot(tmp_path / "vol", BOOTSTRAP_INSTALLER=installer,
                  BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo-nonexistent==1.0")
    assert result.returncode == 13, result.output
    summary = result.summary
    assert (summary["status"], summary["stage"], summary["code"]) == (
        "fail", "install", install.E001.id)
    assert not result.named("install.retry")
    assert "bsdemo-nonexistent" in result.stage("install")["failure"]["cause"]
    assert envs(tmp_path / "vol") == []  # nothing published, nothing left


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_unreachable_index_is_transient_retried_and_named_without_credentials(
        boot: BootFn, tmp_path: Path, installer: str) -> None:
    # a network namespace of our own: no interface up, so nothing leaves this machine
    result = boot(tmp_path / "vol", prefix=["unshare", "--net"], BOOTSTRAP_INSTALLER=installer,
                  BOOTSTRAP_FIND_LINKS="", BOOTSTRAP_NO_INDEX="0",
                  BOOTSTRAP_INDEX_URL="http://alice:s3cret-token@127.0.0.1:9/simple",
                  BOOTSTRAP_INSTALL_ATTEMPTS="3")
    assert result.returncode == 13, result.output
    summary = result.summary
    assert (summary["stage"], summary["code"]) == ("install", install.E002.id)
    assert "http://[redacted]@127.0.0.1:9/simple" in summary["hint"]
    assert len(result.named("install.retry")) == 2
    assert "s3cret-token" not in result.output + result.stderr
    assert envs(tmp_path / "vol") == []


def test_a_module_that_fails_to_import_is_not_published(boot: BootFn, tmp_path: Path) -> None:
    result = boot(tmp_path / "vol", BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_broken",
                  BOOTSTRAP_IMPORT_CHECK="bsdemo_broken")
    assert result.returncode == 13, result.output
    assert result.summary["code"] == install.E004.id
    assert "bsdemo_broken is broken" in result.summary["msg"]
    assert envs(tmp_path / "vol") == []


def test_a_requirement_the_apps_override_replaced_is_not_a_broken_environment(
        boot: BootFn, tmp_path: Path) -> None:
    """uv's check still sees bsdemo_ui's dropped requirement; the install stage knows it
    for the app's own decision and ends ok, without install.W001."""
    result = boot(tmp_path / "vol", BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_a\nbsdemo_ui",
                  BOOTSTRAP_APP="tests.fixtures.override_app:APP", BOOTSTRAP_INSTALLER="uv")
    assert result.returncode == 0, result.output
    assert result.stage("install")["status"] == "ok", result.output
    assert install.W001.id not in result.codes()
    key = result.stage("venv")["facts"]["key"]
    check = subprocess.run([sys.executable, "-m", "uv", "pip", "check", "--python",
                            str(tmp_path / "vol" / ".bootstrap" / "envs" / key / "bin" / "python")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode != 0 and "bsdemo-gone" in check.stdout + check.stderr


def test_the_consistency_check_keeps_every_complaint_but_the_overridden_ones() -> None:
    overrides = ('gradio; python_version < "3"',)
    uv_says = ["Checked 250 packages in 6ms", "Found 2 incompatibilities",
               "The package `f5-tts` requires `gradio>=6.15.0`, but it's not installed",
               "The package `f5-tts` requires `numpy<2`, but `numpy==2.1` is installed"]
    pip_says = ["f5-tts 1.1.9 requires gradio, which is not installed.",
                "f5-tts 1.1.9 has requirement numpy<2, but you have numpy 2.1."]
    assert install._unexpected(uv_says, overrides) == [uv_says[3]]
    assert install._unexpected(pip_says, overrides) == [pip_says[1]]
    assert install._unexpected(uv_says[:3], overrides) == []
    assert install._unexpected(uv_says, ()) == uv_says[2:]


def test_subprocess_env_is_isolated_from_this_machines_pip_config() -> None:
    """The boots above must not see this machine's extra indexes (they would turn an
    unreachable index into "no matching distribution")."""
    from tests.environment.envboot import base_env
    env = base_env(Path("/x"), Path("/w"), Path("/v"))
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert not any(k.startswith("PIP_") and k != "PIP_CONFIG_FILE" for k in env)
    assert subprocess.run(["true"], env=env).returncode == 0


def _leases(volume: Path) -> list[Path]:
    return list((volume / ".bootstrap" / "locks").glob("*.lease"))


def test_a_boot_that_skips_install_builds_nothing_and_names_the_fix(
        boot: BootFn, tmp_path: Path) -> None:
    """The venv stage only looks; the build is the install stage's transaction. Skipping
    install with no environment published fails at once, naming the fix, and leaves no
    staging directory and no lease (it used to end "ok", leaving both, and the worker ran
    without its requirements)."""
    volume = tmp_path / "vol"
    skip = f"install,{WORKER_STAGES}"
    result = boot(volume, BOOTSTRAP_MODE="local", BOOTSTRAP_REQUIREMENTS_TEXT="click",
                  BOOTSTRAP_INSTALLER="pip", BOOTSTRAP_SKIP=skip)
    assert result.returncode == 12, result.output
    assert (result.summary["stage"], result.summary["code"]) == ("venv", venv.E006.id)
    assert "is not built" in result.summary["msg"]
    assert "remove install from BOOTSTRAP_SKIP" in result.summary["hint"]
    assert not result.named("worker.start")
    assert envs(volume) == [] and _leases(volume) == []
    # once built, a boot that skips install reuses it
    built = boot(volume, BOOTSTRAP_MODE="local", BOOTSTRAP_REQUIREMENTS_TEXT="click",
                 BOOTSTRAP_INSTALLER="pip")
    assert built.returncode == 0, built.output
    reused = boot(volume, BOOTSTRAP_MODE="local", BOOTSTRAP_REQUIREMENTS_TEXT="click",
                  BOOTSTRAP_INSTALLER="pip", BOOTSTRAP_SKIP=skip)
    assert reused.returncode == 0, reused.output
    assert reused.stage("venv")["facts"]["reused"] is True
    key = built.stage("venv")["facts"]["key"]
    assert reused.named("worker.start")[0]["argv"][0] == str(
        volume / ".bootstrap" / "envs" / key / "bin" / "python")
    assert envs(volume) == [key] and _leases(volume) == []


def test_a_stop_signal_mid_install_leaves_no_staging_and_no_lease(
        tmp_path: Path, start: StartFn) -> None:
    volume = tmp_path / "vol"
    started = tmp_path / "build-started"
    proc = start(volume, BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_slow", BSDEMO_SLOW_SLEEP="120",
                 BSDEMO_SLOW_STARTED=str(started))
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the slow build never started"
        time.sleep(0.05)
    assert len(envs(volume)) == 1 and _leases(volume)  # the build under way
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    summary = parse(out)[-1]
    assert (summary["status"], summary["stage"]) == ("stopped", "install"), out + err
    assert envs(volume) == [] and _leases(volume) == []


def test_a_volume_boot_whose_requirements_do_not_name_runpod_serves(
        boot: BootFn, tmp_path: Path, wheels: Path, sdk_wheels: Path) -> None:
    """The serve stage needs the RunPod SDK: the environment holds it whether or not the
    requirements name it (it used to fail at serve, serve.E003, after the whole build)."""
    volume = tmp_path / "vol"
    skip = ",".join(stage for stage in WORKER_STAGES.split(",") if stage != "serve")
    result = boot(volume, BOOTSTRAP_MODE="volume", BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_a",
                  BOOTSTRAP_FIND_LINKS=f"{wheels},{sdk_wheels}", BOOTSTRAP_SKIP=skip,
                  BOOTSTRAP_HANDLER="bootstrap.echo:make_handler",
                  BOOTSTRAP_TEST_INPUT='{"text": "hello"}',
                  BOOTSTRAP_HYDRATE="never")  # the packed form is other tests' subject
    assert result.returncode == 0, result.output + result.stderr
    assert result.stage("serve")["status"] == "ok"
    assert "'echo': {'text': 'hello'}" in result.output
    facts = result.stage("venv")["facts"]
    assert facts["added"]["runpod>=1.10,<1.13"] == "the serve stage"
    marker = envstore.read_marker(volume / ".bootstrap" / "envs" / facts["key"])
    assert marker is not None and "runpod" in marker["versions"]
