"""The small pieces behind the stages: mountinfo, keys, health, garbage collection,
known-bad pairs, requirements, image-mode verification."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from bootstrap import mounts
from bootstrap.environment import compat, envkey, envstore, requirements
from bootstrap.environment.requirements import WORKER_REQUIREMENTS, Requirements
from bootstrap.kernel.config import Config
from bootstrap.kernel.context import Context
from bootstrap.kernel.stage import StageFailed
from bootstrap.stages import install, venv
from tests.environment.envboot import REPO

MOUNTINFO = (
    "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "40 22 0:50 / /runpod-volume rw,relatime shared:20 - nfs4 10.0.0.5:/vol rw,vers=4.1\n"
    "41 22 0:51 / /srv/with\\040space ro,nosuid - tmpfs none rw\n"
    "42 40 0:52 / /runpod-volume/cache rw - tmpfs tmpfs ro\n"
)


def test_mountinfo_names_mount_filesystem_source_and_read_only() -> None:
    table = mounts.parse(MOUNTINFO)
    vol = mounts.mount_of(Path("/runpod-volume/envs/x"), table)
    assert vol is not None and (vol.point, vol.fstype, vol.source) == (
        Path("/runpod-volume"), "nfs4", "10.0.0.5:/vol")
    assert not vol.read_only
    assert mounts.is_mount_point(Path("/runpod-volume"), table)
    assert not mounts.is_mount_point(Path("/runpod-volume/envs"), table)
    spaced = mounts.mount_of(Path("/srv/with space"), table)
    assert spaced is not None and spaced.read_only  # per-mount ro
    cache = mounts.mount_of(Path("/runpod-volume/cache"), table)
    assert cache is not None and cache.read_only  # superblock ro
    root = mounts.mount_of(Path("/etc"), table)
    assert root is not None and root.point == Path("/")


def test_the_real_root_is_a_mount_point() -> None:
    assert mounts.is_mount_point(Path("/"))


def _inputs(**changes: object) -> dict[str, object]:
    reqs = Requirements(("bsdemo_a",), "test")
    return envkey.inputs(Config(**changes), reqs, "uv 0.5.0")  # type: ignore[arg-type]


def test_the_key_changes_with_what_built_the_env_but_not_with_credentials() -> None:
    base = envkey.key(_inputs())
    assert envkey.key(_inputs()) == base
    assert envkey.key(_inputs(system_site_packages=True)) != base
    assert envkey.key(_inputs(index_url="https://idx/simple")) != base
    assert envkey.key(_inputs(index_url="https://u:one@idx/simple")) == envkey.key(
        _inputs(index_url="https://u:two@idx/simple"))
    other = envkey.inputs(Config(), Requirements(("bsdemo_b",), "t"), "uv 0.5.0")
    assert envkey.differences(_inputs(), other) == ["requirements"]
    assert "one" not in str(_inputs(index_url="https://u:one@idx/simple"))


def _env(root: Path, name: str) -> Path:
    path = root / name
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True)
    envstore.write_marker(path, {"key": name})
    return path


def test_health_names_each_reason_to_rebuild(tmp_path: Path) -> None:
    env = _env(tmp_path, "e")
    assert envstore.health(env) is None
    assert envstore.health(tmp_path / "absent") == "missing"
    (env / envstore.MARKER).unlink()
    assert "no completion marker" in str(envstore.health(env))
    envstore.write_marker(env, {"key": "e"})
    (env / "bin" / "python").unlink()
    (env / "bin" / "python").write_text("#!/bin/sh\nexit 3\n")
    (env / "bin" / "python").chmod(0o755)
    assert "bin/python does not run" in str(envstore.health(env))


def test_gc_keeps_the_newest_the_current_busy_and_recently_used(tmp_path: Path) -> None:
    store = envstore.Store(tmp_path)
    store.root.mkdir(parents=True)
    old = time.time() - 10 * envstore.GC_MIN_IDLE_S
    names = ["a", "b", "c", "d", "busy", "recent"]
    for age, name in enumerate(names):
        _env(store.root, name)
        stamp = time.time() if name == "recent" else old - age
        os.utime(store.root / name / envstore.MARKER, (stamp, stamp))
    removed = store.gc(keep=2, current="d", busy={"busy"})
    # kept: d (current), recent (newest use, and within the idle time), busy (a lease)
    assert sorted(removed) == ["a", "b", "c"]
    assert sorted(p.name for p in store.root.iterdir()) == ["busy", "d", "recent"]


def test_known_bad_version_pairs() -> None:
    assert compat.problems({"torch": "2.9.0+cu128", "torchaudio": "2.9.0"}) == []
    assert compat.problems({"torch": "2.9.1", "torchaudio": "2.8.0"}) == [
        "torchaudio 2.8.0 is built for torch 2.8, found torch 2.9.1"]
    assert compat.problems({"torch": "2.9.0", "torchcodec": "0.7.0"}) == [
        "torchcodec 0.7.0 is built for torch 2.8, found torch 2.9.0"]
    assert compat.problems({"torch": "2.9.0", "torchcodec": "0.8.1"}) == []


def test_worker_requirements_are_the_package_dependencies() -> None:
    """The worker runs from the environment with bootstrap on PYTHONPATH, so the
    environment must hold every runtime dependency bootstrap declares."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(WORKER_REQUIREMENTS) == sorted(declared)


