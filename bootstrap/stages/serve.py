"""serve: hands the warm process to the request handler.

The handler is built by the app's factory, or the one the ``handler`` setting names
(``module:callable``, called with the context so it can reach what the app's stages
loaded), then started with ``runpod.serverless.start``.
The RunPod SDK is imported here and nowhere else: it is heavy, and its own checks may end
the process, which the supervisor then names as a death during this stage.

Every job runs in its own event context (``with_job_context``): whatever the handler logs,
through ``structlog.get_logger()``, stdlib logging or ``events.emit``, carries the job's id
and action besides the boot's run id and stage, and nothing it binds outlives the job.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import os
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from bootstrap import runpod_fitness, sdk_version
from bootstrap.health.endpoint import load_balancing
from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, error, warning
from bootstrap.kernel.protocol import emit_message, emit_ready
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed
from bootstrap.kernel.target import resolve, suggestion
from bootstrap.stages import handler_file

E001 = error("serve.E001", "the handler factory {target} could not be loaded: {cause}",
             "check the app's handler or BOOTSTRAP_HANDLER (module:callable) and that the "
             "module is installed{guess}")
E002 = error("serve.E002", "the handler factory {target} failed",
             "the factory raised; the cause says why")
E003 = error("serve.E003", "the RunPod SDK is not installed in the worker's environment",
             "install it where the worker runs: the image (pip install "
             "'bootstrap-worker[serve]'); environments bootstrap builds get it added")
E005 = error("serve.E005", "no handler to serve: no app and no handler is configured",
             "set BOOTSTRAP_APP to an app (module:attribute), or BOOTSTRAP_HANDLER to a "
             "handler factory (module:callable)")
E004 = error("serve.E004", "the RunPod SDK ended the worker with exit code {code}",
             "the SDK's own lines above say why: a failed test job, or a failed fitness check")

W001 = warning("serve.W001", "the RunPod SDK {version} is older than {minimum}: {why}",
               "install runpod>={minimum} where the worker runs; with F5-TTS, drop gradio "
               "(it holds runpod at 1.10.0): uv's --override image/overrides.txt")


def _old_sdk() -> list[Message]:
    version = sdk_version.installed()
    if version is None or not sdk_version.too_old(version):
        return []
    return [W001.at("runpod", version=version, minimum=sdk_version.minimum(),
                    why=sdk_version.WHY)]


def _sdk_argv(ctx: Context) -> list[str]:
    """The command line the RunPod SDK parses (it reads sys.argv, nothing else)."""
    argv = [sys.argv[0], *shlex.split(ctx.config.serve_args)]
    if ctx.config.test_input:
        # The setting is the job's input, as a client would send it; the SDK wants the job.
        job = {"input": json.loads(ctx.config.test_input)}
        argv += ["--test_input", json.dumps(job)]
    return argv


def job_fields(job: Any) -> dict[str, Any]:
    """The fields every event of a job carries: its id, and the request's action if any."""
    fields: dict[str, Any] = {}
    if isinstance(job, dict):
        fields["job_id"] = job.get("id")
        request = job.get("input")
        if isinstance(request, dict) and isinstance(request.get("action"), str):
            fields["action"] = request["action"]
    return fields


