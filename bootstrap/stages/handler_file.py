"""import: a RunPod handler file, unchanged, run as ``python handler.py`` would run it.

Most RunPod workers are one file that loads its model at import and calls
``runpod.serverless.start({"handler": ...})`` itself. With ``handler = "path/to/handler.py"``
this stage runs that file as ``__main__`` (its folder first on ``sys.path``, as Python puts
it there) while ``runpod.serverless.start`` is replaced by a catch that records the config
the file passes and stops the file there. The import is a stage of its own: its deadline
(``BOOTSTRAP_DEADLINE_IMPORT``), its failure named with the line of the file that raised,
its duration in the report. The serve stage then calls the real ``start`` with that config
(``ctx.served``), so the file's handler runs through every stage like any other.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, error
from bootstrap.kernel.output import Output
from bootstrap.kernel.stage import Side, Stage, StageFailed

# The config the file passed to runpod.serverless.start, for the serve stage.
SERVED: Output[dict[str, Any]] = Output("served", __name__)

E001 = error("import.E001", "the handler file {path} does not exist",
             "BOOTSTRAP_HANDLER names a handler file by path, absolute or from the working "
             "directory {cwd}")
E002 = error("import.E002", "the handler file {path} raised at import: {error}",
             "the file's own code failed while it loaded (its model, a missing package, a "
             "missing file); the cause names the line")
E003 = error("import.E003", "the handler file {path} ran to its end without calling "
             "runpod.serverless.start",
             "a handler file serves by calling runpod.serverless.start({{'handler': ...}}) "
             "when run as a script; without one there is nothing to serve")
E004 = error("import.E004", "the handler file {path} passed no callable 'handler' to "
             "runpod.serverless.start",
             "runpod.serverless.start takes a dict whose 'handler' is the job function")
E005 = error("import.E005", "the RunPod SDK is not installed in the worker's environment",
             "the handler file imports runpod; install it where the worker runs (environments "
             "bootstrap builds get it added)")


def is_handler_file(target: str) -> bool:
    return target.endswith(".py")


class _Started(BaseException):
    """Raised by the stand-in start to end the file's run there: a BaseException, so a
    ``try: ... except Exception`` around the call in the file does not swallow it."""

    def __init__(self, config: Any) -> None:
        super().__init__("runpod.serverless.start")
        self.config = config


def _catch_start(config: Any) -> None:
    raise _Started(config)


def _where(exc: BaseException, path: Path) -> str:
    """The deepest line of the handler file in the traceback: where the user looks."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve() == path]
    return f" at line {frames[-1].lineno} of {path.name}" if frames else ""


def check(ctx: Context) -> list[Message]:
    path = Path(ctx.config.handler)
    if not path.is_file():
        return [E001.at("handler", path=str(path), cwd=os.getcwd())]
    return []


def run(ctx: Context) -> None:
    path = Path(ctx.config.handler).resolve()
    if not path.is_file():
        raise StageFailed(E001.at("handler", path=ctx.config.handler, cwd=os.getcwd()))
    # The SDK reads its log level once, at import, and this is its first import: at its
    # DEBUG default it would log every job's whole output (serve sets the same, too late).
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    try:
        import runpod.serverless  # the file imports it too; its start is replaced below
    except ImportError as exc:
        raise StageFailed(E005.at("runpod"), cause=repr(exc)) from exc
    real_start = runpod.serverless.start
    runpod.serverless.start = _catch_start
    sys.path.insert(0, str(path.parent))
    argv, sys.argv = sys.argv, [str(path)]  # what the file sees of its command line
    try:
        runpy.run_path(str(path), run_name="__main__")
    except _Started as started:
        config = started.config
    except Exception as exc:
        raise StageFailed(E002.at(str(path), path=str(path),
                                  error=f"{type(exc).__name__}: {exc}"[:300]),
                          cause=f"{exc!r}{_where(exc, path)}") from exc
    else:
        raise StageFailed(E003.at(str(path), path=str(path)))
    finally:
        runpod.serverless.start = real_start
        sys.argv = argv
    if not isinstance(config, dict) or not callable(config.get("handler")):
        raise StageFailed(E004.at(str(path), path=str(path)))
    SERVED.set(ctx, config)
    return None


STAGE = Stage(name="import", run=run, check=check, side=Side.WORKER, exit_code=ExitCode.SERVE,
              deadline_s=600.0)
