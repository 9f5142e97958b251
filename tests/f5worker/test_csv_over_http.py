"""A word-timing CSV a client downloads is inert in a spreadsheet: a job whose text holds
formula-shaped words is sent over HTTP to the RunPod SDK's real local server (tiny model,
tiny aligner), its CSV stored in a real S3-compatible server (moto) and fetched by the
presigned URL the answer gives, in both dialects. The file is shared by URL, and a
spreadsheet runs a cell starting with ``=``, ``+``, ``-`` or ``@`` (OWASP CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from f5worker.handler import tiny_model
from tests.s3server import Server, download

PAYLOADS = ['=HYPERLINK("http://x.invalid","y")', "+1+cmd|'/C!A0", "-2+3", "@SUM(A1:A2)",
            "\uff1d1+1"]
# What a spreadsheet reads as a formula's start (OWASP), full-width forms included.
FORMULA = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
TEXT = "Say " + " then ".join(PAYLOADS) + " now."


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, s3: Server,
           serve: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    volume = tmp_path_factory.mktemp("csv-volume")
    tiny_model.build(volume)
    env = {**s3.env(), "SERVE_F5_SETTINGS": json.dumps({"timings": True})}
    with serve(volume, tmp_path_factory.mktemp("csv"), **env) as served:
        yield served


def csv_url(answer: dict[str, Any], dialect: str) -> str:
    assert answer.get("status") == "COMPLETED", answer
    output = answer["output"]
    url: str = output["timings_url"] if dialect == "current" else output["timing_files"]["csv"]
    return url


@pytest.mark.parametrize(("dialect", "job"), [
    ("current", {"text": TEXT, "voice": "default", "nfe_step": 2, "seed": 5,
                 "return_word_timings": True, "timing_format": "csv"}),
    ("old", {"text": TEXT, "local_voice": "default.wav", "seed": 5,
             "return_word_timings": True, "timing_format": "csv"})])
def test_a_formula_shaped_word_downloads_as_an_inert_cell(
        worker: Any, dialect: str, job: dict[str, Any]) -> None:
    url = csv_url(worker.post({"input": job}, timeout=300), dialect)
    body = download(url).decode()
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert rows[0] == ["word", "start", "end", "confidence"]
    cells = [row[0] for row in rows[1:]]
    assert [c.removeprefix("'") for c in cells] == TEXT.split()
    # Today's code wrote each cell as given: a spreadsheet opening the URL runs it.
    assert [c for c in cells if c.startswith("'")] == ["'" + p for p in PAYLOADS], cells
    assert not any(c.startswith(FORMULA) for c in cells), cells
