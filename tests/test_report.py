"""Boot reports: kept on the volume, bounded, readable, and never lost when the volume
cannot be written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, boot

from bootstrap.exit_codes import ExitCode


def read_only(path: Path) -> tuple[str, ...]:
    """A prefix that runs the boot in a private mount namespace where ``path`` is read-only."""
    script = (f'mount --bind "{path}" "{path}" && mount -o remount,ro,bind "{path}" "{path}"'
              ' && exec "$@"')
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh")


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
