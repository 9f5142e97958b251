"""Check messages: small comparable values with a stable id.

Modelled on Django's system checks. A stage's ``check`` returns a list of these,
and tests compare against the module-level constants, never against copied text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any


class Level(enum.IntEnum):
    """Severity; the letter is the one used in the id (``volume.E003``)."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @property
    def letter(self) -> str:
        return {10: "D", 20: "I", 30: "W", 40: "E", 50: "C"}[self.value]

    @classmethod
    def from_name(cls, name: str) -> Level:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown level {name!r}; use one of "
                             f"{', '.join(m.name.lower() for m in cls)}") from None


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Message:
    """One finding. ``obj`` names the thing it is about (a path, a package, a device).

    Two messages are equal when their id and obj are equal: the wording can be improved
    without breaking tests that assert ``check(ctx) == [volume.E001.at(path)]``.
    """

    id: str
    level: Level
    msg: str
    hint: str = ""
    obj: str = ""

    def __post_init__(self) -> None:
        area, _, code = self.id.partition(".")
        if not area or len(code) != 4 or code[0] != self.level.letter or not code[1:].isdigit():
            raise ValueError(f"message id {self.id!r} does not match level {self.level.name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.id, self.obj) == (other.id, other.obj)

    def __hash__(self) -> int:
        return hash((self.id, self.obj))

    def at(self, obj: object, **fmt: Any) -> Message:
        """This message about ``obj``; ``fmt`` fills ``{placeholders}`` in msg and hint.

        Placeholders without a value stay as they are, so a test can name the message it
        expects (``E001.at(path)``) without repeating the figures in it.
        """
        return replace(self, obj=str(obj), msg=self.msg.format_map(_Keep(fmt)),
                       hint=self.hint.format_map(_Keep(fmt)))

    @property
    def is_serious(self) -> bool:
        return self.level >= Level.ERROR

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Message:
        """The message ``to_dict`` wrote (the worker's checks cross a process boundary)."""
        return cls(data["id"], Level.from_name(data["level"]), data["msg"],
                   data.get("hint", ""), data.get("obj", ""))

    def to_dict(self) -> dict[str, str]:
        out = {"id": self.id, "level": self.level.name.lower(), "msg": self.msg}
        if self.hint:
            out["hint"] = self.hint
        if self.obj:
            out["obj"] = self.obj
        return out


def error(id: str, msg: str, hint: str = "") -> Message:
    return Message(id, Level.ERROR, msg, hint)


def warning(id: str, msg: str, hint: str = "") -> Message:
    return Message(id, Level.WARNING, msg, hint)


def info(id: str, msg: str, hint: str = "") -> Message:
    return Message(id, Level.INFO, msg, hint)


def critical(id: str, msg: str, hint: str = "") -> Message:
    return Message(id, Level.CRITICAL, msg, hint)
