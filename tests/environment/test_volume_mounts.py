"""The volume stage against real mounts, each in a private mount namespace (``unshare -m``):
nothing mounted, read-only, a small tmpfs that fills up during the install, a volume a
non-root user cannot write to, a mount that hides files the image provides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bootstrap.kernel.config import Config
from bootstrap.kernel.context import Context
from bootstrap.stages import install, venv, volume
from tests.environment.envboot import REPO, Boot, BootFn, needs_root

pytestmark = needs_root

NOBODY = 65534


def in_namespace(volume: Path, options: str, then: str = "") -> list[str]:
    """A prefix that runs the boot in a private mount namespace with a tmpfs (mounted with
    ``options``) on ``volume``; ``then`` runs inside the namespace after the boot, whose
    exit status is kept."""
    script = (f'mount -t tmpfs -o {options} bootstrap-test "$0" || exit 99; '
              f'"$@"; rc=$?; {then} exit $rc')
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(volume)]


def listing_after(volume: Path) -> str:
    """Shell that prints what the volume's envs directory holds, as a LISTING line."""
    return f'echo "LISTING:$(ls -A {volume}/.bootstrap/envs 2>/dev/null | tr "\\n" " ")";'


def listed(result: Boot) -> list[str]:
    line = next(line for line in result.output.splitlines() if line.startswith("LISTING:"))
    return line.removeprefix("LISTING:").split()


def test_missing_volume_fails_in_volume_mode(boot: BootFn, tmp_path: Path) -> None:
    result = boot(tmp_path / "absent", create=False)
    assert result.returncode == 11
    assert (result.summary["stage"], result.summary["code"]) == ("volume", volume.E001.id)


def test_missing_volume_is_a_note_in_image_mode(boot: BootFn, tmp_path: Path) -> None:
    result = boot(tmp_path / "absent", create=False, BOOTSTRAP_MODE="image",
                  BOOTSTRAP_REQUIREMENTS_TEXT="click>=8", BOOTSTRAP_IMPORT_CHECK="click")
    assert result.returncode == 0, result.output
    assert volume.I001.id in result.codes()
    assert install.I002.id in result.codes()
    assert result.named("worker.start")[0]["argv"][0] == sys.executable


def test_a_directory_that_is_not_mounted_is_named(boot: BootFn, tmp_path: Path) -> None:
    result = boot(tmp_path / "vol")
    assert result.returncode == 0, result.output
    assert volume.W001.id in result.codes()
    assert result.stage("volume")["facts"]["mount_point"] is False


