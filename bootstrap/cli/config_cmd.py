from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bootstrap.cli.options import config_options, load_config


@click.command()
@config_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def config(config_file: Path | None, output: str, **flags: Any) -> None:
    """Print the effective configuration and where each value comes from.

    \b
    Examples:
      bootstrap config
      BOOTSTRAP_MODE=local bootstrap config --output json
    """
    from bootstrap.kernel import events, redaction
    from bootstrap.kernel.error_boundary import error_boundary

    events.configure("auto")
    with error_boundary():
        loaded = load_config(config_file, **flags)
        # The framework's settings, then the app's (bootstrap/kernel/app.py), in one table.
        rows = [(name, value, loaded.sources[name])
                for name, value in loaded.config.settings().items()]
        data = {name: {"value": _plain(value), "source": source} for name, value, source in rows}
        data = redaction.redact(data)
        if output == "json":
            click.echo(json.dumps({"version": 1, "config": data,
                                   "unknown": list(loaded.unknown)}, indent=2))
            return
        width = max(len(name) for name, _, _ in rows)
        for name, item in data.items():
            click.echo(f"{name:<{width}}  {item['value']!s:<40}  ({item['source']})")
        for note in loaded.unknown:
            click.echo(f"warning: {note}")


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "items"):
        return dict(value)
    return value
