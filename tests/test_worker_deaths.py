"""Every way a worker can die ends in one JSON failure line naming the stage and the
cause, a documented exit code, and a boot report that says the same."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, REPO, Boot, boot, finish_boot, start_boot, wait_for_line

from bootstrap.kernel.exit_codes import ExitCode


def assert_named_failure(result: Boot, stage: str, exit_code: int) -> dict[str, Any]:
    last = result.last
    assert last["event"] == "summary", result.stdout
    assert last["status"] == "fail"
    assert last["stage"] == stage
    assert last["exit_code"] == exit_code == result.returncode
    assert last["msg"] and last["hint"] and last["cause"]
    report = result.report()
    assert report["outcome"] == "failed"
    assert report["exit_code"] == exit_code
    assert report["failure"]["stage"] == stage
    assert report["failure"]["msg"] == last["msg"]
    assert last["report"] == str(result.reports()[0])
    return last


@pytest.mark.parametrize(
    ("stage", "target", "exit_code", "cause", "words"),
    [
        ("raises", "stage_raises:raises", ExitCode.CUSTOM_STAGE, "exception",
         "RuntimeError: the checkpoint loader blew up"),
        ("sys_exit", "stage_sys_exit:sys_exit", ExitCode.CUSTOM_STAGE, "sys.exit",
         "sys.exit(1)"),
        ("os_exit", "stage_os_exit:os_exit", ExitCode.CUSTOM_STAGE, "exit 1",
         "the worker exited with code 1 during stage os_exit"),
        ("segfault", "stage_segfaults:segfault", 128 + signal.SIGSEGV, "SIGSEGV",
         "segmentation fault"),
        ("sigkill", "stage_sigkills_itself:sigkill", 128 + signal.SIGKILL, "SIGKILL",
         "killed by SIGKILL"),
    ],
)
def test_a_dying_worker_is_named(volume: Path, stage: str, target: str, exit_code: int,
                                 cause: str, words: str) -> None:
    result = boot(volume, ("stage_passes:passes", target))
    last = assert_named_failure(result, stage, exit_code)
    assert last["cause"] == cause
    assert words in last["msg"]
    # the stage before it finished and is in the report with its duration
    ran = [s["stage"] for s in result.report()["stages"] if s["status"] != "skip"]
    assert ran[:4] == ["preflight", "volume", "venv", "passes"]


def test_a_segfault_leaves_the_python_stack(volume: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = boot(volume, ("stage_segfaults:segfault",), env={"TMPDIR": str(tmp)})
    last = assert_named_failure(result, "segfault", 128 + signal.SIGSEGV)
    assert "Fatal Python error: Segmentation fault" in last["traceback"]
    assert 'stage_segfaults.py", line 7 in segfault' in last["traceback"]
    assert result.report()["worker"]["signal"] == "SIGSEGV"
    # the run directory that held faulthandler's file was read, then removed
    assert list(tmp.iterdir()) == []


def test_os_exit_keeps_the_last_words_in_the_report(volume: Path) -> None:
    result = boot(volume, ("stage_os_exit:os_exit",))
    assert_named_failure(result, "os_exit", ExitCode.CUSTOM_STAGE)
    assert "about to leave without a word" in result.report()["failure"]["output_tail"]


def test_a_hang_past_the_deadline_shows_where_it_hung(volume: Path) -> None:
    result = boot(volume, ("stage_hangs:hang",), deadline_hang="2", stop_grace_s="5")
    last = assert_named_failure(result, "hang", ExitCode.DEADLINE)
    assert last["cause"] == "deadline"
    assert "BOOTSTRAP_DEADLINE_HANG" in last["hint"]
    # the all-threads dump names the function that never returned
    assert "in wait_for_a_lock_that_never_frees" in last["traceback"]
    assert "in hang" in last["traceback"]
    assert result.named("deadline"), "the deadline was announced before the worker was stopped"


def test_a_hang_that_ignores_sigterm_is_killed(volume: Path, tmp_path: Path) -> None:
    stubborn = tmp_path / "stubborn"
    stubborn.mkdir()
    (stubborn / "stage_stubborn.py").write_text(
        "import signal, time\n"
        "def stubborn(ctx):\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    while True:\n"
        "        time.sleep(1)\n")
    result = boot(volume, ("stage_stubborn:stubborn",), deadline_stubborn="1",
                  stop_grace_s="1", env={"PYTHONPATH": f"{stubborn}"})
    last = assert_named_failure(result, "stubborn", ExitCode.DEADLINE)
    assert result.named("worker.kill")
    assert result.report()["worker"]["signal"] == "SIGKILL"
    assert "in stubborn" in last["traceback"]


def test_sigterm_to_the_supervisor_stops_the_worker_cleanly(volume: Path) -> None:
    proc = start_boot(volume, ("stage_hangs:hang",))
    lines = wait_for_line(proc, lambda e: e["event"] == "stage" and e.get("stage") == "hang"
                          and e["status"] == "start")
    proc.send_signal(signal.SIGTERM)
    result = finish_boot(proc, lines, volume)
    assert result.returncode == 128 + signal.SIGTERM
    last = result.last
    assert last["event"] == "summary" and last["status"] == "stopped"
    assert last["cause"] == "SIGTERM"
    # Where it stopped, and what usually sends a stop before the worker is ready.
    assert last["stage"] == "hang" and last["msg"] == "stopped on SIGTERM in hang"
    assert "the endpoint's initialization timeout" in last["hint"]
    # the worker itself received it and said so before exiting
    stopped = result.named("worker.stopped")
    assert stopped and stopped[0]["process"] == "worker"
    assert result.report()["outcome"] == "stopped"


def test_a_secret_appears_nowhere(volume: Path) -> None:
    secret = "hf_SuperSecretValue0123456789"
    result = boot(volume, ("stage_prints_secret:leak_secret",), env={"HF_TOKEN": secret})
    assert_named_failure(result, "leak_secret", ExitCode.CUSTOM_STAGE)
    assert "[redacted]" in result.stdout
    assert secret not in result.stdout
    assert secret not in result.stderr
    for path in volume.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


def test_a_core_dump_is_reported(volume: Path, tmp_path: Path) -> None:
    """With core dumps allowed (core_pattern here writes `core` into the worker's cwd)."""
    if Path("/proc/sys/kernel/core_pattern").read_text().startswith("|"):
        pytest.fail("this test expects a plain core_pattern; it is piped to a handler here")
    allow_cores = ("sh", "-c", 'ulimit -c unlimited && exec "$@"', "sh")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    result = boot(volume, ("stage_segfaults:segfault",), prefix=allow_cores, cwd=workdir,
                  env={"PYTHONPATH": os.pathsep.join([str(FIXTURES), str(REPO)])})
    last = assert_named_failure(result, "segfault", 128 + signal.SIGSEGV)
    assert last["msg"].endswith("core dumped during stage segfault")
    assert result.report()["worker"]["core_dumped"] is True
    assert list(workdir.glob("core*")), "the kernel wrote the core file"
