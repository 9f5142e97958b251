"""serve, on a load-balancing endpoint: the app's HTTP server on ``PORT``, run by uvicorn
(which the RunPod SDK brings) in the worker's main thread.

The app's ASGI app comes from the ``http_app`` setting or the app's ``App.http_app``
(``module:callable``, called with the context); without either, the app's handler is served
over HTTP (``POST /runsync``, bootstrap/handler_http.py). Either way the server answers the
health path itself with 200: the supervisor asks it there before its own health answer
turns to 200, and where ``PORT == PORT_HEALTH`` it is the one the platform reaches once the
supervisor has closed its listener (both bind with ``SO_REUSEPORT``, so no check finds the
port closed in between).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from bootstrap.health.endpoint import LoadBalancing
from bootstrap.kernel import app as apps
from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from bootstrap.kernel.message import error
from bootstrap.kernel.protocol import emit_ready
from bootstrap.kernel.stage import Outcome, StageFailed
from bootstrap.kernel.target import resolve

E011 = error("serve.E011", "the HTTP app factory {target} could not be loaded or failed",
             "check BOOTSTRAP_HTTP_APP or the app's http_app (module:callable returning an "
             "ASGI app); the cause says why")
E012 = error("serve.E012", "uvicorn is not installed in the worker's environment",
             "a load-balancing endpoint runs the app's HTTP server with uvicorn, which the "
             "RunPod SDK brings (fastapi[all]); install runpod or uvicorn where the worker runs")
E013 = error("serve.E013", "the app's HTTP server cannot listen on port {port}: {error}",
             "another process holds PORT, or the port needs privileges this user lacks "
             "(below 1024 without root); set PORT to a free port the endpoint exposes")

Asgi = Callable[..., Any]


def with_health(app: Asgi, path: str) -> Asgi:
    """``app`` that answers ``path`` with 200 itself: once it runs, it is healthy."""
    async def answered(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == path:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"status": "healthy"}'})
            return
        await app(scope, receive, send)
    return answered


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The supervisor's health server may hold the same port until this one answers.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("0.0.0.0", port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StageFailed(E013.at("PORT", port=port, error=exc.strerror or str(exc)),
                          cause=repr(exc)) from exc
    return sock


def _app(ctx: Context, handler_app: Callable[[], Asgi]) -> tuple[Asgi, str]:
    target = ctx.config.http_app or apps.load(ctx.config.app).http_app
    if not target:
        return handler_app(), "handler over HTTP"
    try:
        factory: Any = resolve(target)
        return factory(ctx), target
    except Exception as exc:
        raise StageFailed(E011.at(target, target=target), cause=repr(exc)) from exc


def serve(ctx: Context, lb: LoadBalancing, handler_app: Callable[[], Asgi]) -> Outcome:
    """Serve until a stop signal; ``handler_app`` builds the handler's HTTP app when the
    app declares no server of its own."""
    app, target = _app(ctx, handler_app)
    events.restore_if_replaced(f"the HTTP app factory {target}")
    try:
        import uvicorn
    except ImportError as exc:
        raise StageFailed(E012.at("uvicorn"), cause=repr(exc)) from exc
    sock = _listen(lb.port)
    emit_ready(http_app=target, port=lb.port)
    # log_config=None: uvicorn's lines go through stdlib logging into bootstrap's events.
    server = uvicorn.Server(uvicorn.Config(with_health(app, lb.path), log_config=None,
                                           access_log=False, lifespan="auto"))
    # uvicorn catches SIGTERM to shut down gently, then raises it again: the worker's own
    # handler then ends this stage with a reported stop.
    server.run(sockets=[sock])
    return Outcome()
