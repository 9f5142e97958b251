"""Options shared by the commands that read the configuration, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--config", "config_file", type=click.Path(path_type=Path),
                 help="bootstrap.toml to read (default: ./bootstrap.toml, or $BOOTSTRAP_CONFIG)."),
    click.option("--mode", type=click.Choice(["volume", "image", "local"]),
                 help="volume: packages on the network volume; image: baked in; local: a dev box."),
    # Taken as given, not judged: the volume stage says what is wrong with it (missing,
    # unreadable, read-only), with its id and hint, in the boot's events and report.
    click.option("--volume", type=click.Path(path_type=Path, readable=False),
                 help="The shared volume (default /runpod-volume)."),
    click.option("--log-format", type=click.Choice(["auto", "json", "console"]),
                 help="Event format; auto is console on a TTY, JSON otherwise."),
    click.option("--allow-cpu/--no-allow-cpu", default=None,
                 help="Let the model run on the CPU (default: only in local mode)."),
]


def config_options(func: F) -> F:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def load_config(config_file: Path | None, **flags: Any) -> Any:
    """The effective configuration (a ``config.Loaded``) from flags, env, file, defaults."""
    from bootstrap.kernel import config

    return config.load(flags=flags, toml_path=config_file)
