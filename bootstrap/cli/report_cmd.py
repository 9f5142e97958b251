from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bootstrap.cli.options import config_options, load_config


@click.command()
@config_options
@click.argument("boots", nargs=-1, metavar="[BOOT [BOOT]]")
@click.option("--list", "as_list", is_flag=True, help="List every boot report found.")
@click.option("--json", "as_json", is_flag=True, help="Print the report file as it is stored.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one self-contained HTML page with a waterfall of the stages.")
def report(config_file: Path | None, boots: tuple[str, ...], as_list: bool, as_json: bool,
           html_file: Path | None, **flags: Any) -> None:
    """Read the boot reports kept on the volume (or in the local fallback).

    BOOT is a run id (a prefix is enough), a report file, or `latest` (the default).
    With one BOOT: its stage timeline. With two: what changed from the first to the second.

    \b
    Examples:
      bootstrap report --list
      bootstrap report                     the latest boot as a timeline
      bootstrap report 3f2a                the boot whose run id starts with 3f2a
      bootstrap report 3f2a latest         compare a boot with the latest one
      bootstrap report --html boot.html    a page to open in a browser
    """
    from bootstrap.kernel import events
    from bootstrap.kernel.error_boundary import error_boundary
    from bootstrap.kernel.exit_codes import ExitCode
    from bootstrap.reports import report as reports
    from bootstrap.reports import report_text

    events.configure("auto", sys.stderr)
    with error_boundary():
        config = load_config(config_file, **flags).config
        paths = reports.list_reports(config)
        if len(boots) > 2:
            raise click.UsageError("give at most two boots to compare")
        if not paths and not any(Path(b).is_file() for b in boots):
            searched = ", ".join(str(d) for d in reports.report_dirs(config))
            click.echo(f"no boot reports found (looked in {searched})", err=True)
            sys.exit(ExitCode.NO_REPORT)
        if as_list:
            click.echo(report_text.render_list([(p, reports.load(p)) for p in paths]))
            return
        chosen = [find(paths, name) for name in (boots or ("latest",))]
        if len(chosen) == 2:
            a, b = (reports.load(p) for p in chosen)
            click.echo(report_text.render_compare(a, b))
            return
        (path,) = chosen
        if as_json:
            click.echo(path.read_text())
        elif html_file is not None:
            from bootstrap.reports.report_html import render_html

            html_file.write_text(render_html(reports.load(path)))
            click.echo(f"wrote {html_file}", err=True)
        else:
            click.echo(report_text.render_timeline(reports.load(path), path))


def find(paths: list[Path], name: str) -> Path:
    """The report a user named: ``latest``, a file, or a run id prefix (unambiguous)."""
    if name == "latest":
        return paths[-1]
    if Path(name).is_file():
        return Path(name)
    matches = [p for p in paths if p.stem.rsplit("-", 1)[-1].startswith(name)]
    if len(matches) != 1:
        found = "no boot" if not matches else f"{len(matches)} boots"
        raise click.BadParameter(f"{found} with a run id starting with {name!r}; "
                                 "`bootstrap report --list` shows them", param_hint="BOOT")
    return matches[0]
