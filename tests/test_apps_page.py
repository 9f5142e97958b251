"""docs/apps.md's third app boots as the page writes it: its code blocks become the files,
its shell block runs as is, and the job it sends gets the answer the page promises."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parent.parent / "docs" / "apps.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
SECTION = "## A third app, from an empty directory"


def _blocks() -> list[tuple[str, str]]:
    """The walkthrough's code blocks, in order, as (language, text)."""
    text = PAGE.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return BLOCK.findall(text[start:end])


def _demo(tmp_path: Path) -> tuple[Path, str]:
    """The app's files written where each block's first line says, and the shell block."""
    demo = tmp_path / "wordcount-demo"
    files, shell = [], []
    for language, code in _blocks():
        if language == "python":
            first, _, _ = code.partition("\n")
            name = first.removeprefix("# ")
            assert first.startswith("# ") and name.endswith(".py"), first
            (demo / name).parent.mkdir(parents=True, exist_ok=True)
            (demo / name).write_text(code)
            files.append(name)
        elif language == "sh":
            shell.append(code)
    assert files == ["wordcount/__init__.py", "wordcount/app.py", "wordcount/stages.py",
                     "wordcount/handler.py"], files
    assert len(shell) == 1, shell
    return demo, shell[0]


def _run(demo: Path, script: str, **variables: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: the page's reader has bootstrap on PATH and nothing else set.
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
           "HOME": str(demo), **variables}
    return subprocess.run(["bash", "-e", "-c", script], cwd=demo, env=env,
                          capture_output=True, text=True, timeout=300)


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_the_third_app_boots_from_the_page_and_answers_its_job(tmp_path: Path) -> None:
    demo, script = _demo(tmp_path)
    result = _run(demo, script)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    # `bootstrap check` printed the boot order the page names.
    order = ("preflight -> volume -> venv -> install -> hydrate -> stopwords -> storage "
             "-> serve")
    assert order in result.stdout, result.stdout[:3000]
    events = _events(result.stdout)
    last = events[-1]
    assert last["event"] == "summary" and last["status"] == "ok", last
    assert list(last["stages"]) == order.split(" -> ")
    stage = next(e for e in events if e["event"] == "stage" and e.get("stage") == "stopwords"
                 and "facts" in e)
    assert stage["facts"] == {"stopwords": 6}
    answers = [e["line"] for e in events if e["event"] == "output" and "'words'" in e["line"]]
    assert answers, [e for e in events if e["event"] == "output"]
    answer = ast.literal_eval(answers[0][answers[0].index("{"):])
    assert answer["output"] == {"words": 3, "top": [("cat", 2), ("hat", 1)]}, answer
    assert (demo / last["report"]).parent == demo / "volume" / ".bootstrap" / "reports", last


def test_the_third_apps_stage_fails_with_its_own_id_and_exit_code(tmp_path: Path) -> None:
    """The page's "try BOOTSTRAP_WORDCOUNT_STOPWORDS=the,a-n": check says so, run ends 30."""
    demo, script = _demo(tmp_path)
    check, run = script.split("\nbootstrap run", 1)
    failed = _run(demo, check, BOOTSTRAP_WORDCOUNT_STOPWORDS="the,a-n")
    assert failed.returncode == 3, failed.stdout
    assert "(wordcount.E001) stop word 'a-n' is not a word" in failed.stdout
    set_up = "\n".join(check.splitlines()[:2])  # the export and the volume
    booted = _run(demo, f"{set_up}\nbootstrap run{run}", BOOTSTRAP_WORDCOUNT_STOPWORDS="the,a-n")
    assert booted.returncode == 30, booted.stdout[-3000:]
    last = _events(booted.stdout)[-1]
    assert (last["stage"], last["code"]) == ("stopwords", "wordcount.E001"), last
