"""A trivial handler: answers every job with its own input. Proves the serve path
(the worker, the RunPod SDK, the job round trip) without a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def make_handler(ctx: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    worker_id = ctx.worker_id

    def handler(job: dict[str, Any]) -> dict[str, Any]:
        return {"echo": job.get("input"), "worker_id": worker_id}

    return handler
