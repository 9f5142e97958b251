"""A whole boot in local mode with the echo handler: every stage, ready, one job, done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import MODEL_STAGES, REPO, boot, boot_env

# The echo handler needs no model: skip the model stages, keep serve.
NO_SERVE_SKIP = ",".join(MODEL_STAGES)

SUPERVISOR = ["preflight", "volume", "venv", "install", "hydrate"]
SUPERVISOR_RAN = ["preflight", "volume", "venv"]  # install, hydrate: skipped without requirements


def test_a_local_boot_reaches_ready_and_answers_a_job(volume: Path) -> None:
    result = boot(volume, ("stage_passes:passes",), skip=NO_SERVE_SKIP,
                  test_input=json.dumps({"text": "hello"}))
    assert result.returncode == 0, result.stdout
    assert result.named("ready"), "the worker announced it was ready"
    ready = result.named("boot.ready")[0]
    # storage runs in every worker: unconfigured, it starts and reports itself skipped
    assert set(ready["stages"]) == {*SUPERVISOR, "storage", "passes"}
    outputs = [e["line"] for e in result.named("output")]
    assert any("'echo': {'text': 'hello'}" in line for line in outputs), outputs
    last = result.last
    assert last["event"] == "summary" and last["status"] == "ok" and last["exit_code"] == 0
    assert list(last["stages"]) == [*SUPERVISOR, "storage", "passes", "serve"]
    assert all(isinstance(ms, int) for ms in last["stages"].values())
    report = result.report()
    assert report["outcome"] == "ok" and report["ready_ms"] > 0
    ran = [s for s in report["stages"] if s["status"] != "skip"]
    assert [s["stage"] for s in ran] == [*SUPERVISOR_RAN, "passes", "serve"]
    assert ran[len(SUPERVISOR_RAN)]["facts"] == {"answer": 42}


def test_every_line_of_a_boot_is_a_json_event_with_the_boot_identity(volume: Path) -> None:
    result = boot(volume, ("stage_passes:passes",))
    run_ids = {e["run_id"] for e in result.events}
    assert len(run_ids) == 1
    for event in result.events:
        assert {"ts", "level", "event", "worker_id", "process"} <= set(event)
    starts = [e for e in result.events if e["event"] == "stage" and e["status"] == "start"]
    assert [e["stage"] for e in starts] == [*SUPERVISOR, "storage", "passes"]
    assert [e["process"] for e in starts] == ["supervisor"] * len(SUPERVISOR) + ["worker"] * 2
    skipped = [e for e in result.events if e["event"] == "stage" and e["status"] == "skip"]
    # local mode without requirements: no environment, so nothing to install
    assert [e["stage"] for e in skipped] == ["install", "hydrate", *MODEL_STAGES, "storage",
                                             "serve"]


def test_worker_id_comes_from_runpod(volume: Path) -> None:
    result = boot(volume, (), env={"RUNPOD_POD_ID": "pod-abc123"})
    assert {e["worker_id"] for e in result.events} == {"pod-abc123"}
    assert result.reports()[0].name.split("-")[1] == "pod"


def test_heartbeats_name_a_long_stage(volume: Path, tmp_path: Path) -> None:
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "stage_slow.py").write_text(
        "import time\ndef slow(ctx):\n    time.sleep(2.5)\n")
    result = boot(volume, ("stage_slow:slow",), heartbeat_s="1",
                  env={"PYTHONPATH": str(slow)})
    beats = result.named("heartbeat")
    assert len(beats) >= 2
    assert {b["stage"] for b in beats} == {"slow"}
    assert beats[0]["msg"].startswith("still running, ")


def test_a_handler_that_cannot_be_loaded_is_a_serve_failure(volume: Path) -> None:
    result = boot(volume, (), skip=NO_SERVE_SKIP, handler="no_such_module:make_handler")
    assert result.returncode == 18
    assert result.last["code"] == "serve.E001"
    assert "no_such_module" in result.last["cause"]


def test_a_worker_whose_interpreter_cannot_start_is_named(volume: Path) -> None:
    """The supervisor starts fine, but the worker's Python dies before bootstrap loads
    (here: a PYTHONHOME pointing nowhere, set only for the child)."""
    env = boot_env(volume)
    launcher = ("import os, sys; os.environ['PYTHONHOME'] = '/nowhere';"
                "sys.argv = ['bootstrap', 'run']; from bootstrap.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60)
    last = json.loads(proc.stdout.splitlines()[-1])
    assert proc.returncode == 21, proc.stdout
    assert (last["stage"], last["exit_code"], last["cause"]) == ("worker", 21, "exit 1")
    assert "before its first stage" in last["msg"]
    outputs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any("PYTHONHOME" in e.get("line", "") or "encodings" in e.get("line", "")
               for e in outputs if e["event"] == "output"), "the worker's last words are shown"


def test_the_sdk_failing_a_test_job_is_a_named_serve_failure(volume: Path) -> None:
    """A job the SDK cannot run: its own ERROR line keeps its level, then serve.E004."""
    result = boot(volume, (), skip=NO_SERVE_SKIP, handler="bootstrap.echo:make_handler",
                  test_input="null")
    assert result.returncode == 18
    assert result.last["code"] == "serve.E004"
    errors = [e for e in result.named("output") if e["level"] == "error"]
    assert any("Job has no input parameter" in e["line"] for e in errors)


def test_the_supervisor_never_imports_the_heavy_stack(volume: Path) -> None:
    """Every module the supervisor process imports, from Python's import-time report on its
    own stderr. The worker reports too, but its stderr is relayed as events on stdout: the
    worker does import runpod, which shows the measurement can see it."""
    result = boot(volume, ("stage_passes:passes",), skip=NO_SERVE_SKIP,
                  env={"PYTHONPROFILEIMPORTTIME": "1"}, test_input=json.dumps({"text": "hi"}))
    assert result.returncode == 0, result.stdout
    modules = {line.split("|")[-1].strip()
               for line in result.stderr.splitlines() if line.startswith("import time:")}
    imported = {name.split(".")[0] for name in modules}
    assert "bootstrap" in imported and "click" in imported  # the measurement works
    assert not imported & {"torch", "torchaudio", "f5_tts", "runpod", "numpy"}
    # structlog is the event stream's (docs/performance.md has its cost); rich, which its
    # dev renderers import when it is installed (it is, here), is kept out: only the
    # refused attempt at the package shows, none of its modules
    assert "structlog.dev" in modules and not any(m.startswith("rich.") for m in modules)
    relayed = [e["line"] for e in result.named("output") if e["stream"] == "stderr"]
    assert any(line.startswith("import time:") and "runpod" in line for line in relayed)


def test_an_enormous_output_line_is_cut(volume: Path) -> None:
    result = boot(volume, ("stage_prints_a_flood:flood",))
    assert result.returncode == 0
    (line,) = [e["line"] for e in result.named("output")]
    assert line == "x" * 4000 + " [... 96000 more characters]"
