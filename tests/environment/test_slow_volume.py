"""Boots from a volume that behaves like RunPod's (tests/environment/slowfs.py: a FUSE mount with
a latency per metadata operation and MooseFS's caching), and the hydrate stage's local
copy of the environment: made, reused, killed half-way, refused for lack of room, made
once for four workers at once. Each test mounts its own volume; the environment is the
tests' wheelhouse (bsdemo_a, and bsdemo_many's 1,500 modules for a pack worth killing).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bootstrap import ioprobe
from bootstrap.coldstart import local_copy, packs, readahead, used_part
from bootstrap.environment import envstore, lease
from bootstrap.stages import hydrate as hydrate_stage
from bootstrap.stages import volume as volume_stage
from tests.environment import slowfs
from tests.environment.envboot import REPO, WORKER_STAGES, Boot, base_env, envs, needs_root, parse
from tests.environment.test_extmodule import MODULE_C, compile_shared, module_name
from tests.environment.wheelhouse import write_wheel

FIXTURES = REPO / "tests" / "fixtures"
REQUIREMENTS = "bsdemo_a\nbsdemo_many"

pytestmark = needs_root


def settings(tmp: Path, wheels: Path, volume: Path, copies: Path, **over: str) -> dict[str, str]:
    env = base_env(tmp, wheels, volume)
    env.update({
        "BOOTSTRAP_REQUIREMENTS_TEXT": REQUIREMENTS,
        "BOOTSTRAP_HYDRATE_DIR": str(copies),
        # the worker's stages are skipped; one user stage says where the worker runs from
        "BOOTSTRAP_SKIP": WORKER_STAGES,
        "BOOTSTRAP_EXTRA_STAGES": "stage_where:where",
        "PYTHONPATH": os.pathsep.join((str(REPO), str(FIXTURES))),
    })
    env.update(over)
    return env


def run_boot(env: dict[str, str], prefix: tuple[str, ...] = (), timeout: float = 240) -> Boot:
    argv = [*prefix, sys.executable, "-m", "bootstrap", "run"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO)
    return Boot(proc.returncode, parse(proc.stdout), proc.stdout, proc.stderr, argv)


def facts(result: Boot, stage: str) -> dict[str, Any]:
    found: dict[str, Any] = result.stage(stage).get("facts", {})
    return found


def published(volume: Path) -> tuple[str, Path]:
    """The one environment published on ``volume``: its key and its directory."""
    (key,) = envs(volume)
    return key, volume / ".bootstrap" / "envs" / key


def pack_of(volume: Path, key: str) -> Path:
    """The packed form the environment's marker records."""
    env = volume / ".bootstrap" / "envs" / key
    pack = packs.find(env, envstore.read_marker(env) or {})
    assert pack is not None, f"{env} records no pack"
    return pack.path


def ran_from(result: Boot) -> str:
    return str(facts(result, "where")["prefix"])


def test_the_slow_volume_shows_the_backing_files_times_and_a_touch_lands(
        tmp_path: Path) -> None:
    """The test bed's own faithfulness: times read through it are the backing file's (they
    were all 0, so Python found every .py newer than its .pyc's record and recompiled
    it), and a touch (``utime`` to now: a lease's heartbeat) reaches the file (it failed
    with EINVAL, so a build past the lease's timeout was taken over)."""
    backing = tmp_path / "backing"
    backing.mkdir()
    made = backing / "mod.py"
    made.write_text("X = 1\n")
    os.utime(made, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=0.1) as volume:
        seen = (volume / "mod.py").stat()
        assert seen.st_mtime_ns == 1_700_000_000_123_456_789
        assert seen.st_ctime_ns == made.stat().st_ctime_ns
        before = time.time()
        os.utime(volume / "mod.py")
        assert made.stat().st_mtime >= before - 1
        # a lease held past its timeout is kept by its heartbeat: a waiter does not take
        # it over (it did, once the build took longer than the timeout)
        locks = volume / "locks"
        held = lease.Lease(locks, "env-x", lease.Owner("holder"), timeout_s=1.2)
        held.acquire()
        try:
            waiter = lease.Lease(locks, "env-x", lease.Owner("waiter"), timeout_s=1.2,
                                 on_wait=lambda owner, held_s: None)
            with pytest.raises(lease.WaitedTooLong):
                waiter.acquire(wait_s=4)
            assert held.held() and not held.lost and waiter.took_over is None
        finally:
            held.release()


