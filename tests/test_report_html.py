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

from bootstrap.stages import cuda

CHROMIUM = shutil.which("chromium")
OK_GREEN = (0x2E, 0x9D, 0x58)
FAIL_RED = (0xD6, 0x45, 0x45)
WARN_BOX = (0xFD, 0xF6, 0xE0)  # the background of a warning's box on the page
NO_GPU = not Path("/dev/nvidiactl").exists()


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


def report_command(volume: Path, *args: str) -> str:
    written = subprocess.run([sys.executable, "-m", "bootstrap", "report", "--volume",
                              str(volume), *args],
                             capture_output=True, text=True, cwd=REPO, env=os.environ.copy(),
                             timeout=60)
    assert written.returncode == 0, written.stderr
    return written.stdout


@pytest.fixture
def html_report(volume: Path, tmp_path: Path) -> Path:
    result = boot(volume, ("stage_passes:passes", "stage_raises:raises"))
    assert result.returncode == 19
    page = tmp_path / "boot.html"
    report_command(volume, "--html", str(page))
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


@pytest.mark.skipif(not NO_GPU, reason="a GPU is visible: the cuda stage has nothing to warn of")
def test_a_worker_stage_warning_shows_its_id_and_hint_everywhere(volume: Path,
                                                                 tmp_path: Path) -> None:
    """The cuda stage runs in the worker; on this CPU machine (allow_cpu: local mode) it
    warns. The warning is in the boot report, `bootstrap report` and on the page."""
    result = boot(volume, ("stage_passes:passes",), skip="audio,model,warmup,serve")
    assert result.returncode == 0, result.stdout[-3000:]
    (stage,) = [s for s in result.report()["stages"] if s["stage"] == "cuda"]
    assert stage["status"] == "warn"
    (message,) = stage["messages"]
    assert message["id"] == cuda.W001.id and message["hint"] == cuda.W001.hint
    assert message["level"] == "warning" and message["msg"].startswith("running on the CPU")

    text = report_command(volume)
    assert f"cuda: ({cuda.W001.id}) {message['msg']}" in text
    assert f"HINT: {cuda.W001.hint}" in text

    page = tmp_path / "boot.html"
    report_command(volume, "--html", str(page))
    dom = chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr
    assert f"warning at stage cuda:</b> ({cuda.W001.id}) {message['msg']}" in dom.stdout
    assert f"HINT: {cuda.W001.hint}" in dom.stdout
    shot = tmp_path / "report.png"
    taken = chromium(f"--screenshot={shot}", "--window-size=1000,900", page.as_uri(),
                     tmp_path=tmp_path)
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    colours = {colour for _, colour in Image.open(shot).convert("RGB").getcolors(1 << 24)}
    assert WARN_BOX in colours, "the warning's box is drawn on the first screen"