def test_the_serve_stage_adds_the_sdk_the_package_declares_for_serving() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    added = [a.line for a in requirements.FRAMEWORK if a.stage == "serve"]
    assert added == project["optional-dependencies"]["serve"]


def test_what_a_stage_needs_is_added_only_when_it_runs() -> None:
    serving = requirements.load(Config(requirements_text="bsdemo_a"))
    assert serving.all_lines == ("click>=8.1", "psutil>=5.9", "structlog>=24.1",
                                 "runpod>=1.10,<1.13", "bsdemo_a")
    assert "runpod>=1.10,<1.13 (added: the serve stage)" in serving.describe()
    quiet = requirements.load(Config(requirements_text="bsdemo_a", skip=("serve",)))
    assert quiet.all_lines == ("click>=8.1", "psutil>=5.9", "structlog>=24.1", "bsdemo_a")
    # a different environment: a boot that serves never reuses one built without the SDK
    assert serving.text() != quiet.text()


def _ctx(tmp_path: Path, **settings: object) -> Context:
    config = Config(volume=tmp_path, **settings)  # type: ignore[arg-type]
    return Context(config, run_id="t", worker_id="w")


def test_image_mode_verifies_imports_and_versions_in_place(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, mode="image", requirements_text="click>=8\npsutil",
               import_check=("click",))
    outcome = venv.run(ctx)
    assert ctx.python == Path(sys.executable) and outcome.facts["env"] is None
    verified = install.run(ctx)
    assert install.I002.at(sys.executable) in verified.messages
    assert "click" in verified.facts["imports_ms"]


def test_image_mode_names_an_unmet_requirement(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, mode="image", requirements_text="click>=999")
    venv.run(ctx)
    with pytest.raises(StageFailed) as failed:
        install.run(ctx)
    assert failed.value.message == install.E005.at(sys.executable)
    assert "click>=999 (found" in failed.value.message.msg


def test_a_missing_requirements_file_is_named(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, requirements=str(tmp_path / "nope.txt"))
    assert venv.check(ctx) == [venv.E001.at(tmp_path / "nope.txt")]
    with pytest.raises(StageFailed):
        venv.run(ctx)


def test_local_mode_without_requirements_uses_the_current_interpreter(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, mode="local")
    venv.run(ctx)
    assert ctx.python == Path(sys.executable)
    assert not (tmp_path / ".bootstrap").exists()


def test_installer_output_is_rate_limited_and_counts_what_it_dropped() -> None:
    from bootstrap.kernel import events
    from bootstrap.kernel.throttle import Throttle
    throttle = Throttle("install.output", interval_s=3600)
    with events.capture() as captured:
        for i in range(5):
            throttle("stderr", f"line {i}")
        throttle._last = float("-inf")  # the interval has passed
        throttle("stdout", "last words")
    assert [(e["line"], e.get("dropped")) for e in captured] == [
        ("line 0", None), ("last words", 4)]


def test_last_used_reads_the_mark_an_earlier_bootstrap_wrote(tmp_path: Path) -> None:
    """The mark is `.bootstrap-last-used` now; a worker of an earlier version serving from
    the environment touches `.bootstrap-used`, which still counts, so garbage collection
    leaves the environment it runs from."""
    env = tmp_path / "env"
    env.mkdir()
    (env / envstore.MARKER).write_text("{}")
    os.utime(env / envstore.MARKER, (1000, 1000))
    assert envstore.last_used(env) == 1000, "never used: the marker's time"
    (env / ".bootstrap-used").touch()
    os.utime(env / ".bootstrap-used", (5000, 5000))
    assert envstore.last_used(env) == 5000
    envstore.mark_used(env)
    assert (env / envstore.LAST_USED).is_file() and envstore.LAST_USED != ".bootstrap-used"
    assert envstore.last_used(env) > 5000
