"""What the F5-TTS app's stages hand its handler, at ``ctx.app_state``: one typed
attribute per value, each written by the stage named beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the supervisor imports this module: torch stays out of it
    from bootstrap.kernel.context import Context
    from f5worker.aligner import Aligner
    from f5worker.f5 import F5Model
    from f5worker.transcriber import Transcriber


@dataclass
class F5State:
    model: F5Model | None = None  # stages/model.py, warm on the device
    aligner: Aligner | None = None  # stages/model.py, when `timings` is on
    transcriber: Transcriber | None = None  # stages/model.py, when `transcribe` is on


def of(ctx: Context) -> F5State:
    """The F5-TTS state of a context that boots this app."""
    found = ctx.app_state
    if not isinstance(found, F5State):
        raise TypeError(f"the context boots another app (app={ctx.config.app!r})")
    return found
