"""The RunPod SDK's JSON log lines as event fields (bootstrap/supervision/sdk_lines.py)."""

from __future__ import annotations

from bootstrap.supervision.sdk_lines import lifted


def test_an_sdk_error_line_keeps_its_level_job_and_message() -> None:
    line = '{"requestId": "job-7", "message": "Captured Handler Exception", "level": "ERROR"}'
    assert lifted(line) == [{"level": "error", "msg": "Captured Handler Exception",
                             "job_id": "job-7"}]


def test_two_processes_objects_on_one_line_are_two_events() -> None:
    line = ('{"requestId": null, "message": "Heartbeat Sent", "level": "DEBUG"}'
            '{"requestId": null, "message": "Jobs in queue: 1", "level": "INFO"}')
    assert lifted(line) == [{"level": "debug", "msg": "Heartbeat Sent"},
                            {"level": "info", "msg": "Jobs in queue: 1"}]


def test_other_lines_are_left_as_lines() -> None:
    assert lifted("ERROR  | plain text") == []
    assert lifted('{"event": "x"}') == []  # JSON, but not the SDK's
    assert lifted('{"message": "cut short') == []
    assert lifted('{"message": "a"} trailing words') == []
    assert lifted('{"message": {"nested": 1}, "level": "WARN"}') == [
        {"level": "warn", "msg": '{"nested": 1}'}]
