"""Word timings as subtitles and tables: SRT, WebVTT, JSON, CSV or ASS, from the aligner's
words.

Words are grouped into cues the way a reader takes them in: at most ``max_words`` words
and ``max_cue_s`` seconds per cue, and a cue ends after sentence punctuation
(``max_words=1`` gives one cue per word). SRT and WebVTT times are whole milliseconds,
ASS times whole centiseconds (its format). A cue's end is kept at least one tick after its
start (WebVTT requires end > start, and a word the aligner could not place may have no
length) and never after the next cue's start; a cue left with no time of its own after the
one before joins it.

Two numbers come with the words (:class:`Timings`): ``word_count``, the words aligned (one
per whitespace-separated word of the text), and ``confidence``, the mean per-word alignment
score of the forced aligner (:func:`f5worker.aligner.confidence`; not an ASR confidence).

The client's text is made inert in every subtitle format (:func:`inert_text`): SRT has no
escape, FFmpeg's SRT decoder turns ``<font>``, ``<b>`` and ``{\\an8}`` into live ASS tags,
and FFmpeg's ASS parser and pysubs2 read even libass's escaped ``\\{...\\}`` as an override
block; so the characters that make markup are replaced by visible look-alikes, a backslash
is kept from forming ``\\N``, ``\\n`` or ``\\h``, and a timestamp is kept from making its line
a timing line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from f5worker.aligner import Aligner, Word, confidence

FORMATS = ("srt", "vtt", "json", "csv", "ass")
MIME = {
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "json": "application/json",
    "csv": "text/csv",  # RFC 4180
    # ASS has no registered type; text/x-ssa is freedesktop shared-mime-info's for *.ass and
    # *.ssa. Never guess it from the name: Debian's /etc/mime.types (so Python's mimetypes)
    # says .ass is audio/aac, and f5worker/handler/outputs takes the audio/* file for the audio.
    "ass": "text/x-ssa",
}
MAX_WORDS = 7
MAX_CUE_S = 4.0
SENTENCE_END = (".", "!", "?", ";", ":", "…", "。", "！", "？")


def _groups(words: Sequence[Word], max_words: int, max_cue_s: float) -> list[list[Word]]:
    groups: list[list[Word]] = []
    group: list[Word] = []
    for word in words:
        if group and (len(group) >= max_words or word.end_s - group[0].start_s > max_cue_s):
            groups.append(group)
            group = []
        group.append(word)
        if word.text.endswith(SENTENCE_END):
            groups.append(group)
            group = []
    if group:
        groups.append(group)
    return groups


def _timed(words: Sequence[Word], ticks_per_s: int, max_words: int,
           max_cue_s: float) -> list[tuple[int, int, str]]:
    """The cues with times in whole ticks (1000 per second: milliseconds)."""
    out: list[tuple[int, int, str]] = []
    for group in _groups(words, max_words, max_cue_s):
        # Rounding is monotonic, so rounded times keep the words' order.
        start = round(group[0].start_s * ticks_per_s)
        end = round(group[-1].end_s * ticks_per_s)
        text = " ".join(word.text for word in group)
        if out:
            start = max(start, out[-1][1])
            if end <= start:
                # Nothing of it is left after the cue before (words the aligner could not
                # place sit at one instant): its words join that cue.
                previous = out[-1]
                out[-1] = (previous[0], previous[1], f"{previous[2]} {text}")
                continue
        out.append((start, max(end, start + 1), text))
    return out


def cues(words: Sequence[Word], max_words: int = MAX_WORDS,
         max_cue_s: float = MAX_CUE_S) -> list[tuple[int, int, str]]:
    """``(start_ms, end_ms, text)`` per cue, in order; a cue never starts before the one
    before it ends, and lasts at least 1 ms (WebVTT wants end > start)."""
    return _timed(words, 1000, max_words, max_cue_s)


# What makes markup in some reader, as the visible look-alike every reader shows as
# itself. Not the full-width forms (U+FF1C...): DejaVu, a plain Debian's fonts, lacks them and
# libass cannot draw them; DejaVu has these four, and every Latin font the first two.
LOOK_ALIKES = str.maketrans({"<": "\u2039", ">": "\u203a", "{": "\u2774", "}": "\u2775"})
WORD_JOINER = "\u2060"
# A backslash before N, n or h is an ASS line break or hard space (libass, FFmpeg's parsers
# and pysubs2 alike; FFmpeg's SRT decoder passes it on): the invisible WORD JOINER goes
# between them, since ASS has no escape for a backslash.
_TAG_AFTER_BACKSLASH = re.compile(r"\\(?=[Nnh])")
# A colon before seconds with a fraction ("00:00:01,000", "01:02.500"): pysubs2 takes a line
# with two such timestamps for a timing line, arrow or not. A WORD JOINER before the colon
# breaks the shape (FFmpeg's demuxer also wants the "-->" that the look-alikes break).
_SECONDS_COLON = re.compile(r"(?<=\d):(?=\d+[.,]\d)")
# Every line break a reader of the file might see (Python's splitlines() set). The aligner's
# words never hold one (they come from str.split()); a cue stays one line all the same, so
# no line of it can be read as a cue number, a timing line or the blank line ending a cue.
_LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def inert_text(text: str) -> str:
    """``text`` as every reader of SRT, WebVTT and ASS shows it, character for character
    (FFmpeg's parsers, libass, pysubs2): ``<`` and ``>`` as the single angle quotation marks
    U+2039 and U+203A, ``{`` and ``}`` as the curly bracket ornaments U+2774 and U+2775, a
    WORD JOINER after a backslash before ``N``, ``n`` or ``h`` and before a colon that starts
    seconds with a fraction, a line break as a space. Text with none of these is unchanged."""
    text = text.translate(LOOK_ALIKES)
    text = _TAG_AFTER_BACKSLASH.sub("\\\\" + WORD_JOINER, text)
    text = _SECONDS_COLON.sub(WORD_JOINER + ":", text)
    return _LINE_BREAK.sub(" ", text)


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def to_srt(words: Sequence[Word], **grouping: Any) -> str:
    """SubRip: cues numbered from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line
    after each cue."""
    return "".join(
        f"{number}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{inert_text(text)}\n\n"
        for number, (start, end, text) in enumerate(cues(words, **grouping), 1))


def _vtt_text(text: str) -> str:
    # WebVTT cue text is markup: & starts an entity (inert_text leaves no < or >).
    return inert_text(text).replace("&", "&amp;")


def to_vtt(words: Sequence[Word], **grouping: Any) -> str:
    """WebVTT: the ``WEBVTT`` header, a blank line, then cues with ``HH:MM:SS.mmm``."""
    body = "".join(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{_vtt_text(text)}\n\n"
                   for start, end, text in cues(words, **grouping))
    return f"WEBVTT\n\n{body}"


def to_json(words: Sequence[Word]) -> str:
    """``[{"word", "start", "end"}]``, seconds to the millisecond, one entry per word."""
    return json.dumps([{"word": w.text, "start": round(w.start_s, 3), "end": round(w.end_s, 3)}
                       for w in words], ensure_ascii=False)


# A cell a spreadsheet reads as a formula starts with one of these (OWASP's CSV injection
# list, with the full-width forms some spreadsheets fold to them).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _csv_cell(text: str) -> str:
    """``text`` inert in a spreadsheet: one starting like a formula gets a leading single
    quote, as OWASP recommends (the file is shared by URL and opened by anyone)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def to_csv(words: Sequence[Word]) -> str:
    """A header ``word,start,end,confidence``, then one row per word: seconds and the
    word's alignment score to 3 decimals. RFC 4180: CRLF line ends, and a field holding a
    comma, a quote or a line break is quoted (quotes doubled). A word starting like a
    formula (``=``, ``+``, ``-``, ``@``, tab, CR) starts with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("word", "start", "end", "confidence"))
    writer.writerows((_csv_cell(w.text), f"{w.start_s:.3f}", f"{w.end_s:.3f}",
                      f"{w.score:.3f}") for w in words)
    return out.getvalue()


# The one style: white text with a black outline and a soft shadow, bottom centre, on a
# 1920x1080 canvas (a renderer scales it to the video). Colours are &HAABBGGRR, 00 opaque.
ASS_STYLE = {
    "Name": "Default", "Fontname": "Arial", "Fontsize": "72",
    "PrimaryColour": "&H00FFFFFF", "SecondaryColour": "&H000000FF",
    "OutlineColour": "&H00000000", "BackColour": "&H80000000",
    "Bold": "0", "Italic": "0", "Underline": "0", "StrikeOut": "0",
    "ScaleX": "100", "ScaleY": "100", "Spacing": "0", "Angle": "0",
    "BorderStyle": "1", "Outline": "3", "Shadow": "1", "Alignment": "2",
    "MarginL": "80", "MarginR": "80", "MarginV": "60", "Encoding": "1",
}
ASS_HEADER = (
    "[Script Info]\n"
    "; Word timings from the F5-TTS worker's aligner\n"
    "ScriptType: v4.00+\n"
    "PlayResX: 1920\n"
    "PlayResY: 1080\n"
    "WrapStyle: 0\n"
    "ScaledBorderAndShadow: yes\n"
    "\n"
    "[V4+ Styles]\n"
    f"Format: {', '.join(ASS_STYLE)}\n"
    f"Style: {','.join(ASS_STYLE.values())}\n"
    "\n"
    "[Events]\n"
    "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)
def _ass_clock(cs: int) -> str:
    hours, rest = divmod(cs, 360_000)
    minutes, rest = divmod(rest, 6000)
    seconds, centis = divmod(rest, 100)
    return f"{hours}:{minutes:02d}:{seconds:02d}.{centis:02d}"


def to_ass(words: Sequence[Word], max_words: int = MAX_WORDS,
           max_cue_s: float = MAX_CUE_S) -> str:
    """Advanced SubStation Alpha (v4.00+): a 1920x1080 script with one Default style
    (white, outlined, bottom centre), then one ``Dialogue`` per cue, ``H:MM:SS.cc``. The
    cues are SRT's, timed in centiseconds: each lasts at least 1 cs and ends no later than the
    next starts (a cue that would have no centisecond of its own joins the one before)."""
    events = "".join(
        f"Dialogue: 0,{_ass_clock(start)},{_ass_clock(end)},Default,,0,0,0,,"
        f"{inert_text(text)}\n"
        for start, end, text in _timed(words, 100, max_words, max_cue_s))
    return ASS_HEADER + events


def render(words: Sequence[Word], fmt: str, **grouping: Any) -> str:
    if fmt == "srt":
        return to_srt(words, **grouping)
    if fmt == "vtt":
        return to_vtt(words, **grouping)
    if fmt == "json":
        return to_json(words)
    if fmt == "csv":
        return to_csv(words)
    if fmt == "ass":
        return to_ass(words, **grouping)
    raise ValueError(f"timing_format {fmt!r} is not one of {', '.join(FORMATS)}")


@dataclass(frozen=True)
class Timings:
    """One alignment of a text to its audio, to render in as many formats as asked."""

    words: tuple[Word, ...]

    @property
    def word_count(self) -> int:
        return len(self.words)

    @property
    def confidence(self) -> float:
        """The mean per-word alignment score, 0..1 (0.0 for no words)."""
        return confidence(self.words)

    def files(self, formats: Iterable[str], **grouping: Any) -> dict[str, tuple[str, str]]:
        """``{format: (content, mime type)}`` for each of ``formats``; raises
        :class:`ValueError` for a format not in :data:`FORMATS`."""
        return {fmt: (render(self.words, fmt, **grouping), MIME[fmt]) for fmt in formats}


def align_all(aligner: Aligner, wave: Any, sample_rate: int, text: str) -> Timings:
    """Aligns ``text`` to ``wave`` once; render it with :meth:`Timings.files`. Raises
    :class:`f5worker.aligner.AlignmentError` when the text cannot be aligned."""
    return Timings(tuple(aligner.align(wave, sample_rate, text)))


def timings_for(aligner: Aligner, wave: Any, sample_rate: int, text: str,
                fmt: str = "srt", **grouping: Any) -> tuple[str, str]:
    """The word timings of ``text`` spoken in ``wave``, as ``(content, mime type)``.
    Raises :class:`f5worker.aligner.AlignmentError` when the text cannot be aligned."""
    if fmt not in FORMATS:  # before the alignment, which costs GPU time
        raise ValueError(f"timing_format {fmt!r} is not one of {', '.join(FORMATS)}")
    return align_all(aligner, wave, sample_rate, text).files([fmt], **grouping)[fmt]
