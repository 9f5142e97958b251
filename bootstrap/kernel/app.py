"""An app: the model a worker serves, declared in one object the framework loads.

The framework boots any worker through the same supervisor stages (preflight, volume,
venv, install, hydrate) and the same generic worker stages (cuda, storage, serve). An app
brings the rest, in one ``App`` named by the ``app`` setting as ``module:attribute``:

- ``settings``: a frozen dataclass whose fields all have defaults. Each field is a setting
  like the framework's own: ``BOOTSTRAP_<NAME>``, ``bootstrap.toml``, ``bootstrap config``.
- ``state``: a dataclass the app's stages fill for its handler (the warm model, ...); one
  instance per process, at ``ctx.app_state``.
- ``stages``: the worker's stages before serve, in order, as ``module:attribute`` targets
  (the framework's own are ``bootstrap.stages.cuda:STAGE`` and
  ``bootstrap.stages.storage:STAGE``). They are imported only in the worker.
- ``handler``: the factory serve calls with the context, as ``module:callable``.
- ``http_app``: on a load-balancing endpoint, the factory of the app's HTTP server, as
  ``module:callable``: called with the context, it returns an ASGI app that the serve
  stage runs with uvicorn on ``PORT``. ``""``: the handler, served over HTTP
  (``bootstrap/handler_http.py``).
- ``overrides``: requirement lines the installer puts in place of what the packages ask
  for (uv's ``--override``), e.g. a UI-only dependency of the model's package that would
  pin the RunPod SDK old. Part of the environment's key.

The module that defines the ``App`` is imported by the supervisor, so it must stay light:
dataclasses and strings, never the model's libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The framework's generic worker stages, for apps to list among theirs.
CUDA = "bootstrap.stages.cuda:STAGE"
STORAGE = "bootstrap.stages.storage:STAGE"


@dataclass(frozen=True)
class NoSettings:
    """The settings of an app that has none."""


@dataclass
class NoState:
    """The state of an app that hands nothing from its stages to its handler."""


def _no_problems(settings: Any) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class App:
    name: str
    handler: str
    stages: tuple[str, ...] = ()
    settings: type[Any] = NoSettings
    state: type[Any] = NoState
    # The settings' own rules beyond their types: (setting, what is wrong) pairs, shown
    # as usage errors with where the value came from.
    validate: Callable[[Any], list[tuple[str, str]]] = field(default=_no_problems)
    http_app: str = ""
    overrides: tuple[str, ...] = ()


# A boot that names no app: the framework's stages and the handler given by `handler`.
NO_APP = App(name="", handler="", stages=(CUDA, STORAGE))


class AppError(Exception):
    """The ``app`` setting names nothing usable."""


def load(target: str) -> App:
    """The app ``target`` (``module:attribute``) names; ``""`` is no app."""
    if not target:
        return NO_APP
    from bootstrap.kernel.target import resolve

    try:
        obj = resolve(target)
    except Exception as exc:  # any import-time error of the app's module
        raise AppError(f"app: {target} could not be loaded: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, App):
        raise AppError(f"app: {target} is a {type(obj).__name__}, not a bootstrap.kernel.app.App")
    return obj
