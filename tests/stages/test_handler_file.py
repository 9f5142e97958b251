"""A RunPod handler file, unchanged (``handler = "path/to/handler.py"``): two public ones,
RunPod's worker-basic and worker-template (tests/fixtures/handler_files/ORIGIN.md), boot
through every stage with their import as a stage of its own, and answer a job through the
real RunPod SDK; copies with a raise or a hang added end named like any other handler."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.boots import FIXTURES, boot, kill_boot, start_boot
from tests.health.checks import Output, post
from tests.s3server import free_port

FILES = FIXTURES / "handler_files"
BASIC = FILES / "worker_basic" / "rp_handler.py"
TEMPLATE = FILES / "worker_template" / "handler.py"
SUPERVISOR = ["preflight", "volume", "venv", "install", "hydrate"]
# No app: the framework's worker stages, the import of the file, then serve.
WORKER = ["cuda", "storage", "import", "serve"]


def file_settings(path: Path, **settings: str) -> dict[str, str]:
    return {"app": "", "handler": str(path), "skip": "", **settings}


@pytest.mark.parametrize(("path", "job", "answer"), [
    (BASIC, {"prompt": "John Doe", "seconds": 0}, "John Doe"),
    (TEMPLATE, {"name": "bootstrap"}, "Hello, bootstrap!"),
])
def test_a_public_handler_file_boots_through_every_stage_and_answers_a_job(
        volume: Path, path: Path, job: dict[str, object], answer: str) -> None:
    result = boot(volume, **file_settings(path, test_input=json.dumps(job)))
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.last
    assert summary["event"] == "summary" and summary["status"] == "ok", summary
    assert list(summary["stages"]) == [*SUPERVISOR, *WORKER]
    ran = {s["stage"]: s["status"] for s in result.report()["stages"]}
    assert ran["import"] == "ok" and ran["serve"] == "ok"
    assert ran["cuda"] != "fail"
    # The SDK's test job ran the file's own handler, in the job's event context.
    outputs = " ".join(e["line"] for e in result.named("output"))
    assert repr(answer) in outputs or json.dumps(answer) in outputs, outputs


def test_the_sdks_local_server_serves_the_file_passed_to_start(volume: Path) -> None:
    """The config the file passed to start is what the real start serves: a job over
    the SDK's own HTTP API (``--rp_serve_api``), on 127.0.0.1."""
    port = free_port()
    proc = start_boot(volume, **file_settings(
        TEMPLATE, serve_args=f"--rp_serve_api --rp_api_port {port} --rp_api_host 127.0.0.1"))
    try:
        out = Output(proc)
        out.wait_for("boot.ready", timeout=120)
        give_up = time.monotonic() + 60
        while True:
            try:
                reply = post(port, "/runsync", {"input": {"name": "HTTP"}})
                break
            except OSError:
                assert time.monotonic() < give_up, "the SDK's server never answered"
                time.sleep(0.2)
        assert reply.status == 200, reply.body
        assert reply.json()["output"] == "Hello, HTTP!"
    finally:
        kill_boot(proc)


# The public handler files, each with the line its added code goes before.
PUBLIC_FILES = [(BASIC, "def handler(event):"), (TEMPLATE, "def handler(job):")]


def _changed(tmp_path: Path, original: Path, before: str, added: str) -> Path:
    """A copy of ``original`` with ``added`` (a line) inserted before the line ``before``."""
    copy = tmp_path / original.parent.name / original.name
    copy.parent.mkdir(parents=True)
    text = original.read_text()
    assert before in text
    copy.write_text(text.replace(before, f"{added}\n{before}", 1))
    return copy


@pytest.mark.parametrize(("original", "before"), PUBLIC_FILES)
def test_a_handler_file_that_raises_at_import_is_named(
        volume: Path, tmp_path: Path, original: Path, before: str) -> None:
    path = _changed(tmp_path, original, before,
                    'raise RuntimeError("model weights not found at /models/x")')
    result = boot(volume, **file_settings(path, test_input="{}"))
    summary = result.last
    assert result.returncode == 18, result.stdout
    assert summary["stage"] == "import" and summary["code"] == "import.E002"
    assert "model weights not found" in summary["msg"]
    assert str(path) in summary["msg"]
    line = path.read_text().splitlines().index(
        'raise RuntimeError("model weights not found at /models/x")') + 1
    assert f"at line {line} of {path.name}" in summary["cause"]
    assert "cause names the line" in summary["hint"]


@pytest.mark.parametrize(("original", "before"), PUBLIC_FILES)
def test_a_handler_file_that_hangs_at_import_is_stopped_at_its_deadline(
        volume: Path, tmp_path: Path, original: Path, before: str) -> None:
    path = _changed(tmp_path, original, before,
                    "import time\nwhile True:\n    time.sleep(1)  # a download that never ends")
    # Long enough for the RunPod SDK's own import (seconds on a loaded machine), which the
    # stage makes before it runs the file: the deadline must find the file's loop.
    result = boot(volume, **file_settings(path, test_input="{}", deadline_import="15"))
    summary = result.last
    assert result.returncode == 20, result.stdout
    assert summary["stage"] == "import" and summary["cause"] == "deadline"
    assert "BOOTSTRAP_DEADLINE_IMPORT" in summary["hint"]
    # The stack names the line of the file where it waited.
    line = path.read_text().splitlines().index("    time.sleep(1)  # a download that never ends")
    assert f'File "{path}", line {line + 1} in <module>' in summary["traceback"]


def test_a_missing_handler_file_is_named(volume: Path, tmp_path: Path) -> None:
    result = boot(volume, **file_settings(tmp_path / "nowhere" / "handler.py", test_input="{}"))
    assert result.last["code"] == "import.E001", result.stdout
    assert result.returncode == 18
