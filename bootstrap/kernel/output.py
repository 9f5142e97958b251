"""A value one stage hands on to later ones, declared in the module of the stage that writes
it: ``DEVICE = Output[str]("device")`` in ``bootstrap/stages/cuda.py``.

The context keeps every output in one mapping and knows none of them by name; the declaration
is the output's type and its one typed way in and out (``DEVICE.get(ctx)``,
``DEVICE.set(ctx, "cuda:0")``). ``ctx.device`` reads and writes the same entry, for stages
and apps written that way, once the writer's module has declared it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

if TYPE_CHECKING:
    from bootstrap.kernel.context import Context

T = TypeVar("T")

# Every declared output's name, and the module that declared it (one writer per name).
DECLARED: dict[str, str] = {}


class Output(Generic[T]):
    def __init__(self, name: str, module: str = "") -> None:
        owner = DECLARED.setdefault(name, module or name)
        if module and owner != module:
            raise ValueError(f"the output {name!r} is declared by {owner} already")
        self.name = name

    def get(self, ctx: Context) -> T | None:
        """The value, or None when its stage did not run (or set none)."""
        return cast("T | None", ctx.outputs.get(self.name))

    def set(self, ctx: Context, value: T | None) -> None:
        ctx.outputs[self.name] = value

    def __repr__(self) -> str:
        return f"Output({self.name!r})"
