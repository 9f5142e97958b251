"""The worker-supervisor messages: what one side writes, the other reads back the same."""

from __future__ import annotations

from bootstrap.kernel import events
from bootstrap.kernel.protocol import Failure, StageResult, StageStart, Status
from bootstrap.stages import cuda


def test_a_stage_result_reads_back_from_its_event_with_messages_and_failure() -> None:
    warned = StageResult("cuda", Status.WARN, 1234, facts={"device": "cpu"},
                         messages=[cuda.W001.at("cpu", reason="no GPU is visible")],
                         started_at=1_800_000_000.25)
    failed = StageResult("install", Status.FAIL, 3050, started_at=1_800_000_001.5,
                         failure=Failure("install", 20, "stage install ran past its deadline",
                                         hint="raise it", cause="deadline",
                                         traceback="File x, line 1"))
    with events.capture() as captured:
        warned.emit()
        failed.emit()
    assert [e["level"] for e in captured] == ["warn", "error"]
    back = [StageResult.from_event(e) for e in captured]
    assert back == [warned, failed]
    assert back[0] is not None and back[0].messages[0].hint == cuda.W001.hint
    # the event is the report's entry: the same dict, plus the event's own fields
    for event, result in zip(captured, (warned, failed), strict=True):
        assert {k: event[k] for k in result.to_dict()} == result.to_dict()


def test_a_stage_start_reads_back() -> None:
    start = StageStart("install", "supervisor", 3.0, 13)
    with events.capture() as captured:
        start.emit()
    assert StageStart.from_event(captured[0]) == start
    assert StageResult.from_event(captured[0]) is None


def test_a_foreign_stage_event_is_not_a_result() -> None:
    """A user's library may log an event named "stage"; the supervisor must read past it."""
    assert StageResult.from_event({"event": "stage", "status": "done"}) is None
    assert StageResult.from_event({"event": "stage", "status": "ok"}) is None
    assert StageStart.from_event({"event": "stage", "status": "start"}) is None
