from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bootstrap.cli.options import config_options, load_config


@click.command()
@config_options
@click.option("--test-input", help="Answer this one job (JSON input) and exit; for local demos.")
def run(config_file: Path | None, test_input: str | None, **flags: Any) -> None:
    """Boot the worker: supervisor stages, then the worker process, then serve.

    \b
    Examples:
      bootstrap run
      BOOTSTRAP_MODE=local bootstrap run --volume /tmp/vol --test-input '{"text": "hi"}'
    """
    from bootstrap.kernel import events
    from bootstrap.kernel.error_boundary import error_boundary

    events.configure("auto")
    with error_boundary():
        loaded = load_config(config_file, test_input=test_input, **flags)
        events.configure(loaded.config.log_format, level=loaded.config.log_level)
        for note in loaded.unknown:
            events.emit("warn", "config.unknown", msg=note,
                        hint="bootstrap config lists every setting and its variable")
        from bootstrap.supervision.supervisor import Supervisor

        sys.exit(Supervisor(loaded.config).run())