def test_the_volume_probe_stops_sampling_small_files_on_a_slow_volume(tmp_path: Path) -> None:
    """Every boot that may build on the volume probes it; at 2 ms a metadata operation the
    twenty small files alone took ~0.7 s. The probe stops after the first few once they
    have taken its budget, and the rate still says the volume is slow."""
    backing = tmp_path / "backing"
    backing.mkdir()
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=2.0) as volume:
        rates = ioprobe.rates(volume)
    assert rates.small_files == ioprobe.SMALL_FILES_MIN < ioprobe.SMALL_FILES
    assert rates.small_files_per_s < volume_stage.SLOW_SMALL_FILES_PER_S
    assert rates.lookup_ms >= 2.0
    assert not any(backing.iterdir()), "the probe leaves nothing behind"


@pytest.fixture
def backing(tmp_path: Path, wheels: Path) -> Path:
    """A volume directory with the environment built and packed on it, directly (a build
    through the slow mount is what the 4-worker test does; here it would only cost time)."""
    volume = tmp_path / "backing"
    volume.mkdir()
    result = run_boot(settings(tmp_path, wheels, volume, tmp_path / "unused"))
    assert result.returncode == 0, result.output + result.stderr
    (env,) = envs(volume)
    assert pack_of(volume, env).is_file()
    # a local disk answers a lookup in microseconds: auto keeps the worker on the volume
    assert hydrate_stage.I002.id in result.codes()
    assert facts(result, "hydrate")["from"] == "volume"
    return volume


def test_a_boot_from_the_slow_volume_runs_the_worker_from_a_local_copy(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    copies = tmp_path / "copies"
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=1.0) as volume:
        env = settings(tmp_path, wheels, volume, copies)
        check = subprocess.run([sys.executable, "-m", "bootstrap", "check"], env=env,
                               capture_output=True, text=True, cwd=REPO, timeout=120)
        assert hydrate_stage.I001.id in check.stdout and "would copy it to" in check.stdout, \
            check.stdout
        slowfs.drop_caches()
        first = run_boot(env)
        second = run_boot(env)  # a warm restart of the same container: the copy is reused
        today = run_boot(env | {"BOOTSTRAP_HYDRATE": "never"})
    assert first.returncode == 0, first.output + first.stderr
    made = facts(first, "hydrate")
    assert made["from"] == "local" and made["reused"] is False, made
    assert made["lookup_ms"] >= 0.9, "the volume stage measured the mount's latency"
    (key,) = envs(backing)
    assert ran_from(first) == str(copies / key)
    assert second.returncode == 0, second.output
    assert facts(second, "hydrate")["reused"] is True
    assert ran_from(second) == str(copies / key)
    assert today.returncode == 0, today.output
    assert facts(today, "hydrate")["from"] == "volume"
    assert ran_from(today) == str(volume / ".bootstrap" / "envs" / key)
    # large files stay on the volume, linked from the copy
    assert sorted(p.name for p in copies.iterdir()) == [key, f"{key}.lock"]


