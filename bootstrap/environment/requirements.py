"""What an environment is built from: the user's requirements and what bootstrap's own code
needs there.

The worker runs ``<env python> -m bootstrap.supervision.worker`` with bootstrap on PYTHONPATH, not
installed, so every environment must also hold bootstrap's runtime dependencies
(``WORKER_REQUIREMENTS``; a test keeps them equal to pyproject's dependencies). The serve
stage hands the worker to the RunPod SDK, so an environment whose boot serves holds it too
(a test keeps the line equal to pyproject's ``serve`` extra). These lines are *added*: each
says who needs it, and ``bootstrap check`` shows them so (``venv.I005``).

A line of the user's naming the same distribution does not replace an added one: both go
to the installer, which picks a version meeting both or names the conflict
(``install.E001``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bootstrap.kernel.config import Config


@dataclass(frozen=True)
class Added:
    """A requirement bootstrap adds for its own code."""

    line: str
    by: str  # who needs it, in the words `bootstrap check` shows
    stage: str | None = None  # added only when this stage runs (is not in `skip`)


FRAMEWORK = (
    Added("click>=8.1", "bootstrap's worker process"),
    Added("psutil>=5.9", "bootstrap's worker process"),
    Added("structlog>=24.1", "bootstrap's worker process (its event stream)"),
    Added("runpod>=1.10,<1.13", "the serve stage", stage="serve"),
)
ALWAYS = tuple(added for added in FRAMEWORK if added.stage is None)
WORKER_REQUIREMENTS = tuple(added.line for added in ALWAYS)


class RequirementsMissing(Exception):
    def __init__(self, path: Path) -> None:
        super().__init__(f"requirements file {path} does not exist")
        self.path = path


@dataclass(frozen=True)
class Requirements:
    lines: tuple[str, ...]  # the user's, comments and blanks dropped
    source: str  # where they came from, for messages
    added: tuple[Added, ...] = ALWAYS  # what bootstrap's stages that run need
    overrides: tuple[str, ...] = ()  # the app's (``App.overrides``), given to uv as --override

    @property
    def configured(self) -> bool:
        return bool(self.lines)

    @property
    def all_lines(self) -> tuple[str, ...]:
        return (*(added.line for added in self.added), *self.lines)

    def text(self) -> str:
        """What the installer is given, and what the environment key hashes."""
        return "\n".join(self.all_lines) + "\n"

    def overrides_text(self) -> str:
        return "".join(f"{line}\n" for line in self.overrides)

    def describe(self) -> str:
        """Every line, the added ones marked with who needs them: ``bootstrap check``."""
        return "; ".join([*self.lines, *(f"{added.line} (added: {added.by})"
                                         for added in self.added),
                          *(f"override {line!r} (the app's)" for line in self.overrides)])


def _clean(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def added_for(config: Config) -> tuple[Added, ...]:
    """What bootstrap adds for the stages this configuration runs."""
    return tuple(added for added in FRAMEWORK
                 if added.stage is None or added.stage not in config.skip)


def _app_overrides(config: Config) -> tuple[str, ...]:
    from bootstrap.kernel import app

    try:
        return app.load(config.app).overrides
    except app.AppError:
        return ()  # preflight names an app that does not load


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
    return Requirements(tuple(lines), " + ".join(sources) or "none", added_for(config),
                        _app_overrides(config))
