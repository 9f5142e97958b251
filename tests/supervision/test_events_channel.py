"""The protocol has a channel of its own: the worker's events come on an inherited pipe,
its stdout and stderr are the app's, relayed as output and never read as messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.supervision.monitor import MAX_LINE
from tests.boots import MODEL_STAGES, boot

NO_MODEL = ",".join(MODEL_STAGES)


@pytest.mark.parametrize(("handler", "words"), [
    ("handler_prints_events", "after printing events"),
    ("handler_floods_then_raises", "after a flood"),
])
def test_what_a_handler_prints_is_output_and_its_exception_is_named(
        volume: Path, handler: str, words: str) -> None:
    result = boot(volume, (), skip=NO_MODEL, handler=f"{handler}:make_handler")
    last = result.last
    assert last["event"] == "summary", result.stdout[-2000:]
    assert (last["status"], last["stage"], last["code"]) == ("fail", "serve", "serve.E001")
    assert last["exit_code"] == ExitCode.SERVE == result.returncode
    assert "RuntimeError" in last["cause"] and words in last["cause"]
    report = result.report()
    assert "phantom" not in [s["stage"] for s in report["stages"]], "no phantom stage"
    assert report["failure"]["stage"] == "serve"
    assert report["ready_ms"] is None and not result.named("boot.ready"), "no early ready"
    assert report["outcome"] == "failed"


def test_json_a_handler_prints_is_relayed_as_its_line(volume: Path) -> None:
    result = boot(volume, (), skip=NO_MODEL, handler="handler_prints_events:make_handler")
    lines = [e["line"] for e in result.named("output") if e["stream"] == "stdout"]
    assert any('"event": "stage"' in line and '"phantom"' in line for line in lines), lines
    assert not [e for e in result.named("stage") if e["stage"] == "phantom"]


def test_a_line_without_end_is_relayed_cut_not_held(volume: Path) -> None:
    result = boot(volume, (), skip=NO_MODEL, handler="handler_floods_then_raises:make_handler")
    lines = [e["line"] for e in result.named("output") if e["stream"] == "stdout"]
    # the first piece, cut; the rest of the 8 MB only counted as it is read
    more = 8 * 1024 * 1024 - MAX_LINE
    assert lines == ["y" * MAX_LINE + f" [... {more} more characters]"]
