"""docs/contributing.md claims to list every module of the framework and the F5-TTS app:
every module is named there, and every module name it gives still exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bootstrap", "f5worker")
# Backticked words of the list that name no module: the handler_file stage's name.
NOT_MODULES = {"import"}


def _layout() -> str:
    """The page's list of the two packages, from `bootstrap/` to the tests' entry."""
    text = (ROOT / "docs" / "contributing.md").read_text()
    return text[text.index("- `bootstrap/` the framework"):text.index("- `tests/` laid out")]


def _modules() -> set[str]:
    return {path.stem for package in PACKAGES for path in (ROOT / package).rglob("*.py")
            if path.stem not in ("__init__", "__main__")}


def test_every_module_is_named_in_the_layout() -> None:
    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", _layout()))
    assert sorted(_modules() - named) == []


def test_every_module_name_in_the_layout_exists() -> None:
    packages = {path.name for package in PACKAGES for path in (ROOT / package).rglob("*")
                if path.is_dir() and path.name != "__pycache__"}
    backticked = set(re.findall(r"`([a-z_][a-z0-9_]*)`", _layout()))
    assert sorted(backticked - _modules() - packages - NOT_MODULES) == []