def with_job_context(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` with each job run in a context of its own that binds the job's fields.

    The RunPod SDK (1.10-1.12) runs each job as an asyncio task and calls a plain handler
    on the event loop's thread; it tells a streaming handler by
    ``inspect.isgeneratorfunction`` / ``isasyncgenfunction``, so the wrapper is of the same
    kind as the handler. A plain or generator handler runs each step in a copy of the
    context taken at the job's start: what it binds ends with the job, whatever thread or
    task the SDK runs it on. A coroutine or async generator binds in its own task's context
    and resets it when the job ends.
    """
    if inspect.isasyncgenfunction(handler):
        @functools.wraps(handler)
        async def stream_async(job: Any) -> AsyncIterator[Any]:
            with events.job_context(**job_fields(job)):
                async for item in handler(job):
                    yield item
        return stream_async
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def stream(job: Any) -> Iterator[Any]:
            context = _job_context(job)
            steps = context.run(handler, job)
            while True:
                try:
                    item = context.run(next, steps)
                except StopIteration:
                    return
                yield item
        return stream
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def answer_async(job: Any) -> Any:
            with events.job_context(**job_fields(job)):
                return await handler(job)
        return answer_async

    @functools.wraps(handler)
    def answer(job: Any) -> Any:
        result = _job_context(job).run(handler, job)
        if inspect.isawaitable(result):  # a callable object whose __call__ is async
            return _awaited_in_job_context(result, job)
        return result
    return answer


def _job_context(job: Any) -> contextvars.Context:
    """A copy of the current context with the job's fields bound in it: discarded with the
    job, so nothing needs unbinding."""
    context = contextvars.copy_context()
    context.run(events.bind_to_context, **job_fields(job))
    return context


async def _awaited_in_job_context(result: Awaitable[Any], job: Any) -> Any:
    with events.job_context(**job_fields(job)):
        return await result


def _target(ctx: Context) -> str:
    """The handler factory: the ``handler`` setting, else the app's."""
    from bootstrap.kernel import app as apps

    return ctx.config.handler or apps.load(ctx.config.app).handler


def check(ctx: Context) -> list[Message]:
    """Run in the worker's interpreter (``bootstrap check``): a handler to build, and the
    SDK to serve it with. An image without runpod failed only once every other stage had
    passed."""
    import importlib.util

    target = _target(ctx)
    found = [] if target else [E005.at("handler")]
    if target and not handler_file.is_handler_file(target):
        try:
            resolve(target)  # the factory's module is light: the model loads in stages
        except Exception as exc:
            found.append(_unloadable(target, exc))
    if importlib.util.find_spec("runpod") is None:
        found.append(E003.at("runpod"))
    return found + _old_sdk()


def _unloadable(target: str, exc: Exception) -> Message:
    guess = suggestion(target)
    return E001.at(target, target=target, cause=f"{type(exc).__name__}: {exc}",
                   guess=f"; did you mean {guess}?" if guess else "")


def _handler(ctx: Context, target: str) -> Any:
    """The job function: built by the factory ``target`` names."""
    try:
        factory: Any = resolve(target)
    except Exception as exc:
        raise StageFailed(_unloadable(target, exc), cause=repr(exc)) from exc
    try:
        handler = factory(ctx)
    except Exception as exc:
        raise StageFailed(E002.at(target, target=target), cause=repr(exc)) from exc
    events.restore_if_replaced(f"the handler factory {target}")
    return handler


def _start_config(ctx: Context, target: str) -> dict[str, Any]:
    """What ``runpod.serverless.start`` gets: the handler, and the options it asks for in
    its ``runpod_config`` attribute (a generator's ``return_aggregate_stream``)."""
    handler = _handler(ctx, target)
    return {**dict(getattr(handler, "runpod_config", {})), "handler": handler}


def run(ctx: Context) -> Outcome:
    target = _target(ctx)
    if not target:
        raise StageFailed(E005.at("handler"))
    lb = load_balancing(ctx.config)
    if lb is not None:  # the app's HTTP server instead of the SDK's job loop
        from bootstrap.handler_http import asgi_app
        from bootstrap.stages import serve_http

        return serve_http.serve(ctx, lb, lambda: asgi_app(with_job_context(
            _handler(ctx, target))))
    # A handler file's import stage already ran it: serve what it passed to start.
    served = handler_file.SERVED.get(ctx)
    start_config = dict(served) if served is not None else _start_config(ctx, target)
    # The SDK logs at DEBUG by default, and at DEBUG it logs every job's whole output
    # (audio or images: megabytes of base64 per request) into the console. Its logger reads
    # the level once, when runpod is imported.
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    try:
        import runpod  # heavy; imported only now, after every other stage has passed
    except ImportError as exc:
        raise StageFailed(E003.at("runpod"), cause=repr(exc)) from exc
    for message in _old_sdk():  # serving never returns, so the warning goes out now
        emit_message("serve", message)
    runpod_fitness.run(ctx.config)  # before ready: a failed check is named, not a bare exit 1
    emit_ready(handler=target)
    sys.argv = _sdk_argv(ctx)
    start_config["handler"] = with_job_context(start_config["handler"])
    try:
        runpod.serverless.start(start_config)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise StageFailed(E004.at("runpod", code=exc.code), cause="sdk exit") from exc
    return Outcome()


STAGE = Stage(name="serve", run=run, check=check, side=Side.WORKER, exit_code=ExitCode.SERVE,
              deadline_s=0)  # serving has no end
