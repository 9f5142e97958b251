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


def fields_of(line: str) -> dict[str, Any] | None:
    """``{"level", "msg", "job_id"?}`` for a line that is one JSON object with a
    ``message``; None for any other line."""
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or "message" not in data:
        return None
    message = data["message"]
    fields: dict[str, Any] = {
        "level": _LEVELS.get(str(data.get("level", "")).upper(), "info"),
        "msg": message if isinstance(message, str) else json.dumps(message),
    }
    if data.get("requestId"):
        fields["job_id"] = str(data["requestId"])
    return fields
