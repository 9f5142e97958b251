"""Word timings through the F5-TTS handler: the warm tiny model speaks, the tiny random
aligner places each word, and the answer carries SRT, WebVTT or JSON that real parsers read.
A random aligner's times are meaningless; their structure is what is checked."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from typing import Any

import pytest

from bootstrap.kernel.context import Context
from f5worker.handler import f5tts

TEXT = "Subtitles for every word, please."


@pytest.fixture(scope="module")
def handler(booted: Context, tiny_aligner: Any) -> Any:
    ctx = replace(booted, app_state=replace(booted.app_state, aligner=tiny_aligner))
    return f5tts.make_handler(ctx)


def synthesize(handler: Any, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = handler({"id": "t", "input": {
        "text": TEXT, "voice": "default", "nfe_step": 2, "seed": 5,
        "return_word_timings": True, **fields}})
    return result


def duration(result: dict[str, Any]) -> float:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(result["audio"])))
    return len(samples) / rate


def test_srt_by_default_parsed_by_a_real_parser(handler: Any) -> None:
    import srt

    result = synthesize(handler)
    assert result["timing_format"] == "srt"
    cues = list(srt.parse(result["timings"]))
    assert " ".join(c.content for c in cues).split() == TEXT.split()
    assert [c.index for c in cues] == list(range(1, len(cues) + 1))
    ends = [c.end.total_seconds() for c in cues]
    assert ends == sorted(ends) and ends[-1] <= duration(result) + 1e-3


def test_vtt_parsed_by_a_real_parser(handler: Any) -> None:
    import webvtt

    result = synthesize(handler, timing_format="vtt")
    assert result["timings"].startswith("WEBVTT")
    captions = webvtt.from_string(result["timings"])
    assert " ".join(c.text for c in captions).split() == TEXT.split()


def test_json_has_one_monotonic_entry_per_word_within_the_audio(handler: Any) -> None:
    result = synthesize(handler, timing_format="json")
    words = json.loads(result["timings"])
    assert [w["word"] for w in words] == TEXT.split()
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w["start"] <= w["end"] <= duration(result) + 1e-3 for w in words)


def test_a_text_the_aligner_cannot_read_keeps_its_audio(handler: Any) -> None:
    result = handler({"id": "t", "input": {"text": "北京欢迎你", "voice": "default",
                                           "nfe_step": 2, "return_word_timings": True}})
    assert result["audio"] and "timings" not in result
    assert result["timings_error"]


def test_timings_on_a_worker_without_them_are_refused_before_compute(booted: Context) -> None:
    plain = f5tts.make_handler(booted)  # booted with timings off: no aligner
    result = plain({"id": "t", "input": {"text": TEXT, "voice": "default",
                                         "return_word_timings": True}})
    assert result == {"error": "return_word_timings: word timings are off on this worker; "
                               "its operator turns them on with BOOTSTRAP_TIMINGS=1"}


def test_csv_and_ass_come_with_the_word_count_and_confidence(handler: Any) -> None:
    import csv

    import pysubs2

    rows = synthesize(handler, timing_format="csv")
    table = list(csv.DictReader(io.StringIO(rows["timings"])))
    assert [row["word"] for row in table] == TEXT.split()
    assert rows["word_count"] == len(TEXT.split())
    scores = [float(row["confidence"]) for row in table]
    assert rows["timing_confidence"] == pytest.approx(sum(scores) / len(scores), abs=2e-3)
    assert 0 <= rows["timing_confidence"] <= 1
    subs = synthesize(handler, timing_format="ass")
    events = pysubs2.SSAFile.from_string(subs["timings"]).events
    assert " ".join(e.plaintext for e in events).split() == TEXT.split()