def test_a_hydrate_killed_half_way_leaves_nothing_a_later_boot_trusts(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    copies = tmp_path / "copies"
    (key,) = envs(backing)
    pack = pack_of(backing, key)
    # read at 150 KB/s, the pack (zstd: ~650 KB) takes seconds to unpack: time to kill the
    # boot in the middle
    mb_s = 0.15
    assert pack.stat().st_size > 3 * mb_s * 1e6, "the pack is big enough to be killed in"
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=0.1, mb_s=mb_s) as volume:
        env = settings(tmp_path, wheels, volume, copies)
        # its own PID namespace: SIGKILL to the boot takes tar and everything with it, as
        # when a container is killed
        proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", sys.executable,
                                 "-m", "bootstrap", "run"], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(f"{key}.tmp-") and any(p.rglob("*.py"))
                      for p in (copies.iterdir() if copies.is_dir() else [])):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        left = sorted(p.name for p in copies.iterdir())
        assert key not in left, "a killed copy was published"
        assert any(name.startswith(f"{key}.tmp-") for name in left), left
        predicted = subprocess.run([sys.executable, "-m", "bootstrap", "check"], env=env,
                                   capture_output=True, text=True, cwd=REPO, timeout=120)
        assert "would copy it to" in predicted.stdout, predicted.stdout
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=0.1) as volume:
        again = run_boot(settings(tmp_path, wheels, volume, copies))
    assert again.returncode == 0, again.output + again.stderr
    made = facts(again, "hydrate")
    assert made["from"] == "local" and made["reused"] is False, made
    assert [name for name in made["removed_leftovers"] if ".tmp-" in name], made
    assert sorted(p.name for p in copies.iterdir()) == [key, f"{key}.lock"]


def test_a_full_container_disk_falls_back_to_the_volume_with_a_warning(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    # the container disk: a 1 MB tmpfs in a private mount namespace
    script = f'mount -t tmpfs -o size=1m bootstrap-test {copies} || exit 99; exec "$@"'
    prefix = ("unshare", "-m", "--propagation", "private", "sh", "-c", script, "boot")
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=0.5) as volume:
        result = run_boot(settings(tmp_path, wheels, volume, copies), prefix=prefix)
    assert result.returncode == 0, result.output + result.stderr
    assert result.stage("hydrate")["status"] == "warn"
    assert hydrate_stage.W002.id in result.codes()
    (key,) = envs(backing)
    assert facts(result, "hydrate")["from"] == "volume"
    assert ran_from(result) == str(volume / ".bootstrap" / "envs" / key)


