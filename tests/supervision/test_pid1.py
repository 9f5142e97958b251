"""The supervisor as PID 1 (a container without tini): it reaps orphans and still turns
SIGTERM into a clean, reported stop. A real PID namespace, made with unshare."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.boots import boot, finish_boot, start_boot, wait_for_line

AS_PID1 = ("unshare", "--pid", "--fork", "--mount-proc")


def test_as_pid1_orphans_are_reaped(volume: Path, tmp_path: Path) -> None:
    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "stage_orphans.py").write_text(
        "import os, time\n"
        "def orphan(ctx):\n"
        "    if os.fork() == 0:            # child: fork a grandchild, then leave it\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(0.3)\n"
        "            os._exit(7)\n"
        "        os._exit(0)\n"
        "    os.wait()\n"
        "    time.sleep(1.5)               # the grandchild ends while we still run\n")
    result = boot(volume, ("stage_orphans:orphan",), prefix=AS_PID1, log_level="debug",
                  env={"PYTHONPATH": str(stages)})
    assert result.returncode == 0, result.stdout
    boot_event = result.named("boot")[0]
    assert boot_event["pid"] == 1
    reaped = result.named("orphan.reaped")
    assert [e["exit_code"] for e in reaped] == [7]


def test_as_pid1_sigterm_still_stops_cleanly(volume: Path) -> None:
    proc = start_boot(volume, ("stage_hangs:hang",), prefix=AS_PID1)
    lines = wait_for_line(proc, lambda e: e.get("stage") == "hang" and e["status"] == "start")
    # unshare does not forward signals: send SIGTERM to its child, the supervisor, which is
    # PID 1 in its namespace (and has a handler, so the kernel lets the signal through).
    supervisor = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
    os.kill(supervisor, signal.SIGTERM)
    result = finish_boot(proc, lines, volume)
    assert result.last["status"] == "stopped"
    assert result.last["exit_code"] == 128 + signal.SIGTERM
    assert result.named("worker.stopped")
