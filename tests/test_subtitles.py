"""Word timings as SRT, WebVTT and JSON, read back by real subtitle parsers (srt,
webvtt-py): the same words and the same times come back."""

from __future__ import annotations

import html
import itertools
import json
from datetime import timedelta

import pytest
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from bootstrap.aligner import Word
from handler import subtitles

WORDS = [Word("Hello,", 0.02, 0.41), Word("world.", 0.45, 0.9), Word("Fish", 1.2, 1.5),
         Word("&", 1.5, 1.5), Word("<chips>", 1.55, 2.0), Word("-->", 2.0, 2.25),
         Word("tonight!", 2.3, 3723.4567)]


@st.composite
def word_lists(draw: st.DrawFn) -> list[Word]:
    """Monotonic words (some zero-length, as unplaceable words are) with awkward text."""
    texts = draw(st.lists(st.text(alphabet="ab&<>-.!?, é'", min_size=1).filter(
        lambda t: t.strip() == t and " " not in t), min_size=1, max_size=30))
    gaps = draw(st.lists(st.floats(0, 3), min_size=2 * len(texts), max_size=2 * len(texts)))
    words, t = [], 0.0
    for index, text in enumerate(texts):
        start = t + gaps[2 * index]
        t = start + gaps[2 * index + 1]
        words.append(Word(text, start, t))
    return words


def _ms(stamp: str) -> int:
    hours, minutes, rest = stamp.split(":")
    seconds, millis = rest.split(".")
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


@given(word_lists(), st.sampled_from([1, 3, 7]))
@settings(max_examples=60, deadline=None)
def test_srt_reads_back_the_cues_words_and_times(words: list[Word], per_cue: int) -> None:
    text = subtitles.to_srt(words, max_words=per_cue)
    parsed = list(srt.parse(text))
    expected = subtitles.cues(words, max_words=per_cue)
    assert [c.index for c in parsed] == list(range(1, len(expected) + 1))
    ms = timedelta(milliseconds=1)
    assert [(c.start // ms, c.end // ms, c.content) for c in parsed] == expected
    assert " ".join(c.content for c in parsed).split() == [w.text for w in words]


@given(word_lists(), st.sampled_from([1, 3, 7]))
@settings(max_examples=60, deadline=None)
def test_vtt_reads_back_the_cues_words_and_times(words: list[Word], per_cue: int) -> None:
    text = subtitles.to_vtt(words, max_words=per_cue)
    parsed = list(webvtt.from_string(text))
    expected = subtitles.cues(words, max_words=per_cue)
    assert [(_ms(c.start), _ms(c.end), html.unescape(c.text)) for c in parsed] == expected
    assert all(_ms(c.end) > _ms(c.start) for c in parsed)  # the spec's end > start
    assert "-->" not in "".join(c.text for c in parsed)


def test_srt_follows_the_subrip_layout_exactly() -> None:
    text = subtitles.to_srt(WORDS[:2], max_words=1)
    assert text == ("1\n00:00:00,020 --> 00:00:00,410\nHello,\n\n"
                    "2\n00:00:00,450 --> 00:00:00,900\nworld.\n\n")


def test_vtt_has_its_header_dotted_times_and_escaped_text() -> None:
    text = subtitles.to_vtt(WORDS[2:], max_words=10, max_cue_s=1e9)
    assert text.startswith("WEBVTT\n\n00:00:01.200 --> 01:02:03.457\n")
    assert "Fish &amp; &lt;chips&gt; --&gt; tonight!" in text


def test_cues_break_after_sentence_punctuation_and_at_the_limits() -> None:
    texts = [text for _, _, text in subtitles.cues(WORDS[:6], max_words=3)]
    assert texts == ["Hello, world.", "Fish & <chips>", "-->"]
    long = [Word(f"w{i}", i * 1.0, i * 1.0 + 0.9) for i in range(10)]
    assert [t for _, _, t in subtitles.cues(long, max_words=99, max_cue_s=3.0)] == [
        "w0 w1 w2", "w3 w4 w5", "w6 w7 w8", "w9"]


@given(word_lists(), st.sampled_from([1, 3, 7]))
@settings(max_examples=200, deadline=None)
def test_cues_never_overlap_and_keep_every_word(words: list[Word], per_cue: int) -> None:
    found = subtitles.cues(words, max_words=per_cue)
    assert all(start < end for start, end, _ in found)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(found))
    assert " ".join(text for _, _, text in found).split() == [w.text for w in words]


def test_unplaced_words_at_one_instant_join_the_cue_before() -> None:
    # What the aligner gives "Hi. 42. 7. there": the numbers have no letters to align.
    words = [Word("Hi.", 0.1, 0.5), Word("42.", 0.5, 0.5), Word("7.", 0.5, 0.5),
             Word("there", 0.5, 0.9)]
    assert subtitles.cues(words) == [(100, 500, "Hi. 42. 7."), (500, 900, "there")]


def test_zero_length_words_get_a_cue_one_millisecond_long() -> None:
    assert subtitles.cues([Word("&", 1.5, 1.5)]) == [(1500, 1501, "&")]


def test_json_is_one_entry_per_word_in_seconds() -> None:
    entries = json.loads(subtitles.to_json(WORDS))
    assert [set(e) for e in entries] == [{"word", "start", "end"}] * len(WORDS)
    assert [(e["word"], e["start"], e["end"]) for e in entries] == [
        (w.text, round(w.start_s, 3), round(w.end_s, 3)) for w in WORDS]


def test_an_unknown_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'ass' is not one of srt, vtt, json"):
        subtitles.render(WORDS, "ass")
