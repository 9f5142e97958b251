from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from bootstrap.cli.options import config_options, load_config


@click.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print the report file as it is stored.")
def report(config_file: Path | None, as_json: bool, **flags: Any) -> None:
    """Print the latest boot report on the volume (or the local fallback).

    \b
    Examples:
      bootstrap report --volume /runpod-volume
      bootstrap report --json
    """
    from bootstrap import events
    from bootstrap import report as reports
    from bootstrap.error_boundary import error_boundary
    from bootstrap.exit_codes import ExitCode

    events.configure("auto")
    with error_boundary():
        config = load_config(config_file, **flags).config
        paths = reports.list_reports(config)
        if not paths:
            searched = ", ".join(str(d) for d in reports.report_dirs(config))
            click.echo(f"no boot reports found (looked in {searched})", err=True)
            sys.exit(ExitCode.NO_REPORT)
        latest = paths[-1]
        if as_json:
            click.echo(latest.read_text())
            return
        click.echo(render(reports.load(latest), latest))


def render(boot: Any, path: Path) -> str:
    import time

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(boot.started_at))
    lines = [f"boot {boot.run_id} on worker {boot.worker_id} ({boot.mode} mode), {started}",
             f"outcome: {boot.outcome}, exit code {boot.exit_code}", f"report: {path}", ""]
    for stage in boot.stages:
        lines.append(f"  {stage['stage']:<12} {stage['status']:<5} "
                     f"{stage.get('duration_ms', 0):>8} ms")
    if boot.failure:
        failure = boot.failure
        lines += ["", f"failed at stage {failure['stage']}: "
                      f"{'(' + failure['code'] + ') ' if failure.get('code') else ''}"
                      f"{failure['msg']}"]
        if failure.get("hint"):
            lines.append(f"  HINT: {failure['hint']}")
        if failure.get("cause"):
            lines.append(f"  cause: {failure['cause']}")
        if failure.get("traceback"):
            lines += ["", failure["traceback"]]
    if boot.worker:
        lines += ["", "worker process: " + json.dumps(boot.worker)]
    return "\n".join(lines)
