"""The docs are part of the product: their tables must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from bootstrap.exit_codes import ExitCode

DOCS = Path(__file__).parent.parent / "docs"


def test_exit_code_table_matches_the_code() -> None:
    rows = re.findall(r"^\| (\d+)(?:\+N)? \| (\w+) \|", (DOCS / "exit-codes.md").read_text(),
                      flags=re.M)
    documented = {name: int(code) for code, name in rows}
    assert documented == {code.name: int(code) for code in ExitCode}
