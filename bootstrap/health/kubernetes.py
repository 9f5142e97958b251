"""What Kubernetes reads of a boot: a ready file (for an ``exec`` readiness probe such as
``test -f /tmp/bootstrap-ready``) and the termination message.

Kubernetes shows the file at ``terminationMessagePath`` (``/dev/termination-log`` by
default) as the container's last state, at most 4096 bytes. The default path is written
only where it already exists (Kubernetes creates it), so a boot elsewhere leaves no file
in ``/dev``; a path set in ``termination_log`` is written wherever its folder exists.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from bootstrap.kernel import events

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
MAX_MESSAGE = 4096  # Kubernetes' limit on a termination message
FIELDS = ("stage", "code", "msg", "hint", "cause", "exit_code")


def write_ready(path: str) -> None:
    if path:
        _write(Path(path), b"ready\n", "ready file")


def remove_ready(path: str) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)


def message(failure: dict[str, Any]) -> bytes:
    """The failure as one JSON object that fits Kubernetes' limit: the hint and message are
    cut before any field is lost."""
    fields = {name: failure[name] for name in FIELDS if failure.get(name) is not None}
    text = json.dumps(fields).encode()
    while len(text) > MAX_MESSAGE and fields.get("msg"):
        fields["msg"] = str(fields["msg"])[: max(0, len(str(fields["msg"])) - 512)]
        text = json.dumps(fields).encode()
    return text[:MAX_MESSAGE]


def write_termination(path: str, failure: dict[str, Any]) -> None:
    if not path:
        return
    target = Path(path)
    if path == DEFAULT_TERMINATION_LOG and not target.exists():
        return  # not in a Kubernetes pod
    if not target.parent.is_dir():
        return
    _write(target, message(failure), "termination message")


def _write(path: Path, data: bytes, what: str) -> None:
    try:
        # In place, not by rename: /dev/termination-log is a file Kubernetes mounted.
        with path.open("wb") as f:
            f.write(data)
    except OSError as exc:
        events.emit("warn", "health.write_failed", path=str(path), error=str(exc),
                    msg=f"the {what} could not be written")
