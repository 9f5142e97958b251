"""What an environment is built from: the user's requirements and bootstrap's own.

The worker runs ``<env python> -m bootstrap.worker`` with bootstrap on PYTHONPATH, not
installed, so every environment must also hold bootstrap's runtime dependencies.
``WORKER_REQUIREMENTS`` is that list; a test keeps it equal to pyproject's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bootstrap.config import Config

WORKER_REQUIREMENTS = ("click>=8.1", "psutil>=5.9", "structlog>=24.1")


class RequirementsMissing(Exception):
    def __init__(self, path: Path) -> None:
        super().__init__(f"requirements file {path} does not exist")
        self.path = path


@dataclass(frozen=True)
class Requirements:
    lines: tuple[str, ...]  # the user's, comments and blanks dropped
    source: str  # where they came from, for messages

    @property
    def configured(self) -> bool:
        return bool(self.lines)

    @property
    def all_lines(self) -> tuple[str, ...]:
        return (*WORKER_REQUIREMENTS, *self.lines)

    def text(self) -> str:
        """What the installer is given, and what the environment key hashes."""
        return "\n".join(self.all_lines) + "\n"


def _clean(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def load(config: Config) -> Requirements:
    lines, sources = [], []
    if config.requirements:
        path = Path(config.requirements)
        try:
            lines += _clean(path.read_text())
        except FileNotFoundError:
            raise RequirementsMissing(path) from None
        sources.append(str(path))
    if config.requirements_text.strip():
        lines += _clean(config.requirements_text)
        sources.append("requirements_text")
    return Requirements(tuple(lines), " + ".join(sources) or "none")