def test_a_damaged_pack_falls_back_to_the_volume(tmp_path: Path, wheels: Path,
                                                 backing: Path) -> None:
    (key,) = envs(backing)
    pack = pack_of(backing, key)
    size = pack.stat().st_size
    # same size, garbage inside: only tar can tell
    with open(pack, "r+b") as f:
        f.write(os.urandom(64 << 10))
    copies = tmp_path / "copies"
    env = settings(tmp_path, wheels, backing, copies, BOOTSTRAP_HYDRATE="always")
    garbled = run_boot(env)
    assert garbled.returncode == 0, garbled.output + garbled.stderr
    assert hydrate_stage.W004.id in garbled.codes(), garbled.output
    assert ran_from(garbled) == str(backing / ".bootstrap" / "envs" / key)
    # cut short, as a copy of the volume that stopped half-way would leave it
    os.truncate(pack, size // 2)
    truncated = run_boot(env)
    assert truncated.returncode == 0, truncated.output
    assert hydrate_stage.W003.id in truncated.codes(), truncated.output
    assert not (copies / key).exists()


def test_an_environment_without_a_pack_runs_from_the_volume_with_a_warning(
        tmp_path: Path, wheels: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    copies = tmp_path / "copies"
    built = run_boot(settings(tmp_path, wheels, volume, copies, BOOTSTRAP_HYDRATE="never"))
    assert built.returncode == 0, built.output
    (key,) = envs(volume)
    assert not list((volume / ".bootstrap" / "envs" / key).glob(f"{packs.PACK}*"))
    result = run_boot(settings(tmp_path, wheels, volume, copies, BOOTSTRAP_HYDRATE="always"))
    assert result.returncode == 0, result.output
    assert hydrate_stage.W001.id in result.codes()
    assert ran_from(result) == str(volume / ".bootstrap" / "envs" / key)


# one of them builds the environment with the RunPod SDK (105 packages) through the slow
# mount: minutes on a 2-core machine
@pytest.mark.timeout(1200)
def test_four_workers_at_once_on_one_slow_volume_all_get_ready(
        tmp_path: Path, wheels: Path, sdk_wheels: Path) -> None:
    backing = tmp_path / "backing"
    backing.mkdir()
    copies = tmp_path / "copies"
    # every worker stage but the app's own runs: serve answers one job with the echo
    # handler, from the environment the four share (the framework adds the RunPod SDK)
    serve = ",".join(stage for stage in WORKER_STAGES.split(",") if stage != "serve")
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=0.3) as volume:
        # an empty volume: one of them builds through the slow mount, the others wait
        env = settings(tmp_path, wheels, volume, copies, BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo_a",
                       BOOTSTRAP_HYDRATE="always", BOOTSTRAP_SKIP=serve,
                       BOOTSTRAP_FIND_LINKS=f"{wheels},{sdk_wheels}",
                       BOOTSTRAP_HANDLER="bootstrap.echo:make_handler")
        procs = [subprocess.Popen([sys.executable, "-m", "bootstrap", "run"],
                                  env=env | {"RUNPOD_POD_ID": f"worker-{i}",
                                             "BOOTSTRAP_TEST_INPUT": f'{{"worker": {i}}}'},
                                  cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(4)]
        outputs = [proc.communicate(timeout=1100) for proc in procs]
    results = [Boot(proc.returncode, parse(out), out, err)
               for proc, (out, err) in zip(procs, outputs, strict=True)]
    for i, result in enumerate(results):
        assert result.returncode == 0, result.output + result.stderr
        assert result.stage("serve")["status"] == "ok", result.output
        assert f"'echo': {{'worker': {i}}}" in result.output, result.output
        # the others' reports say "booting" while they boot: not a boot that died
        assert not [e for e in result.named("previous_boot") if e["level"] == "warn"], \
            result.named("previous_boot")
    (key,) = envs(backing)
    assert {ran_from(result) for result in results} == {str(copies / key)}
    made = [facts(result, "hydrate") for result in results]
    assert sum(not m.get("copied_by_another", True) for m in made) == 1, made
    assert sorted(p.name for p in copies.iterdir()) == [key, f"{key}.lock"]
    shutil.rmtree(copies)


def test_the_pages_a_boot_read_of_a_linked_file_are_recorded_then_read_ahead(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    key, env_dir = published(backing)
    # a large file (linked from the copy, not packed): the environment packed again with it
    big = "lib/big.bin"
    (env_dir / big).write_bytes(os.urandom(16 << 20))
    marker = envstore.read_marker(env_dir) or {}
    pack_of(backing, key).unlink()
    marker[packs.RECORD] = packs.write(env_dir, timeout_s=60).to_dict()
    envstore.write_marker(env_dir, marker)
    start, length = 8 << 20, 1 << 20
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=0.5) as volume:
        env = settings(tmp_path, wheels, volume, tmp_path / "copies")
        slowfs.drop_caches()
        first = run_boot(env | {"BOOTSTRAP_EXTRA_STAGES": "stage_where:where,stage_reads:read",
                                "BOOTSTRAP_TEST_READ": f"{big}:{start}:{length}"})
        assert first.returncode == 0, first.output + first.stderr
        assert facts(first, "read")["read"] == length
        assert facts(first, "hydrate")["prefetch_mb"] is None, "nothing recorded yet"
        touched = readahead.load(env_dir)
        assert touched is not None, first.output
        extents = touched.files[big]
        assert any(off <= start and start + length <= off + n for off, n in extents), extents
        assert touched.bytes < 8 << 20, "what was read, not the whole file"
        check = subprocess.run([sys.executable, "-m", "bootstrap", "check"], env=env,
                               capture_output=True, text=True, cwd=REPO, timeout=120)
        assert "of its large files ahead" in check.stdout, check.stdout
        # a new container: nothing cached, no copy; this boot does not read the file itself
        slowfs.drop_caches()
        second = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(tmp_path / "copies2")})
        assert second.returncode == 0, second.output + second.stderr
        made = facts(second, "hydrate")
        assert made["from"] == "local" and made["prefetch_files"] == 1, made
        cached = readahead.resident(volume / ".bootstrap" / "envs" / key / big)
    assert any(off <= start and start + length <= off + n for off, n in cached), cached


