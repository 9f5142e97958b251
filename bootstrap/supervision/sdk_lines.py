"""The RunPod SDK's JSON log lines, read as fields instead of relayed as a string.

On the platform (``RUNPOD_ENDPOINT_ID`` set) the SDK's logger prints each line as
``{"requestId": ..., "message": ..., "level": ...}`` (runpod 1.12, ``rp_logger.log``).
Relayed as text, its ERROR lines read as info and nested JSON is unreadable; lifted, the
event keeps the SDK's level, the job's id and the message.
"""

from __future__ import annotations

import json
from typing import Any

_LEVELS = {"DEBUG": "debug", "TRACE": "debug", "INFO": "info", "TIP": "info",
           "WARN": "warn", "WARNING": "warn", "ERROR": "error", "CRITICAL": "critical"}
_DECODER = json.JSONDecoder()


def lifted(line: str) -> list[dict[str, Any]]:
    """``{"level", "msg", "job_id"?}`` for each SDK log object in ``line``; [] for any
    other line. A line may hold several: the SDK's heartbeat process prints to the same
    pipe, and ``print`` writes an object and its newline in two writes, so two processes'
    objects can meet on one line."""
    found: list[dict[str, Any]] = []
    at = 0
    while at < len(line):
        if line[at] != "{":
            return []
        try:
            data, at = _DECODER.raw_decode(line, at)
        except ValueError:
            return []
        if not isinstance(data, dict) or "message" not in data:
            return []
        found.append(_fields(data))
        while at < len(line) and line[at] == " ":
            at += 1
    return found


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    message = data["message"]
    fields: dict[str, Any] = {
        "level": _LEVELS.get(str(data.get("level", "")).upper(), "info"),
        "msg": message if isinstance(message, str) else json.dumps(message),
    }
    if data.get("requestId"):
        fields["job_id"] = str(data["requestId"])
    return fields
