"""The docs are part of the product: their tables must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from bootstrap.kernel.exit_codes import APP_CODES, ExitCode
from f5worker.exit_codes import F5ExitCode

DOCS = Path(__file__).parent.parent / "docs"


def test_exit_code_table_matches_the_code() -> None:
    """Every code, the framework's and the F5-TTS app's, each under its owner."""
    rows = re.findall(r"^\| (\d+)(?:\+N)? \| (\w+) \| ([\w-]*) \|",
                      (DOCS / "exit-codes.md").read_text(), flags=re.M)
    documented = {(name, app): int(code) for code, name, app in rows}
    assert documented == {**{(code.name, ""): int(code) for code in ExitCode},
                          **{(code.name, "f5-tts"): int(code) for code in F5ExitCode}}
    assert not set(ExitCode) & set(F5ExitCode), "an app's code is one of the framework's"
    assert not set(APP_CODES) & set(ExitCode), "the apps' block holds a framework code"


CHECK_ID = re.compile(r"\b[a-z_]+\.[CEWID]\d{3}\b")
CODE_ID = re.compile(r"""["']([a-z_]+\.[CEWID]\d{3})["']""")


def test_every_check_id_in_code_is_documented_and_none_is_stale() -> None:
    root = DOCS.parent
    sources = [path for folder in ("bootstrap", "f5worker")
               for path in (root / folder).rglob("*.py")]
    sources.append(root / "entrypoint.sh")  # the image's entrypoint reports its own ids
    in_code = {m for path in sources for m in CODE_ID.findall(path.read_text())}
    in_docs = set(CHECK_ID.findall((DOCS / "checks.md").read_text()))
    assert in_code, "no check ids found in the code: the pattern is broken"
    assert sorted(in_code - in_docs) == [], "ids missing from docs/checks.md"
    assert sorted(in_docs - in_code) == [], "ids in docs/checks.md that the code no longer has"


def test_every_page_the_docs_and_code_cite_exists() -> None:
    """A page named as docs/NAME.md (in code or prose) or linked as (NAME.md) is there."""
    root = DOCS.parent
    sources = [root / "README.md", *DOCS.glob("*.md"),
               *(path for folder in ("bootstrap", "f5worker", "bench") for path in
                 (root / folder).rglob("*.py"))]
    cited = {(path.name, name) for path in sources
             for name in re.findall(r"(?:docs/|\()([a-z-]+\.md)\b", path.read_text())}
    assert len(cited) > 10, "no citations found: the pattern is broken"
    assert sorted((where, name) for where, name in cited if not (DOCS / name).is_file()) == []
