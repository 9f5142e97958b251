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


def make_http_app(ctx: Any) -> Any:
    """The same echo on a load-balancing endpoint: ``POST /runsync``, served by the serve
    stage with uvicorn (bootstrap/handler_http.py)."""
    from bootstrap.handler_http import asgi_app

    return asgi_app(make_handler(ctx))
