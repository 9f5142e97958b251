"""Boot reports: kept on the volume, bounded, readable, and never lost when the volume
cannot be written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from bootstrap.kernel.exit_codes import ExitCode
from tests.boots import REPO, boot, finish_boot, read_only, start_boot, wait_for_line


def test_a_read_only_volume_sends_the_report_to_the_fallback(volume: Path,
                                                             tmp_path: Path) -> None:
    result = boot(volume, ("stage_raises:raises",), prefix=read_only(volume))
    fallback = tmp_path / "fallback-reports"
    assert not (volume / ".bootstrap").exists()
    saved = list(fallback.glob("*.json"))
    assert len(saved) == 1
    said = result.named("report.fallback")
    assert said and said[0]["path"] == str(saved[0])
    assert "Read-only file system" in said[0]["reason"]
    assert result.last["report"] == str(saved[0])
    assert json.loads(saved[0].read_text())["failure"]["stage"] == "raises"


def test_reports_are_bounded(volume: Path) -> None:
    for _ in range(3):
        boot(volume, ("stage_passes:passes",), reports_keep="2")
    assert len(list((volume / ".bootstrap" / "reports").glob("*.json"))) == 2


def test_report_command_prints_the_latest_boot(volume: Path) -> None:
    boot(volume, ("stage_passes:passes",))
    failed = boot(volume, ("stage_raises:raises",))
    result = subprocess.run([sys.executable, "-m", "bootstrap", "report", "--volume", str(volume)],
                            capture_output=True, text=True, cwd=REPO, env=os.environ.copy(),
                            timeout=60)
    assert result.returncode == 0, result.stderr
    run_id = failed.last["run_id"]
    assert f"boot {run_id} on worker" in result.stdout
    assert "failed at stage raises: RuntimeError: the checkpoint loader blew up" in result.stdout
    assert "HINT: " in result.stdout
    assert "preflight" in result.stdout and "raises" in result.stdout


def test_report_command_without_reports_says_where_it_looked(volume: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bootstrap", "report", "--volume", str(volume)],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == ExitCode.NO_REPORT
    assert "no boot reports found" in result.stderr and str(volume) in result.stderr


def test_the_next_boot_announces_the_previous_failure(volume: Path) -> None:
    failed = boot(volume, ("stage_raises:raises",))
    after = boot(volume, ("stage_passes:passes",))
    said = after.named("previous_boot")
    assert len(said) == 1
    assert said[0]["level"] == "warn"
    assert said[0]["previous_run_id"] == failed.last["run_id"]
    assert said[0]["msg"].startswith(f"previous boot on worker {failed.last['worker_id']} "
                                     "failed at stage raises: RuntimeError")
    assert boot(volume, ()).named("previous_boot") == [], "a good boot is not announced"


def test_a_boot_that_never_finished_is_announced(volume: Path) -> None:
    """The supervisor itself was SIGKILLed: its report still says 'booting'."""
    reports = volume / ".bootstrap" / "reports"
    reports.mkdir(parents=True)
    (reports / "20260101T000000-w1-dead.json").write_text(json.dumps({
        "run_id": "dead", "worker_id": "w1", "mode": "volume", "started_at": 1767225600.0,
        "outcome": "booting", "stages": [{"stage": "preflight", "status": "ok",
                                          "duration_ms": 3}]}))
    said = boot(volume, ()).named("previous_boot")
    assert said and "never finished; its last finished stage was preflight" in said[0]["msg"]


def test_a_boot_of_another_worker_still_booting_is_not_called_dead(volume: Path) -> None:
    """Workers of one endpoint boot together on one volume: a report of another worker
    that started minutes ago and says 'booting' may be a boot running right now (four
    workers at once each warned that another 'never finished')."""
    reports = volume / ".bootstrap" / "reports"
    reports.mkdir(parents=True)
    (reports / "20991231T000000-w-other.json").write_text(json.dumps({
        "run_id": "other", "worker_id": "w-other", "mode": "volume",
        "started_at": time.time() - 30, "outcome": "booting",
        "stages": [{"stage": "volume", "status": "ok", "duration_ms": 3}]}))
    (said,) = boot(volume, ()).named("previous_boot")
    assert said["level"] == "info", said
    assert "w-other started a boot" in said["msg"] and "has not finished" in said["msg"]
    assert "booting beside this one, or was killed" in said["msg"]


def test_a_supervisor_killed_mid_boot_leaves_a_booting_report(volume: Path) -> None:
    proc = start_boot(volume, ("stage_hangs:hang",))
    lines = wait_for_line(proc, lambda e: e.get("stage") == "hang" and e["status"] == "start")
    os.killpg(proc.pid, signal.SIGKILL)  # the whole container dies: no summary, no last words
    finish_boot(proc, lines, volume)
    (path,) = (volume / ".bootstrap" / "reports").glob("*.json")
    data = json.loads(path.read_text())
    assert data["outcome"] == "booting"
    assert [s["stage"] for s in data["stages"]] == ["preflight", "volume", "venv", "install",
                                                       "hydrate"]
    said = boot(volume, ()).named("previous_boot")
    assert "never finished; its last finished stage was hydrate" in said[0]["msg"]


def report_cli(volume: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap", "report", "--volume", str(volume),
                           *args], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env=os.environ.copy())


def test_list_names_every_boot_with_its_outcome(volume: Path) -> None:
    ok = boot(volume, ("stage_passes:passes",)).last["run_id"]
    bad = boot(volume, ("stage_raises:raises",)).last["run_id"]
    listed = report_cli(volume, "--list").stdout.splitlines()
    assert listed[0].split() == ["started", "worker", "run", "outcome", "exit", "total"]
    assert ok in listed[1] and "ok" in listed[1] and "0 (OK)" in listed[1]
    assert bad in listed[2] and "failed" in listed[2] and "19 (CUSTOM_STAGE)" in listed[2]


def test_compare_shows_what_changed_between_two_boots(volume: Path) -> None:
    ok = boot(volume, ("stage_passes:passes",)).last["run_id"]
    boot(volume, ("stage_passes:passes", "stage_raises:raises"))
    result = report_cli(volume, ok[:6], "latest")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"A {ok}" in text
    assert re.search(r"^outcome\s+ok 0 \(OK\)\s+failed 19 \(CUSTOM_STAGE\)", text, re.M)
    assert re.search(r"^preflight\s+\d+ ms\s+\d+ ms\s+[+-]\d+ ms", text, re.M)
    assert re.search(r"^raises .* only in B$", text, re.M)
    assert "B failed at stage raises: RuntimeError" in text


def test_an_unknown_run_id_is_a_usage_error(volume: Path) -> None:
    boot(volume, ())
    result = report_cli(volume, "zzzz")
    assert result.returncode == 2
    assert "no boot with a run id starting with 'zzzz'" in result.stderr
