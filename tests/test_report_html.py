"""The HTML boot report, opened in a real headless Chromium with no network: the page
renders offline and the screenshot shows the waterfall and the failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, boot
from PIL import Image

CHROMIUM = shutil.which("chromium")
OK_GREEN = (0x2E, 0x9D, 0x58)
FAIL_RED = (0xD6, 0x45, 0x45)


def chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is required (scripts/system-packages.sh installs it)"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # offline: every host name fails to resolve, so any external asset would be missing
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
         *args], capture_output=True, text=True, timeout=120)


def volume_of(page: Path) -> Path:
    return page.parent / "volume" / ".bootstrap" / "reports"


@pytest.fixture
def html_report(volume: Path, tmp_path: Path) -> Path:
    result = boot(volume, ("stage_passes:passes", "stage_raises:raises"))
    assert result.returncode == 19
    page = tmp_path / "boot.html"
    written = subprocess.run([sys.executable, "-m", "bootstrap", "report", "--volume",
                              str(volume), "--html", str(page)],
                             capture_output=True, text=True, cwd=REPO, env=os.environ.copy(),
                             timeout=60)
    assert written.returncode == 0, written.stderr
    return page


def test_the_page_has_no_external_asset(html_report: Path) -> None:
    html = html_report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html
    assert "RuntimeError: the checkpoint loader blew up" in html


def test_the_screenshot_shows_the_waterfall_and_the_failure(html_report: Path,
                                                           tmp_path: Path) -> None:
    dom = chromium("--dump-dom", html_report.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr
    stages = json.loads(next(volume_of(html_report).rglob("*.json")).read_text())["stages"]
    assert dom.stdout.count("<rect") == len(stages)  # one bar per stage, skipped ones too
    assert {"preflight", "passes", "raises"} <= {s["stage"] for s in stages}
    assert "failed at stage raises" in dom.stdout
    shot = tmp_path / "report.png"
    taken = chromium(f"--screenshot={shot}", "--window-size=1000,900", html_report.as_uri(),
                     tmp_path=tmp_path)
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    colours = {colour for _, colour in Image.open(shot).convert("RGB").getcolors(1 << 24)}
    assert OK_GREEN in colours, "the ok stages' bars are drawn"
    assert FAIL_RED in colours, "the failed stage's bar and the failure box are drawn"
