"""A failed boot answers one queued job with its failure, so the request does not sit
IN_QUEUE until its TTL while workers crash-loop, and the caller reads why.

On RunPod serverless (``RUNPOD_WEBHOOK_GET_JOB`` set) the supervisor takes ONE job the way
the SDK does (runpod 1.12, ``rp_job.get_job`` / ``rp_http.send_result``) and posts it back
with ``{"error": ...}``, which the platform records as a FAILED job. Plain urllib: the
supervisor never imports the SDK, so this works when the SDK is what is missing.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from bootstrap.kernel import events, redaction
from bootstrap.kernel.config import Config

# How long the job-take long poll may hold the boot's exit when no job is queued.
TAKE_WAIT_S = 10.0
POST_WAIT_S = 10.0
TAIL_LINES = 20


def on_platform(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("RUNPOD_WEBHOOK_GET_JOB"))


def after_failed_boot(config: Config, failure: Mapping[str, Any], report_path: object,
                      run_id: str, worker_id: str) -> None:
    """The supervisor's call, once per failed boot, after its report is saved."""
    if config.failed_boot_job and on_platform(os.environ):
        answer_failed_boot(failure, str(report_path) if report_path else None, run_id,
                           worker_id)


def take_url(environ: Mapping[str, str]) -> str:
    """The SDK's job-take URL: ``$ID`` is the worker's id; one job, none in progress."""
    worker_id = environ.get("RUNPOD_POD_ID", "")
    return environ["RUNPOD_WEBHOOK_GET_JOB"].replace("$ID", worker_id) + "&job_in_progress=0"


def done_url(environ: Mapping[str, str], job_id: str) -> str:
    template = environ.get("RUNPOD_WEBHOOK_POST_OUTPUT", "")
    worker_id = environ.get("RUNPOD_POD_ID", "")
    return (template.replace("$RUNPOD_POD_ID", worker_id).replace("$ID", job_id)
            + "&isStream=false")


def error_text(failure: Mapping[str, Any], report_path: str | None, run_id: str,
               worker_id: str) -> str:
    """The job's error: the boot's failure as one JSON object, secrets redacted."""
    tail = list(failure.get("output_tail") or [])[-TAIL_LINES:]
    body = {"boot_failed": True, "stage": failure.get("stage"), "code": failure.get("code", ""),
            "msg": failure.get("msg"), "cause": failure.get("cause", ""),
            "hint": failure.get("hint", ""), "exit_code": failure.get("exit_code"),
            "report": report_path, "run_id": run_id, "worker_id": worker_id,
            "output_tail": tail}
    return json.dumps(redaction.current().value(body))


def _request(url: str, environ: Mapping[str, str], timeout: float,
             data: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": environ.get("RUNPOD_AI_API_KEY", "")}
    if data is not None:  # what the SDK sends its results as
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def take_one(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """One queued job, or None when none came within the long poll."""
    status, body = _request(take_url(environ), environ, TAKE_WAIT_S)
    if status != 200 or not body:
        return None
    job = json.loads(body)
    if isinstance(job, list):  # the batch form; one was asked for
        job = job[0] if job else None
    return job if isinstance(job, dict) and "id" in job else None


def answer_failed_boot(failure: Mapping[str, Any], report_path: str | None, run_id: str,
                       worker_id: str, environ: Mapping[str, str] = os.environ) -> None:
    """Take one queued job and post it failed with ``failure``; never raises."""
    started = time.monotonic()
    try:
        job = take_one(environ)
        if job is None:
            events.emit("info", "boot.job_failed", status="none_queued",
                        msg="no queued job to answer with the boot's failure")
            return
        payload = json.dumps({"error": error_text(failure, report_path, run_id, worker_id)})
        _request(done_url(environ, str(job["id"])), environ, POST_WAIT_S,
                 payload.encode())
    except (OSError, ValueError, urllib.error.URLError) as exc:
        events.emit("warn", "boot.job_failed", status="error",
                    msg=f"could not answer a queued job with the failure: {exc}")
        return
    events.emit("info", "boot.job_failed", status="posted", job_id=job["id"],
                ms=int((time.monotonic() - started) * 1000),
                msg="a queued job was failed with this boot's failure")