def test_a_compressed_pack_and_no_zstd_at_boot_runs_from_the_volume_with_a_warning(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    (key,) = envs(backing)
    assert pack_of(backing, key).name == packs.PACK_ZSTD, "the build here had zstd"
    # the boot's PATH has tar and no zstd: an image built without it
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "tar").symlink_to(packs.tar() or "/bin/tar")
    env = settings(tmp_path, wheels, backing, tmp_path / "copies", BOOTSTRAP_HYDRATE="always",
                   PATH=str(bare))
    check = subprocess.run([sys.executable, "-m", "bootstrap", "check"], env=env,
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert hydrate_stage.W003.id in check.stdout and "no zstd" in check.stdout, check.stdout
    result = run_boot(env)
    assert result.returncode == 0, result.output + result.stderr
    assert hydrate_stage.W003.id in result.codes(), result.output
    assert facts(result, "hydrate")["from"] == "volume"
    assert ran_from(result) == str(backing / ".bootstrap" / "envs" / key)


def site_packages(root: Path) -> Path:
    (found,) = root.glob("lib/python3*/site-packages")
    return found


def test_a_boot_after_a_recorded_one_copies_only_what_it_used_and_still_finds_the_rest(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    key, env_dir = published(backing)
    imports = "stage_where:where,stage_imports:imports"
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=0.5) as volume:
        env = settings(tmp_path, wheels, volume, tmp_path / "copies",
                       BOOTSTRAP_EXTRA_STAGES=imports, BOOTSTRAP_TEST_IMPORT="bsdemo_a")
        first = run_boot(env)
        assert first.returncode == 0, first.output + first.stderr
        assert facts(first, "hydrate")["form"] == "full", "nothing recorded yet"
        (recorded,) = first.named("hydrate.used_recorded")
        marker = envstore.read_marker(env_dir) or {}
        full = packs.find(env_dir, marker)
        assert full is not None
        used, refused = used_part.find(env_dir, local_copy.identity(marker, full))
        assert used is not None and refused is None, refused
        assert used.pack.files == recorded["files"]
        # a new container; this boot also imports a module no recorded boot opened
        copies = tmp_path / "copies2"
        check = subprocess.run([sys.executable, "-m", "bootstrap", "check"], cwd=REPO,
                               env=env | {"BOOTSTRAP_HYDRATE_DIR": str(copies)},
                               capture_output=True, text=True, timeout=120)
        assert "a recorded boot used" in check.stdout, check.stdout
        assert "plan: used" in check.stdout, check.stdout
        slowfs.drop_caches()
        second = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(copies),
                                 "BOOTSTRAP_TEST_IMPORT": "bsdemo_a,bsdemo_many.m0007"})
        assert second.returncode == 0, second.output + second.stderr
        third = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(tmp_path / "copies3"),
                                "BOOTSTRAP_HYDRATE_USED": "0"})
    made = facts(second, "hydrate")
    assert made["from"] == "local" and made["form"] == "used", made
    assert made["used_files"] < full.files - 1500, (made, full)
    copy = copies / key
    site = site_packages(copy)
    assert (site / "bsdemo_a").is_dir() and not (site / "bsdemo_a").is_symlink()
    # the 1,500 modules no boot used: one link to the volume
    assert os.readlink(site / "bsdemo_many") == str(
        volume / ".bootstrap" / "envs" / key / site.relative_to(copy) / "bsdemo_many")
    files = facts(second, "imports")["files"]
    assert files["bsdemo_many.m0007"] == str(site / "bsdemo_many" / "m0007.py")
    assert files["bsdemo_a"] == str(site / "bsdemo_a" / "__init__.py")
    assert ran_from(second) == str(copy)
    # the setting turns it off: the whole pack
    assert third.returncode == 0, third.output
    assert facts(third, "hydrate")["form"] == "full"


