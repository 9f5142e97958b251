"""The F5-TTS worker on a load-balancing endpoint: OpenAI's speech API
(``POST /v1/audio/speech``, ``GET /v1/audio/voices``: f5worker/handler/openai_speech) and
the worker's own actions as JSON, ``POST /runsync`` with a job's body through the same
handler a queue endpoint runs (bootstrap/handler_http.py), behind the same API key."""

from __future__ import annotations

from typing import Any

from bootstrap.kernel.context import Context


def make_http_app(ctx: Context) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from bootstrap.handler_http import asgi_app
    from f5worker import settings
    from f5worker.handler import f5tts, openai_speech

    own = settings.of(ctx.config)
    svc = f5tts.services(ctx)
    jobs = asgi_app(f5tts.answering(svc))
    routes = [*openai_speech.routes(svc, own.api_key, own.api_queue), *jobs.routes]
    middleware = [Middleware(openai_speech.KeyRequired, api_key=own.api_key,
                             paths=("/runsync",))]
    return Starlette(routes=routes, middleware=middleware)
