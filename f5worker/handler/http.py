"""The F5-TTS worker on a load-balancing endpoint: ``POST /runsync`` with a job's body
synthesizes through the same handler a queue endpoint runs (bootstrap/handler_http.py).
A minimal HTTP API; an OpenAI-style speech API is another piece of work."""

from __future__ import annotations

from typing import Any

from bootstrap.kernel.context import Context


def make_http_app(ctx: Context) -> Any:
    from bootstrap.handler_http import asgi_app
    from f5worker.handler.f5tts import make_handler

    return asgi_app(make_handler(ctx))