def test_a_damaged_or_half_written_used_pack_falls_back_to_the_full_copy(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    key, env_dir = published(backing)
    env = settings(tmp_path, wheels, backing, tmp_path / "copies", BOOTSTRAP_HYDRATE="always",
                   BOOTSTRAP_EXTRA_STAGES="stage_where:where,stage_imports:imports")
    recording = run_boot(env)
    assert recording.returncode == 0, recording.output + recording.stderr
    assert recording.named("hydrate.used_recorded"), recording.output
    record = json.loads((env_dir / used_part.RECORD).read_text())
    used = env_dir / record["file"]
    # garbled, same size: only tar (and zstd's checksum) can tell
    original = used.read_bytes()
    with open(used, "r+b") as f:
        f.seek(len(original) // 3)
        f.write(os.urandom(min(64 << 10, len(original) // 3)))
    garbled = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(tmp_path / "copies2")})
    assert garbled.returncode == 0, garbled.output + garbled.stderr
    assert hydrate_stage.W005.id in garbled.codes(), garbled.output
    made = facts(garbled, "hydrate")
    assert made["form"] == "full" and made["used_failed"], made
    assert ran_from(garbled) == str(tmp_path / "copies2" / key)
    assert not [p for p in (tmp_path / "copies2").iterdir() if ".tmp-" in p.name]
    # forgotten, and recorded again from the full copy that boot made
    again = json.loads((env_dir / used_part.RECORD).read_text())
    assert again["file"] != record["file"] and (env_dir / again["file"]).is_file()
    assert garbled.named("hydrate.used_recorded"), garbled.output
    # a record cut short, and a record whose pack is gone
    used.write_bytes(original)
    (env_dir / used_part.RECORD).write_text(json.dumps(record)[:40])
    cut = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(tmp_path / "copies3")})
    assert cut.returncode == 0, cut.output
    assert hydrate_stage.W005.id in cut.codes() and facts(cut, "hydrate")["form"] == "full"
    (env_dir / used_part.RECORD).write_text(json.dumps(record))
    used.unlink()
    gone = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(tmp_path / "copies4")})
    assert gone.returncode == 0, gone.output
    assert hydrate_stage.W005.id in gone.codes() and facts(gone, "hydrate")["form"] == "full"
    assert ran_from(gone) == str(tmp_path / "copies4" / key)


