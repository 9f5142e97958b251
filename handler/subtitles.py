"""Word timings as subtitles: SRT, WebVTT, or JSON, from the aligner's words.

Words are grouped into cues the way a reader takes them in: at most ``max_words`` words
and ``max_cue_s`` seconds per cue, and a cue ends after sentence punctuation
(``words_per_cue=1`` gives one cue per word). Times are whole milliseconds. A cue's end is
kept at least 1 ms after its start: WebVTT requires end > start, and a word the aligner
could not place may have no length.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bootstrap.aligner import Aligner, Word

FORMATS = ("srt", "vtt", "json")
MIME = {"srt": "application/x-subrip", "vtt": "text/vtt", "json": "application/json"}
MAX_WORDS = 7
MAX_CUE_S = 4.0
SENTENCE_END = (".", "!", "?", ";", ":", "…", "。", "！", "？")


def cues(words: Sequence[Word], max_words: int = MAX_WORDS,
         max_cue_s: float = MAX_CUE_S) -> list[tuple[int, int, str]]:
    """``(start_ms, end_ms, text)`` per cue, in order; a cue never starts before the one
    before it ends, and lasts at least 1 ms (WebVTT wants end > start)."""
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
    out: list[tuple[int, int, str]] = []
    for group in groups:
        start, end = round(group[0].start_s * 1000), round(group[-1].end_s * 1000)
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


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def to_srt(words: Sequence[Word], **grouping: Any) -> str:
    """SubRip: cues numbered from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line
    after each cue."""
    return "".join(f"{number}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n\n"
                   for number, (start, end, text) in enumerate(cues(words, **grouping), 1))


def _vtt_text(text: str) -> str:
    # Cue text is markup: & and < start entities and tags, and "-->" may not appear.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(words: Sequence[Word], **grouping: Any) -> str:
    """WebVTT: the ``WEBVTT`` header, a blank line, then cues with ``HH:MM:SS.mmm``."""
    body = "".join(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{_vtt_text(text)}\n\n"
                   for start, end, text in cues(words, **grouping))
    return f"WEBVTT\n\n{body}"


def to_json(words: Sequence[Word]) -> str:
    """``[{"word", "start", "end"}]``, seconds to the millisecond, one entry per word."""
    return json.dumps([{"word": w.text, "start": round(w.start_s, 3), "end": round(w.end_s, 3)}
                       for w in words], ensure_ascii=False)


def render(words: Sequence[Word], fmt: str, **grouping: Any) -> str:
    if fmt == "srt":
        return to_srt(words, **grouping)
    if fmt == "vtt":
        return to_vtt(words, **grouping)
    if fmt == "json":
        return to_json(words)
    raise ValueError(f"timing_format {fmt!r} is not one of {', '.join(FORMATS)}")


def timings_for(aligner: Aligner, wave: Any, sample_rate: int, text: str,
                fmt: str = "srt", **grouping: Any) -> tuple[str, str]:
    """The word timings of ``text`` spoken in ``wave``, as ``(content, mime type)``.
    Raises :class:`bootstrap.aligner.AlignmentError` when the text cannot be aligned."""
    if fmt not in FORMATS:  # before the alignment, which costs GPU time
        raise ValueError(f"timing_format {fmt!r} is not one of {', '.join(FORMATS)}")
    return render(aligner.align(wave, sample_rate, text), fmt, **grouping), MIME[fmt]
