"""Boot reports: one JSON file per boot, kept on the volume so a dead worker's story
outlives it. Bounded in number; written to a local fallback directory (and said so in the
events) when the volume cannot be written.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.kernel import events, redaction
from bootstrap.kernel.config import Config

REPORT_VERSION = 1


@dataclass
class BootReport:
    run_id: str
    worker_id: str
    mode: str
    # The app the worker serves (bootstrap/kernel/app.py): its name and the target the
    # `app` setting gave ("" and "" for a boot with no app).
    app: dict[str, str] = field(default_factory=lambda: {"name": "", "target": ""})
    started_at: float = field(default_factory=time.time)
    outcome: str = "booting"  # booting | ready | ok | failed | stopped
    exit_code: int | None = None
    ended_at: float | None = None
    ready_ms: int | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    failure: dict[str, Any] | None = None
    worker: dict[str, Any] | None = None  # how the worker process ended (death.Death)
    host: dict[str, Any] = field(default_factory=lambda: {
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
    })
    version: int = REPORT_VERSION

    @property
    def file_name(self) -> str:
        # Milliseconds too: names are the reports' order, and two boots on one volume
        # can start within the same second.
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.started_at))
        millis = int(self.started_at * 1000) % 1000
        return f"{stamp}.{millis:03d}-{self.worker_id}-{self.run_id}.json"

    def stage_durations(self) -> dict[str, int]:
        return {s["stage"]: s["duration_ms"] for s in self.stages if "duration_ms" in s}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = redaction.redact(asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BootReport:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _write_into(directory: Path, report: BootReport, keep: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / report.file_name
    staging = directory / f".{report.file_name}.tmp-{os.getpid()}"
    staging.write_text(json.dumps(report.to_dict(), indent=2))
    os.replace(staging, path)  # a reader never sees half a report
    for old in sorted(directory.glob("*.json"))[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save(report: BootReport, config: Config, volume_wait_s: float | None = None
         ) -> Path | None:
    """Write the report to the volume, else to the fallback directory. None if neither works.

    ``volume_wait_s``: how long the volume may take, when it may have stopped answering (a
    stage hung on it): past that, the report goes to the fallback directory instead.
    """
    if volume_wait_s is None:
        return _save(report, config, use_volume=True)
    done: list[Path | None] = []
    writer = threading.Thread(target=lambda: done.append(_save(report, config, True)),
                              name="report-save", daemon=True)
    writer.start()
    writer.join(volume_wait_s)
    if done:
        return done[0]
    return _save(report, config, use_volume=False,
                 why=f"the volume did not answer in {volume_wait_s:g} s")


def _save(report: BootReport, config: Config, use_volume: bool, why: str = ""
          ) -> Path | None:
    # Never create the volume itself: a missing volume made here would land on the
    # container disk and hide the real failure from the volume stage.
    targets = ([config.reports_dir, config.fallback_reports]
               if use_volume and config.volume.is_dir() else [config.fallback_reports])
    errors = [why] if why else []
    for directory in targets:
        try:
            path = _write_into(directory, report, max(config.reports_keep, 1))
        except OSError as exc:
            errors.append(f"{directory}: {exc.strerror or exc}")
            continue
        if directory != config.reports_dir:
            events.emit("warn", "report.fallback", path=str(path),
                        msg="boot report written to the local fallback, not the volume",
                        reason="; ".join(errors) or f"no volume at {config.volume}")
        return path
    events.emit("error", "report.lost", msg="the boot report could not be written anywhere",
                reason="; ".join(errors))
    return None


def report_dirs(config: Config) -> list[Path]:
    return [config.reports_dir, config.fallback_reports]


def list_reports(config: Config) -> list[Path]:
    """Every report file, oldest first (file names start with the boot's UTC time)."""
    found = [p for d in report_dirs(config) if d.is_dir() for p in d.glob("*.json")]
    return sorted(found, key=lambda p: p.name)


def load(path: Path) -> BootReport:
    return BootReport.from_dict(json.loads(path.read_text()))


# A boot of another worker still "booting" younger than this may be running beside this
# one (workers of an endpoint start together); the longest cold build is well inside it.
CONCURRENT_BOOT_S = 3600


def announce_previous(config: Config, worker_id: str) -> None:
    """Say how the last boot on this volume went, if it did not go well.

    A worker that died is gone with its console; the next one to boot on the same volume
    is the first place its story can be told. One directory listing and one small file.
    """
    try:
        paths = sorted(config.reports_dir.glob("*.json"))
        if not paths:
            return
        previous = load(paths[-1])
    except (OSError, ValueError, TypeError):
        return  # no readable history is not this boot's problem
    ago_s = int(time.time() - (previous.ended_at or previous.started_at))
    where = {"previous_run_id": previous.run_id, "previous_worker_id": previous.worker_id,
             "ago_s": ago_s, "report": str(paths[-1])}
    if previous.outcome == "failed" and previous.failure:
        failure = previous.failure
        code = f" ({failure['code']})" if failure.get("code") else ""
        events.emit("warn", "previous_boot",
                    msg=f"previous boot on worker {previous.worker_id} failed at stage "
                        f"{failure['stage']}{code}: {failure['msg']}",
                    hint=failure.get("hint", ""), exit_code=previous.exit_code, **where)
    elif previous.outcome == "booting":
        last = previous.stages[-1]["stage"] if previous.stages else "none"
        if previous.worker_id != worker_id and ago_s < CONCURRENT_BOOT_S:
            events.emit("info", "previous_boot",
                        msg=f"worker {previous.worker_id} started a boot {ago_s} s ago that "
                            f"has not finished (last finished stage: {last}): it is booting "
                            "beside this one, or was killed", **where)
            return
        events.emit("warn", "previous_boot",
                    msg=f"previous boot on worker {previous.worker_id} never finished; "
                        f"its last finished stage was {last}",
                    hint="its supervisor was killed too (SIGKILL to the container, a host "
                         "failure); the platform's logs may say more", **where)
