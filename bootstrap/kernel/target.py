"""Targets named as ``module:attribute`` in configuration (the handler, extra stages)."""

from __future__ import annotations

import importlib
import sys


def resolve(target: str) -> object:
    """The object named by ``module:attribute`` (the attribute may be dotted)."""
    module_name, _, attr = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def suggestion(target: str) -> str:
    """The target ``target`` was probably meant to be, when its module imports and holds a
    close name (``echo_app:GREEET`` -> ``echo_app:GREET``); else ``""``."""
    import difflib

    module_name, _, attr = target.partition(":")
    # Only a module that imported: one that failed would run its import again here (a
    # flood or a side effect twice), and then nothing within it can be suggested anyway.
    module = sys.modules.get(module_name)
    if module is None:
        return ""
    head, _, last = attr.rpartition(".")
    try:
        holder = resolve(f"{module_name}:{head}") if head else module
    except Exception:
        return ""
    close = difflib.get_close_matches(last, [n for n in dir(holder) if not n.startswith("_")],
                                      n=1, cutoff=0.6)
    return f"{module_name}:{head + '.' if head else ''}{close[0]}" if close else ""
