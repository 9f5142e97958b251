from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from bootstrap.cli.options import config_options, load_config

LEVELS = ("debug", "info", "warning", "error", "critical")
ENVELOPE_VERSION = 1


@click.command()
@config_options
@click.option("--fail-level", type=click.Choice(LEVELS), default="error", show_default=True,
              help="Exit 3 when a message at this level or above is found.")
@click.option("--silence", multiple=True, metavar="ID",
              help="A check id not to report (repeatable; also BOOTSTRAP_SILENCE=a,b).")
@click.option("--platform", type=click.Choice(["runpod"]),
              help="Also check what this platform's runtime will provide.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def check(config_file: Path | None, fail_level: str, silence: tuple[str, ...],
          platform: str | None, output: str, **flags: Any) -> None:
    """Run every stage's read-only checks and print what a boot would hit.

    Nothing is created, installed, downloaded or left on the volume.

    \b
    Examples:
      bootstrap check
      bootstrap check --platform runpod --mode volume
      bootstrap check --silence preflight.I001 --fail-level warning
      bootstrap check --output json
    """
    from bootstrap import dry_run
    from bootstrap.kernel import events
    from bootstrap.kernel.error_boundary import error_boundary
    from bootstrap.kernel.exit_codes import ExitCode
    from bootstrap.kernel.message import Level
    from bootstrap.supervision.supervisor import worker_identity

    events.configure("auto", sys.stderr)
    with error_boundary():
        config = load_config(config_file, silence=silence or None, **flags).config
        found = dry_run.collect(config, worker_identity(), platform)
        shown = [(s, m) for s, m in found if m.id not in config.silence]
        silenced = len(found) - len(shown)
        threshold = Level.from_name(fail_level)
        failing = [m for _, m in shown if m.level >= threshold]
        if output == "json":
            click.echo(json.dumps({
                "version": ENVELOPE_VERSION,
                "messages": [{"stage": stage, **m.to_dict()} for stage, m in shown],
                "silenced": silenced,
                "fail_level": fail_level,
                "failed": bool(failing),
            }, indent=2))
        else:
            click.echo(render(shown, silenced))
        sys.exit(ExitCode.CHECK_FAILED if failing else ExitCode.OK)


def render(found: list[tuple[str, Any]], silenced: int) -> str:
    """Django's form: grouped by level, ``obj: (id) msg`` and a HINT line, then a count."""
    lines = []
    for level in sorted({m.level for _, m in found}, reverse=True):
        lines.append(f"{level.name}S:")
        for _, m in (item for item in found if item[1].level is level):
            lines.append(f"{m.obj or '?'}: ({m.id}) {m.msg}")
            if m.hint:
                lines.append(f"\tHINT: {m.hint}")
        lines.append("")
    count = len(found)
    issues = "no issues" if count == 0 else f"{count} issue{'s' if count != 1 else ''}"
    return "\n".join([*lines, f"System check identified {issues} ({silenced} silenced)."])
