from __future__ import annotations

import sys

import click


@click.command(hidden=True)
def worker() -> None:
    """Internal: the worker process, started by `bootstrap run`."""
    from bootstrap.supervision.worker import main

    sys.exit(main())
