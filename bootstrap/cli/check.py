from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from bootstrap.cli.options import config_options, load_config

LEVELS = ("debug", "info", "warning", "error", "critical")


@click.command()
@config_options
@click.option("--fail-level", type=click.Choice(LEVELS), default="error", show_default=True,
              help="Exit non-zero when a message at this level or above is found.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def check(config_file: Path | None, fail_level: str, output: str, **flags: Any) -> None:
    """Run every stage's read-only checks and print what a boot would hit.

    Nothing is created, installed or downloaded.

    \b
    Examples:
      bootstrap check
      bootstrap check --mode local --volume /tmp/vol --output json
    """
    from bootstrap import events, pipeline
    from bootstrap.context import Context
    from bootstrap.error_boundary import error_boundary
    from bootstrap.exit_codes import ExitCode
    from bootstrap.message import Level, Message
    from bootstrap.supervisor import worker_identity

    events.configure("auto", sys.stderr)
    with error_boundary():
        config = load_config(config_file, **flags).config
        ctx = Context(config, run_id="check", worker_id=worker_identity(), dry_run=True)
        found: list[tuple[str, Message]] = []
        for stage in [*pipeline.supervisor_stages(), *pipeline.worker_stages(config)]:
            for message in stage.check(ctx):
                found.append((stage.name, message))
        threshold = Level.from_name(fail_level)
        serious = [m for _, m in found if m.level >= threshold]
        if output == "json":
            click.echo(json.dumps({"version": 1, "messages": [
                {"stage": stage, **m.to_dict()} for stage, m in found]}, indent=2))
        else:
            click.echo(render(found))
        sys.exit(ExitCode.CHECK_FAILED if serious else ExitCode.OK)


def render(found: list[tuple[str, Any]]) -> str:
    from bootstrap.message import Level

    if not found:
        return "System check identified no issues."
    lines = []
    for level in sorted({m.level for _, m in found}, reverse=True):
        lines.append(f"{level.name}S:")
        for _, m in (item for item in found if item[1].level is level):
            lines.append(f"{m.obj or '?'}: ({m.id}) {m.msg}")
            if m.hint:
                lines.append(f"\tHINT: {m.hint}")
        lines.append("")
    count = len(found)
    lines.append(f"System check identified {count} issue{'s' if count != 1 else ''}.")
    del Level
    return "\n".join(lines)