def test_a_recording_the_summary_cannot_wait_for_ends_after_it_without_a_line(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    """The summary is the boot's last line even when the recording of the used part takes
    longer than the summary may wait (``stop_grace_s``): it says the recording is still
    running, and the recording finishes, silently, before the process exits. (Its own
    event came after the summary when it ran past the wait.)"""
    _, env_dir = published(backing)
    env = settings(tmp_path, wheels, backing, tmp_path / "copies", BOOTSTRAP_HYDRATE="always",
                   BOOTSTRAP_STOP_GRACE_S="0.001")
    result = run_boot(env)
    assert result.returncode == 0, result.output + result.stderr
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert lines[-1]["event"] == "summary", lines[-1]
    (running,) = result.named("hydrate.recording")
    assert running["status"] == "running"
    assert not result.named("hydrate.used_recorded")
    record = json.loads((env_dir / used_part.RECORD).read_text())
    assert (env_dir / record["file"]).is_file(), "the recording finished before the exit"


def test_two_workers_recording_the_used_part_at_once_leave_one_pack_and_its_record(
        tmp_path: Path, wheels: Path, backing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that boot together from full copies record together. Both finish their
    pack, then both publish: the first record stays and the other worker removes its own
    pack (it was left on the volume, named by no record). The two are held at a barrier
    after their packs are written, so they meet in the window every time."""
    key, env_dir = published(backing)
    copies = tmp_path / "copies"
    env = settings(tmp_path, wheels, backing, copies, BOOTSTRAP_HYDRATE="always")
    result = run_boot(env)
    assert result.returncode == 0, result.output + result.stderr
    recorded = json.loads((env_dir / used_part.RECORD).read_text())
    # as if no boot had recorded yet: both workers below find no record
    (env_dir / used_part.RECORD).unlink()
    (env_dir / recorded["file"]).unlink()
    copy = copies / key
    of = json.loads((copy / local_copy.RECORD).read_text())["of"]
    made_at = (copy / local_copy.RECORD).stat().st_mtime

    barrier = threading.Barrier(2, timeout=60)
    run = used_part.command.run

    def run_then_meet(*args: Any, **kwargs: Any) -> Any:
        done = run(*args, **kwargs)
        barrier.wait()
        return done

    monkeypatch.setattr(used_part.command, "run", run_then_meet)
    results: list[used_part.Used | None] = [None, None]

    def record(i: int) -> None:
        results[i] = used_part.write(env_dir, copy, of, made_at=made_at)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    first, second = results
    assert first is not None and second is not None
    assert first.pack.path == second.pack.path, "both answer with the one that stayed"
    packs = sorted(p.name for p in env_dir.glob(f"{used_part.PREFIX}*"))
    assert packs == [first.pack.path.name], packs
    assert json.loads((env_dir / used_part.RECORD).read_text())["file"] == packs[0]
    assert used_part.find(env_dir, of)[0] is not None


def test_a_damaged_used_pack_then_a_disk_too_small_for_the_full_one_runs_from_the_volume(
        tmp_path: Path, wheels: Path, backing: Path) -> None:
    """The used part fits the container disk and the full pack does not, and the used part
    turns out damaged: the fallback to the full pack meets the full disk. The boot runs
    from the volume with a warning, leaves no staging behind, and forgets the damaged
    record. (The disk: a tmpfs with room for the used part's files and not the full
    pack's, in a private mount namespace; bytes are no limit, inodes are.)"""
    key, env_dir = published(backing)
    copies = tmp_path / "copies"
    copies.mkdir()
    env = settings(tmp_path, wheels, backing, copies, BOOTSTRAP_HYDRATE="always")
    recording = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(tmp_path / "recorded")})
    assert recording.returncode == 0, recording.output + recording.stderr
    record = json.loads((env_dir / used_part.RECORD).read_text())
    full_members = pack_members(pack_of(backing, key))
    assert record["files"] + 400 < full_members, (record["files"], full_members)
    used = env_dir / record["file"]
    size = used.stat().st_size
    with open(used, "r+b") as f:  # garbled, same size: only tar and zstd can tell
        f.seek(size // 3)
        f.write(os.urandom(min(64 << 10, size // 3)))
    inodes = record["files"] + 100
    script = (f"mount -t tmpfs -o size=2g,nr_inodes={inodes} bootstrap-test {copies} "
              '|| exit 99; exec "$@"')
    prefix = ("unshare", "-m", "--propagation", "private", "sh", "-c", script, "boot")
    result = run_boot(env, prefix=prefix)
    assert result.returncode == 0, result.output + result.stderr
    assert hydrate_stage.W004.id in result.codes(), result.output
    made = facts(result, "hydrate")
    assert made["from"] == "volume" and made["why"].endswith("is full"), made
    assert ran_from(result) == str(env_dir)
    assert not (env_dir / used_part.RECORD).exists(), "the damaged record is forgotten"


def pack_listing(pack: Path) -> list[str]:
    """The member names of ``pack``, as tar lists them (tar reads zstd by its magic)."""
    return subprocess.run(["tar", "-tf", str(pack)], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def pack_members(pack: Path) -> int:
    return len(pack_listing(pack))


def test_large_modules_are_unpacked_while_the_worker_starts_and_again_after_a_kill(
        tmp_path: Path, wheels: Path) -> None:
    """A large Python extension module a recorded boot opened (one compiled here, in a
    wheel of its own) waits in the used part's later pack: the copy links it to the
    volume, the worker starts, and a thread of the supervisor renames it, unpacked, over
    its link. A copy reused with the link still there (its unpacking killed) unpacks it
    again; a damaged later pack leaves the link, which works, and is forgotten."""
    house = tmp_path / "wheels"
    house.mkdir()
    for wheel in wheels.iterdir():
        (house / wheel.name).symlink_to(wheel)
    module = compile_shared(MODULE_C, tmp_path / module_name())
    write_wheel(house, "bsdemo_ext", "1.0", {"bsdemo_ext/__init__.py": b"",
                                             "bsdemo_ext/spare.py": b"SPARE = 1\n",
                                             f"bsdemo_ext/{module.name}": module.read_bytes()})
    volume = tmp_path / "backing"
    volume.mkdir()
    env = settings(tmp_path, house, volume, tmp_path / "recorded", BOOTSTRAP_HYDRATE="always",
                   BOOTSTRAP_REQUIREMENTS_TEXT=f"{REQUIREMENTS}\nbsdemo_ext",
                   BOOTSTRAP_EXTRA_STAGES="stage_where:where,stage_imports:imports",
                   BOOTSTRAP_TEST_IMPORT="bsdemo_a,bsdemo_ext.bigmod")
    recording = run_boot(env)  # builds, copies the full pack, records what it used
    assert recording.returncode == 0, recording.output + recording.stderr
    key, env_dir = published(volume)
    rel = str((site_packages(env_dir) / "bsdemo_ext" / module.name).relative_to(env_dir))
    marker = envstore.read_marker(env_dir) or {}
    full = packs.find(env_dir, marker)
    assert full is not None
    used, refused = used_part.find(env_dir, local_copy.identity(marker, full))
    assert used is not None and used.later is not None, refused
    assert used.later.members == (rel,)
    # a module no boot imported: its source is packed, its compiled form left out
    spare = site_packages(env_dir).relative_to(env_dir) / "bsdemo_ext" / "spare.py"
    assert list((env_dir / spare.parent / "__pycache__").glob("spare.*.pyc")), "compiled"
    listed = pack_listing(used.pack.path)
    assert f"./{spare}" in listed and not [n for n in listed if "/spare.cpython" in n]

    copies = tmp_path / "copies"
    check = subprocess.run([sys.executable, "-m", "bootstrap", "check"], capture_output=True,
                           env=env | {"BOOTSTRAP_HYDRATE_DIR": str(copies)}, text=True,
                           cwd=REPO, timeout=120)
    assert "its 1 large module (" in check.stdout and "while the worker starts" in check.stdout, \
        check.stdout
    first = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(copies),
                            "BOOTSTRAP_TEST_IMPORT": "bsdemo_a,bsdemo_ext.bigmod,bsdemo_ext.spare"})
    assert first.returncode == 0, first.output + first.stderr
    made = facts(first, "hydrate")
    assert made["form"] == "used" and made["later_pending"] == 1, made
    (said,) = first.named("hydrate.later")
    assert said["status"] == "done" and said["files"] == 1, said
    copy = copies / key
    assert not (copy / rel).is_symlink()
    assert (copy / rel).read_bytes() == module.read_bytes()
    assert facts(first, "imports")["files"]["bsdemo_ext.bigmod"] == str(copy / rel)
    assert facts(first, "imports")["files"]["bsdemo_ext.spare"] == str(copy / spare)
    assert sorted(p.name for p in copies.iterdir()) == [key, f"{key}.later.lock", f"{key}.lock"]

    # what a supervisor killed while unpacking leaves: the link, and a staging directory
    (copy / rel).unlink()
    (copy / rel).symlink_to(env_dir / rel)
    (copies / f"{key}.later.tmp" / "lib").mkdir(parents=True)
    again = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(copies)})
    assert again.returncode == 0, again.output + again.stderr
    reused = facts(again, "hydrate")
    assert reused["reused"] is True and reused["later_pending"] == 1, reused
    assert [e["status"] for e in again.named("hydrate.later")] == ["done"]
    assert not (copy / rel).is_symlink() and (copy / rel).read_bytes() == module.read_bytes()
    assert not (copies / f"{key}.later.tmp").exists()
    third = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(copies)})
    assert "later_pending" not in facts(third, "hydrate") and not third.named("hydrate.later")

    # garbled, same size: the record stands until tar reads it
    data = bytearray(used.later.pack.path.read_bytes())
    span = min(4096, len(data) // 3)
    data[span:2 * span] = os.urandom(span)
    used.later.pack.path.write_bytes(bytes(data))
    damaged = run_boot(env | {"BOOTSTRAP_HYDRATE_DIR": str(tmp_path / "copies2")})
    assert damaged.returncode == 0, damaged.output + damaged.stderr
    (failed,) = damaged.named("hydrate.later")
    assert failed["status"] == "failed" and failed["reason"], failed
    copy2 = tmp_path / "copies2" / key
    assert os.readlink(copy2 / rel) == str(env_dir / rel), "the link stays, and works"
    assert facts(damaged, "imports")["files"]["bsdemo_ext.bigmod"] == str(copy2 / rel)
    assert not (env_dir / used_part.RECORD).exists(), "forgotten: a full copy records again"
    assert not used.later.pack.path.exists() and not used.pack.path.exists()