def test_a_mounted_volume_is_recognised(boot: BootFn, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    result = boot(vol, prefix=in_namespace(vol, "size=64m"))
    assert result.returncode == 0, result.output
    facts = result.stage("volume")["facts"]
    assert (facts["mount_point"], facts["fstype"]) == (True, "tmpfs")
    assert volume.W001.id not in result.codes()


def test_read_only_volume_fails_before_anything_is_written(boot: BootFn, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    result = boot(vol, prefix=in_namespace(vol, "ro,size=1m"))
    assert result.returncode == 11, result.output
    assert (result.summary["stage"], result.summary["code"]) == ("volume", volume.E003.id)
    assert "read-only" in result.summary["msg"]


def test_volume_that_fills_up_during_install_names_the_disk_and_publishes_nothing(
        boot: BootFn, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    result = boot(vol, prefix=in_namespace(vol, "size=20m", listing_after(vol)),
                  BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_big")
    assert result.returncode == 13, result.output
    summary = result.summary
    assert (summary["stage"], summary["code"]) == ("install", install.E003.id)
    assert f"no space left on {vol} (tmpfs)" in summary["msg"]
    assert "MB free" in summary["msg"] and "MB written" in summary["msg"]
    assert listed(result) == []  # no environment, no staging directory


def test_install_unpacks_once_on_the_volume_and_nothing_on_a_small_container_disk(
        boot: BootFn, tmp_path: Path) -> None:
    """uv's cache lives inside the environment being built and is hard-linked into it: a
    24 MB package installs onto a 40 MB volume, which has room for one copy and not two,
    while the temp dir (the container disk, where uv's cache used to be) has 2 MB. The
    published environment holds no cache, and the package's file has one link left."""
    vol, small_disk = tmp_path / "vol", tmp_path / "small-disk"
    vol.mkdir()
    small_disk.mkdir()
    envs = f"{vol}/.bootstrap/envs"
    script = (f'mount -t tmpfs -o size=40m bootstrap-test {vol} || exit 99; '
              f'mount -t tmpfs -o size=2m bootstrap-test {small_disk} || exit 99; '
              'env -u UV_CACHE_DIR "$@"; rc=$?; '
              f'find {envs} -name blob.bin -printf "BLOB:%n\\n"; '
              f'find {envs} -name .bootstrap-uv-cache -printf "CACHE:%p\\n"; '
              f'echo "TMP_USED:$(du -sk {small_disk} | cut -f1)"; exit $rc')
    result = boot(vol, prefix=["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                               "boot"],
                  BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_big", BOOTSTRAP_INSTALLER="uv",
                  TMPDIR=str(small_disk), BOOTSTRAP_MIN_FREE_DISK_MB="1")
    assert result.returncode == 0, result.output + result.stderr
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("BLOB:")] == ["BLOB:1"], result.output
    assert not [line for line in lines if line.startswith("CACHE:")], result.output
    used_kb = int(next(line for line in lines if line.startswith("TMP_USED:")).split(":")[1])
    assert used_kb < 1024, f"{used_kb} kB written to the temp dir"


def test_a_full_uv_cache_on_the_container_disk_is_named_not_the_volume(
        boot: BootFn, tmp_path: Path) -> None:
    """An operator's UV_CACHE_DIR on a small disk fills up while the volume has room: the
    failure names that disk, not the volume."""
    vol, small_disk = tmp_path / "vol", tmp_path / "small-disk"
    vol.mkdir()
    small_disk.mkdir()
    script = (f'mount -t tmpfs -o size=8m bootstrap-test {small_disk} || exit 99; "$@"')
    result = boot(vol, prefix=["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                               "boot"],
                  BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_big", BOOTSTRAP_INSTALLER="uv",
                  UV_CACHE_DIR=str(small_disk / "uv"))
    assert result.returncode == 13, result.output
    summary = result.summary
    assert (summary["stage"], summary["code"]) == ("install", install.E003.id)
    assert f"no space left on {small_disk} (tmpfs)" in summary["msg"], summary["msg"]


def _as_nobody() -> list[str]:
    # The interpreter may live under a directory only root can enter (/root/.pyenv): the
    # user may read and search everything, as in an image where Python is world-readable,
    # but it gets no right to write.
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def test_non_root_user_that_cannot_write_gets_owner_and_mode(boot: BootFn, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir(mode=0o755)
    result = boot(vol, prefix=_as_nobody())
    assert result.returncode == 11, result.output + result.stderr
    summary = result.summary
    assert (summary["stage"], summary["code"]) == ("volume", volume.E004.id)
    assert "owned by uid 0 gid 0, mode drwxr-xr-x" in summary["hint"]
    assert f"runs as uid {NOBODY}" in summary["hint"]


def test_a_volume_flag_naming_a_directory_the_user_cannot_read_is_named_by_the_volume_stage(
        boot: BootFn, tmp_path: Path) -> None:
    """``--volume`` used to be judged by the command line parser: a plain usage error, no
    event, no report. The volume stage names it, as it does for BOOTSTRAP_VOLUME."""
    vol = tmp_path / "vol"
    vol.mkdir(mode=0o700)  # owned by root: nobody may not read it (nor write it)
    vol.chmod(0o700)
    reports = tmp_path / "reports"
    reports.mkdir(mode=0o777)
    reports.chmod(0o777)
    result = boot(tmp_path / "unused", prefix=_as_nobody(), args=["--volume", str(vol)],
                  BOOTSTRAP_FALLBACK_REPORTS=str(reports))
    assert result.returncode == 11, result.output + result.stderr
    summary = result.summary
    assert (summary["stage"], summary["code"]) == ("volume", volume.E004.id)
    assert str(vol) in summary["msg"]
    assert "owned by uid 0 gid 0, mode drwx------" in summary["hint"]
    assert f"runs as uid {NOBODY}" in summary["hint"]
    # the report went to the fallback, the volume refusing it
    assert summary["report"] and Path(summary["report"]).parent == reports


def test_non_root_user_owning_the_volume_boots(boot: BootFn, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    os.chown(vol, NOBODY, NOBODY)
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o777)
    scratch.chmod(0o777)
    result = boot(vol, prefix=_as_nobody(), HOME=str(scratch),
                  UV_CACHE_DIR=str(scratch / "uv"),
                  BOOTSTRAP_FALLBACK_REPORTS=str(scratch / "reports"), TMPDIR=str(scratch))
    assert result.returncode == 0, result.output + result.stderr
    env = vol / ".bootstrap" / "envs" / result.stage("venv")["facts"]["key"]
    assert env.stat().st_uid == NOBODY


def test_mount_hiding_image_content_is_named(boot: BootFn, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "models").mkdir(parents=True)
    (vol / "models" / "baked.bin").write_bytes(b"from the image")
    manifest = tmp_path / "image-manifest.txt"
    manifest.write_text(f"{vol}/models/baked.bin\n{sys.executable}\n")
    result = boot(vol, prefix=in_namespace(vol, "size=64m"),
                  BOOTSTRAP_IMAGE_MANIFEST=str(manifest))
    assert result.returncode == 0, result.output
    hidden = [e for e in result.named("message") if e["code"] == volume.W005.id]
    assert [e["obj"] for e in hidden] == [str(vol)]
    assert f"{vol}/models/baked.bin" in hidden[0]["hint"]


def _ctx(vol: Path, **settings: object) -> Context:
    return Context(Config(volume=vol, **settings), run_id="t", worker_id="w")  # type: ignore[arg-type]


def test_doubled_prefix_is_named_and_missing_files_are_warned(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "runpod-volume" / "models").mkdir(parents=True)
    (vol / "runpod-volume" / "models" / "model.pt").write_bytes(b"x")
    found = volume.check(_ctx(vol, mode="local", volume_expect=("models/model.pt", "vocab.txt")))
    assert volume.W003.at("models/model.pt") in found
    assert volume.W004.at("vocab.txt") in found
    w003 = found[found.index(volume.W003.at("models/model.pt"))]
    assert f"{vol}/runpod-volume" in w003.hint


def test_check_is_a_dry_run_that_says_what_would_be_built(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTSTRAP_")}
    env.update(BOOTSTRAP_VOLUME=str(vol), BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_a\nbsdemo_b",
               BOOTSTRAP_MIN_FREE_VOLUME_MB="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bootstrap", "check", "--output", "json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert list(vol.iterdir()) == []  # not even .bootstrap
    text = proc.stdout
    assert venv.I002.id in text and "2 requirements" in text
    assert json.loads(text)  # one JSON document
