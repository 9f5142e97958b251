"""A job handler served over HTTP, for a load-balancing endpoint: ``POST /runsync`` with a
job's body (``{"input": {...}}``) answers ``{"id", "status", "output"}`` as RunPod's queue
API would, through the very same handler a queue endpoint runs.

An ASGI app on Starlette, which the RunPod SDK brings (``fastapi[all]``), as it brings the
uvicorn the serve stage runs it with. Imported only in the worker.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bootstrap.kernel import events


async def _run(handler: Callable[..., Any], job: dict[str, Any]) -> Any:
    """The handler's answer, whatever kind it is: a streaming one's parts as a list."""
    if inspect.isasyncgenfunction(handler):
        return [part async for part in handler(job)]
    if inspect.isgeneratorfunction(handler):
        return [part async for part in iterate_in_threadpool(handler(job))]
    if inspect.iscoroutinefunction(handler):
        return await handler(job)
    result = await run_in_threadpool(handler, job)
    return await result if inspect.isawaitable(result) else result


def asgi_app(handler: Callable[..., Any]) -> Starlette:
    async def runsync(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError as exc:
            return JSONResponse({"error": f"the body is not JSON: {exc}"}, status_code=400)
        if not isinstance(body, dict) or "input" not in body:
            return JSONResponse({"error": 'the body is a job: {"input": {...}}'},
                                status_code=400)
        job = {"id": f"http-{uuid.uuid4().hex[:12]}", "input": body["input"]}
        try:
            output = await _run(handler, job)
        except Exception as exc:  # the worker survives any request
            events.emit("error", "http.job_failed", job_id=job["id"],
                        error=f"{type(exc).__name__}: {exc}")
            return JSONResponse({"id": job["id"], "status": "FAILED",
                                 "error": f"{type(exc).__name__}: {exc}"}, status_code=500)
        if isinstance(output, dict) and "error" in output:
            return JSONResponse({"id": job["id"], "status": "FAILED", **output},
                                status_code=400)
        return JSONResponse({"id": job["id"], "status": "COMPLETED", "output": output})

    return Starlette(routes=[Route("/runsync", runsync, methods=["POST"])])
