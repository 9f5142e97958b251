"""Word timings as SRT, WebVTT, JSON, CSV and ASS, read back by real parsers (srt,
webvtt-py, Python's csv, pysubs2): the same words and the same times come back. FFmpeg's
libass burns the ASS into video in tests/f5worker/test_subtitles_ass_burn.py."""

from __future__ import annotations

import csv
import html
import io
import itertools
import json
from datetime import timedelta

import pysubs2
import pytest
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from f5worker.aligner import Word
from f5worker.handler import subtitles

WORDS = [Word("Hello,", 0.02, 0.41), Word("world.", 0.45, 0.9), Word("Fish", 1.2, 1.5),
         Word("&", 1.5, 1.5), Word("<chips>", 1.55, 2.0), Word("-->", 2.0, 2.25),
         Word("tonight!", 2.3, 3723.4567)]


@st.composite
def word_lists(draw: st.DrawFn, alphabet: str = "ab&<>-.!?, é'") -> list[Word]:
    """Monotonic words (some zero-length, as unplaceable words are) with awkward text."""
    texts = draw(st.lists(st.text(alphabet=alphabet, min_size=1).filter(
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
    expected = [(start, end, subtitles.inert_text(cue))
                for start, end, cue in subtitles.cues(words, max_words=per_cue)]
    assert [c.index for c in parsed] == list(range(1, len(expected) + 1))
    ms = timedelta(milliseconds=1)
    assert [(c.start // ms, c.end // ms, c.content) for c in parsed] == expected
    assert " ".join(c.content for c in parsed).split() == [
        subtitles.inert_text(w.text) for w in words]


@given(word_lists(), st.sampled_from([1, 3, 7]))
@settings(max_examples=60, deadline=None)
def test_vtt_reads_back_the_cues_words_and_times(words: list[Word], per_cue: int) -> None:
    text = subtitles.to_vtt(words, max_words=per_cue)
    parsed = list(webvtt.from_string(text))
    expected = [(start, end, subtitles.inert_text(cue))
                for start, end, cue in subtitles.cues(words, max_words=per_cue)]
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
    # < and > as their look-alikes (issue 22: no reader then sees a tag or an arrow)
    assert "Fish &amp; \u2039chips\u203a --\u203a tonight!" in text


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
    with pytest.raises(ValueError, match="'txt' is not one of srt, vtt, json, csv, ass"):
        subtitles.render(WORDS, "txt")
    with pytest.raises(ValueError, match="'txt' is not one of"):
        subtitles.Timings(tuple(WORDS)).files(["srt", "txt"])


def test_every_format_has_a_mime_type_and_a_renderer() -> None:
    assert set(subtitles.MIME) == set(subtitles.FORMATS)
    assert subtitles.MIME["csv"] == "text/csv" and subtitles.MIME["ass"] == "text/x-ssa"
    # f5worker/handler/outputs tells the audio from the timings by its audio/* type.
    assert not any(mime.startswith("audio/") for mime in subtitles.MIME.values())
    files = subtitles.Timings(tuple(WORDS)).files(subtitles.FORMATS)
    assert list(files) == list(subtitles.FORMATS)
    assert all(content and mime == subtitles.MIME[fmt] for fmt, (content, mime) in files.items())
    assert len({content for content, _ in files.values()}) == len(subtitles.FORMATS)


# --- CSV ---

AWKWARD = ("a,b", 'say "hi"', '"', ",", "x\ny", "{b}", "C:\\New", "café", "北京", "=1+2")


@given(word_lists(alphabet=",\"'ab é北\n\r"))
@settings(max_examples=80, deadline=None)
def test_csv_reads_back_word_for_word(words: list[Word]) -> None:
    scored = [Word(w.text, w.start_s, w.end_s, score=(i % 7) / 6) for i, w in enumerate(words)]
    text = subtitles.to_csv(scored)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["word", "start", "end", "confidence"]
    assert rows[1:] == [[w.text, f"{w.start_s:.3f}", f"{w.end_s:.3f}", f"{w.score:.3f}"]
                        for w in scored]


def test_csv_is_rfc_4180_with_crlf_and_quoted_fields() -> None:
    words = [Word("Hello,", 0.02, 0.41, 0.9876), Word('"quoted"', 0.5, 1.0, 0.5),
             Word("plain", 1.0, 1.25)]
    assert subtitles.to_csv(words) == (
        "word,start,end,confidence\r\n"
        '"Hello,",0.020,0.410,0.988\r\n'
        '"""quoted""",0.500,1.000,0.500\r\n'
        "plain,1.000,1.250,0.000\r\n")
    assert subtitles.to_csv([]) == "word,start,end,confidence\r\n"


# --- ASS ---

def libass_text(text: str) -> str:
    """Dialogue text as libass draws it (ass_render.c): an override block ``{...}`` (a
    ``{`` with a ``}`` after it) is not text; ``\\N`` breaks the line, ``\\n`` is a space
    under WrapStyle 0, ``\\h`` a no-break space, ``\\{`` and ``\\}`` are braces; any
    other backslash is itself. The word joiner draws nothing."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char, following = text[index], text[index + 1:index + 2]
        if char == "{" and "}" in text[index:]:
            index = text.index("}", index) + 1
            continue
        if char == "\\" and following and following in "Nnh{}":
            out.append({"N": "\n", "n": " ", "h": "\xa0"}.get(following, following))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out).replace(subtitles.WORD_JOINER, "")


def ass_events(text: str) -> tuple[pysubs2.SSAFile, list[pysubs2.SSAEvent]]:
    subs = pysubs2.SSAFile.from_string(text, format_="ass")
    return subs, [e for e in subs.events if e.type == "Dialogue"]


def test_ass_has_the_script_info_a_default_style_and_a_dialogue_per_cue() -> None:
    text = subtitles.to_ass(WORDS[:2], max_words=1)
    subs, events = ass_events(text)
    assert subs.info["ScriptType"] == "v4.00+"
    assert (subs.info["PlayResX"], subs.info["PlayResY"]) == ("1920", "1080")
    style = subs.styles["Default"]
    assert (style.fontname, style.fontsize, style.alignment) == ("Arial", 72, 2)
    assert [(e.start, e.end, e.style, e.plaintext) for e in events] == [
        (20, 410, "Default", "Hello,"), (450, 900, "Default", "world.")]
    assert text.endswith("Dialogue: 0,0:00:00.02,0:00:00.41,Default,,0,0,0,,Hello,\n"
                         "Dialogue: 0,0:00:00.45,0:00:00.90,Default,,0,0,0,,world.\n")


def test_ass_times_are_centiseconds_with_unpadded_hours() -> None:
    text = subtitles.to_ass(WORDS[2:], max_words=10, max_cue_s=1e9)
    assert "Dialogue: 0,0:00:01.20,1:02:03.46,Default,,0,0,0,," in text


@given(word_lists(), st.sampled_from([1, 3, 7]))
@settings(max_examples=80, deadline=None)
def test_ass_reads_back_in_pysubs2_word_for_word(words: list[Word], per_cue: int) -> None:
    """pysubs2's own plain text is the words, < and > as their look-alikes."""
    _, events = ass_events(subtitles.to_ass(words, max_words=per_cue))
    assert " ".join(e.plaintext for e in events).split() == [
        subtitles.inert_text(w.text) for w in words]
    assert all(e.start < e.end for e in events)
    assert all(a.end <= b.start for a, b in itertools.pairwise(events))


@given(word_lists(alphabet="{}\\Nnh,ab é北"), st.sampled_from([1, 3, 7]))
@settings(max_examples=200, deadline=None)
def test_ass_keeps_braces_and_backslashes_as_text(words: list[Word], per_cue: int) -> None:
    """pysubs2 and libass read the same text: each word with its braces as look-alikes
    (issue 22: pysubs2 dropped libass's escaped ``\\{b\\}`` as an override block) and its
    backslashes kept from forming tags by a WORD JOINER, which libass draws as nothing."""
    _, events = ass_events(subtitles.to_ass(words, max_words=per_cue))
    shown = [subtitles.inert_text(w.text) for w in words]
    assert " ".join(e.plaintext for e in events).split() == shown
    assert " ".join(libass_text(e.text) for e in events).split() == [
        text.replace(subtitles.WORD_JOINER, "") for text in shown]
    expected = subtitles._timed(words, 100, per_cue, subtitles.MAX_CUE_S)
    assert [(e.start, e.end) for e in events] == [(s * 10, e * 10) for s, e, _ in expected]
    assert all(e.start < e.end for e in events)
    assert all(a.end <= b.start for a, b in itertools.pairwise(events))


def test_ass_escapes_what_libass_would_read_as_markup() -> None:
    words = [Word(t, i * 0.5, i * 0.5 + 0.4) for i, t in enumerate(AWKWARD)]
    _, events = ass_events(subtitles.to_ass(words, max_words=1))
    # Issue 22 changed this: braces are look-alikes, not libass's \{ \} (which pysubs2
    # and FFmpeg's own ASS parser read as an override block), a line break a space.
    assert [e.plaintext for e in events] == [
        "a,b", 'say "hi"', '"', ",", "x y", "\u2774b\u2775", "C:\\\u2060New", "café",
        "北京", "=1+2"]
    assert [libass_text(e.text) for e in events] == [
        e.plaintext.replace(subtitles.WORD_JOINER, "") for e in events]
    by_word = dict(zip(AWKWARD, (e.text for e in events), strict=True))
    assert by_word["{b}"] == "\u2774b\u2775"
    assert by_word["C:\\New"] == "C:\\\u2060New"
    assert by_word["x\ny"] == "x y"  # a cue is one line in every format
    assert by_word["a,b"] == "a,b" and by_word["北京"] == "北京"


def test_ass_cues_too_short_for_a_centisecond_join_the_one_before() -> None:
    # 1 ms apart: distinct SRT cues, one ASS cue (each must last at least 1 cs).
    words = [Word("one.", 0.0, 0.101), Word("two.", 0.101, 0.104), Word("three.", 0.2, 0.3)]
    assert len(subtitles.cues(words)) == 3
    _, events = ass_events(subtitles.to_ass(words))
    assert [(e.start, e.end, e.plaintext) for e in events] == [
        (0, 100, "one. two."), (200, 300, "three.")]


@pytest.mark.parametrize("payload", ['=HYPERLINK("http://x.invalid","y")',
                                     "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
                                     "\uff1d1+1"])
def test_a_csv_cell_shaped_like_a_formula_is_inert(payload: str) -> None:
    rows = list(csv.reader(io.StringIO(subtitles.to_csv([Word(payload, 0.0, 0.5)]),
                                       newline="")))
    # Today's code wrote the cell as given: a spreadsheet runs it (OWASP CSV injection).
    assert rows[1][0] == "'" + payload
    assert not rows[1][0].startswith(subtitles.FORMULA_STARTS)
