"""serve: hands the warm process to the request handler.

The handler is built by the app's factory, or the one the ``handler`` setting names
(``module:callable``, called with the context so it can reach what the app's stages
loaded), then started with ``runpod.serverless.start``.
The RunPod SDK is imported here and nowhere else: it is heavy, and its own checks may end
the process, which the supervisor then names as a death during this stage.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any

from bootstrap.context import Context
from bootstrap.exit_codes import ExitCode
from bootstrap.message import Message, error
from bootstrap.protocol import emit_ready
from bootstrap.stage import Outcome, Side, Stage, StageFailed
from bootstrap.target import resolve

E001 = error("serve.E001", "the handler factory {target} could not be loaded",
             "check BOOTSTRAP_APP or BOOTSTRAP_HANDLER (module:callable) and that the module "
             "is installed")
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


def _sdk_argv(ctx: Context) -> list[str]:
    """The command line the RunPod SDK parses (it reads sys.argv, nothing else)."""
    argv = [sys.argv[0], *shlex.split(ctx.config.serve_args)]
    if ctx.config.test_input:
        # The setting is the job's input, as a client would send it; the SDK wants the job.
        job = {"input": json.loads(ctx.config.test_input)}
        argv += ["--test_input", json.dumps(job)]
    return argv


def _target(ctx: Context) -> str:
    """The handler factory: the ``handler`` setting, else the app's."""
    from bootstrap import app as apps

    return ctx.config.handler or apps.load(ctx.config.app).handler


def check(ctx: Context) -> list[Message]:
    return [] if _target(ctx) else [E005.at("handler")]


def run(ctx: Context) -> Outcome:
    target = _target(ctx)
    if not target:
        raise StageFailed(E005.at("handler"))
    try:
        factory: Any = resolve(target)
    except Exception as exc:
        raise StageFailed(E001.at(target, target=target), cause=repr(exc)) from exc
    try:
        handler = factory(ctx)
    except Exception as exc:
        raise StageFailed(E002.at(target, target=target), cause=repr(exc)) from exc
    try:
        import runpod  # heavy; imported only now, after every other stage has passed
    except ImportError as exc:
        raise StageFailed(E003.at("runpod"), cause=repr(exc)) from exc
    emit_ready(handler=target)
    sys.argv = _sdk_argv(ctx)
    # The SDK logs at DEBUG by default, and at DEBUG it logs every job's whole output
    # (audio or images: megabytes of base64 per request) into the console.
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    try:
        runpod.serverless.start({"handler": handler})
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise StageFailed(E004.at("runpod", code=exc.code), cause="sdk exit") from exc
    return Outcome()


STAGE = Stage(name="serve", run=run, check=check, side=Side.WORKER, exit_code=ExitCode.SERVE,
              deadline_s=0)  # serving has no end
