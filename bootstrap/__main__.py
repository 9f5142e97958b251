"""``python -m bootstrap``: the same CLI as the ``bootstrap`` console script."""

from __future__ import annotations

from bootstrap.cli import main

if __name__ == "__main__":
    main()
