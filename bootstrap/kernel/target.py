"""Targets named as ``module:attribute`` in configuration (the handler, extra stages)."""

from __future__ import annotations

import importlib


def resolve(target: str) -> object:
    """The object named by ``module:attribute`` (the attribute may be dotted)."""
    module_name, _, attr = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
