"""Command line: parses and routes, nothing more. Each command is its own module and
imports what it needs when it runs, so ``bootstrap --help`` stays fast."""

from __future__ import annotations

import click

from bootstrap import __version__
from bootstrap.cli.check import check
from bootstrap.cli.config_cmd import config
from bootstrap.cli.report_cmd import report
from bootstrap.cli.run import run
from bootstrap.cli.worker_cmd import worker

EPILOG = """\b
Examples:
  bootstrap run                              boot this worker (the container's entrypoint)
  bootstrap run --mode local --volume /tmp/v boot on a developer machine
  bootstrap check                            what a boot would hit, changing nothing
  bootstrap config                           effective settings and where each comes from
  bootstrap report                           the latest boot report on the volume
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bootstrap")
def main() -> None:
    """Boot a serverless GPU worker through ordered, observable stages."""


main.add_command(run)
main.add_command(worker)
main.add_command(check)
main.add_command(config)
main.add_command(report)
