"""The boot order. Read top to bottom, this is what a worker does when it starts.

Supervisor stages run in the light supervisor process (system Python, never torch);
worker stages run in the worker process, in the environment the supervisor prepared.
The worker's stages come from the app (``bootstrap/kernel/app.py``: the ``app`` setting names
it); users add their own (``extra_stages = ["pkg.module:callable"]``), which run after the
app's and before serve.
"""

from __future__ import annotations

from collections.abc import Callable

from bootstrap.kernel.config import Config
from bootstrap.kernel.message import Message, error
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed
from bootstrap.kernel.target import resolve, suggestion

E001 = error("stage.E001", "the stage {target} could not be loaded: {cause}",
             "check the target (module:attribute) in the app's stages or in extra_stages"
             "{guess}")

# Each side imports only its own stages: every import is paid on every boot, twice over
# if both processes paid for both lists.


def supervisor_stages() -> list[Stage]:
    from bootstrap.stages import hydrate, install, preflight, venv, volume

    return [
        preflight.STAGE,
        volume.STAGE,
        venv.STAGE,
        install.STAGE,
        hydrate.STAGE,
    ]


def worker_stages(config: Config) -> list[Stage]:
    """The app's stages (``app.stages``, e.g. cuda, the model's own, storage), the user's
    ``extra_stages``, the import of a handler file, then serve."""
    from bootstrap.kernel import app as apps
    from bootstrap.stages import handler_file, serve

    app = apps.load(config.app)
    return [
        *[load_extra(target) for target in app.stages],
        *[load_extra(target) for target in config.extra_stages],
        # A RunPod handler file's import is a stage of its own, right before serve.
        *([handler_file.STAGE] if handler_file.is_handler_file(config.handler) else []),
        serve.STAGE,
    ]


def load_extra(target: str) -> Stage:
    """A user stage from ``module:callable``: either a :class:`Stage` or a plain ``run(ctx)``.

    A target that cannot be loaded becomes a stage that fails with ``stage.E001``, both in
    ``bootstrap check`` and when it runs, named by its target: a misspelt target is found
    before a boot, and the report says which target it was, not "STAGE".
    """
    name = target.rpartition(":")[2].rpartition(".")[2]
    try:
        obj = resolve(target)
    except Exception as exc:  # any import-time error of user code
        return _unloadable(target, exc)
    if isinstance(obj, Stage):
        return obj
    if callable(obj):
        run: Callable[..., Outcome | None] = obj
        return Stage(name=name, run=run, side=Side.WORKER)
    raise TypeError(f"{target} is neither a Stage nor a callable")


def _unloadable(target: str, exc: Exception) -> Stage:
    guess = suggestion(target)
    found = E001.at(target, target=target, cause=f"{type(exc).__name__}: {exc}",
                    guess=f"; did you mean {guess}?" if guess else "")

    def check(_: object) -> list[Message]:
        return [found]

    def broken(_: object) -> Outcome | None:
        raise StageFailed(found, cause=repr(exc)) from exc

    return Stage(name=target, run=broken, check=check, side=Side.WORKER)
