"""The client's text stays text in the SRT, WebVTT and ASS files (issue 22), as the readers
that matter read them: FFmpeg's parsers (converting the file to ASS and to SRT), libass
(FFmpeg burning it into video) and pysubs2. No tag or override block comes alive, no cue
is lost, split or moved, and every character is shown: the payloads are the ones the
readers' source code makes live (FFmpeg's htmlsubtitles.c and srtdec.c, libass, pysubs2's
subrip.py and ssaevent.py).

FFmpeg is found as in test_subtitles_ass_burn.py: missing, it fails these tests in CI and
skips them elsewhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pysubs2
import pytest
import srt
from hypothesis import given, settings
from hypothesis import strategies as st

from f5worker.aligner import Word
from f5worker.handler import subtitles
from tests.f5worker.test_subtitles_ass_burn import HEIGHT, WIDTH, burn, find_ffmpeg

# What < > { } become: single angle quotation marks, medium curly bracket ornaments.
LT, GT, LB, RB = "\u2039", "\u203a", "\u2774", "\u2775"
WJ = subtitles.WORD_JOINER

# id: (the payload, as every reader shows it). A payload's words are its space-separated parts.
PAYLOADS = {
    # FFmpeg's SRT decoder turns <font> and <b> into ASS tags; pysubs2 turns <b> into {\b1}
    # and strips any other tag.
    "font-colour": ('<font color="#ff0000">x</font>',
                    f'{LT}font color="#ff0000"{GT}x{LT}/font{GT}'),
    "bold": ("<b>x</b>", f"{LT}b{GT}x{LT}/b{GT}"),
    "unknown-tag": ("<chips>", f"{LT}chips{GT}"),  # FFmpeg and pysubs2 drop it
    "br": ("a<br>b", f"a{LT}br{GT}b"),  # FFmpeg's \N
    # FFmpeg's SRT decoder passes {\an8} on and drops any other {\...}; libass, FFmpeg's ASS
    # parser and pysubs2 read an override block.
    "an8": ("{\\an8}x", f"{LB}\\an8{RB}x"),
    "colour": ("{\\c&H0000FF&}x", f"{LB}\\c&H0000FF&{RB}x"),
    "microdvd": ("{y:b}x", f"{LB}y:b{RB}x"),  # FFmpeg's SRT decoder drops a MicroDVD style
    "comment": ("{note}x", f"{LB}note{RB}x"),  # libass and pysubs2 drop a block
    # ASS's line break and hard space, outside any block (FFmpeg passes them on from SRT).
    "line-break": ("a\\Nb", f"a\\{WJ}Nb"),
    "soft-break": ("a\\nb", f"a\\{WJ}nb"),
    "hard-space": ("a\\hb", f"a\\{WJ}hb"),
    # A timing line: FFmpeg's SRT demuxer takes one with the arrow, pysubs2's SRT reader any
    # line with two timestamps, its WebVTT reader two MM:SS.mmm.
    "timing": ("00:00:01,000 --> 00:00:02,000",
               f"00:00{WJ}:01,000 --{GT} 00:00{WJ}:02,000"),
    "arrow": ("-->", f"--{GT}"),  # WebVTT's parser takes a line holding it for a timing line
    "two-stamps": ("00:00:01,000 00:00:02,000", f"00:00{WJ}:01,000 00:00{WJ}:02,000"),
    "vtt-timing": ("00:01.000 --> 00:02.000", f"00{WJ}:01.000 --{GT} 00{WJ}:02.000"),
}
FORMATS = ("srt", "vtt", "ass")
CASES = [pytest.param(fmt, key, id=f"{fmt}-{key}") for fmt in FORMATS for key in PAYLOADS]
# The payload's cue and one plain cue either side, in milliseconds.
CUES_MS = [(0, 400), (500, 1400), (1500, 1900)]


def words_around(payload: str) -> list[Word]:
    parts = payload.split()
    step = 0.9 / len(parts)
    return [Word("before.", 0.0, 0.4),
            *(Word(part, 0.5 + i * step, 0.5 + (i + 1) * step) for i, part in enumerate(parts)),
            Word("after.", 1.5, 1.9)]


def written(fmt: str, payload: str) -> str:
    # a cue of the payload's words alone: "after." would join it, as "before." ends a cue
    return subtitles.render(words_around(payload), fmt, max_words=len(payload.split()))


def shown_texts(key: str) -> list[str]:
    return ["before.", PAYLOADS[key][1], "after."]


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return find_ffmpeg("ass", "subtitles")


def test_the_mapping_is_the_documented_one() -> None:
    assert {key: subtitles.inert_text(payload) for key, (payload, _) in PAYLOADS.items()} == {
        key: shown for key, (_, shown) in PAYLOADS.items()}


@given(st.text(alphabet="<>{}\\Nnh:.,0123456789-& ab\n\u2028", max_size=60))
@settings(max_examples=300, deadline=None)
def test_no_markup_or_timestamp_survives_the_mapping(text: str) -> None:
    inert = subtitles.inert_text(text)
    assert not set("<>{}\n\u2028") & set(inert)
    assert not re.search(r"\\[Nnh]", inert)
    # pysubs2's SRT and WebVTT timestamps (pysubs2/time.py, formats/webvtt.py)
    assert not re.search(r"\d{1,2}:\d{1,2}:\d{1,2}[.,]\d", inert)
    assert not re.search(r"\d{2}:\d{2}\.\d{2}", inert)
    assert inert.replace(WJ, "").translate(
        {ord(LT): "<", ord(GT): ">", ord(LB): "{", ord(RB): "}"}) == re.sub(
            "\n|\u2028", " ", text)  # nothing lost: each character is itself or its look-alike


@given(st.lists(st.text(alphabet="abcXYZ019'\"&-.,!?;%$#@/|()[]é北", min_size=1),
                min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_ordinary_text_reads_back_unchanged_in_every_format(texts: list[str]) -> None:
    """Text with no markup character: pysubs2 reads back every word and time as given."""
    words = [Word(t, i * 0.5, i * 0.5 + 0.4) for i, t in enumerate(texts)]
    for fmt in FORMATS:
        subs = pysubs2.SSAFile.from_string(subtitles.render(words, fmt, max_words=1),
                                           format_=fmt)
        events = [e for e in subs.events if e.type == "Dialogue"]
        assert [(e.start, e.end) for e in events] == [(i * 500, i * 500 + 400)
                                                      for i in range(len(texts))], fmt
        read = [e.plaintext for e in events]
        assert read == (texts if fmt != "vtt" else [t.replace("&", "&amp;") for t in texts])


@pytest.mark.parametrize(("fmt", "key"), CASES)
def test_pysubs2_reads_each_payload_as_text(fmt: str, key: str) -> None:
    """Every cue and time as written, and the payload's text whole: no tag converted or
    stripped (pysubs2 decodes no WebVTT entity, so its ``&`` reads as ``&amp;``)."""
    subs = pysubs2.SSAFile.from_string(written(fmt, PAYLOADS[key][0]), format_=fmt)
    events = [e for e in subs.events if e.type == "Dialogue"]
    assert [(e.start, e.end) for e in events] == CUES_MS
    expected = shown_texts(key)
    if fmt == "vtt":
        expected = [t.replace("&", "&amp;") for t in expected]
    assert [e.plaintext for e in events] == expected
    assert [e.text for e in events] == expected  # no override block, nothing to strip


def ffmpeg_convert(ffmpeg: str, subs: str, fmt: str, out: str, tmp_path: Path) -> str:
    (tmp_path / f"in.{fmt}").write_text(subs, encoding="utf-8")
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", f"in.{fmt}", f"out.{out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return (tmp_path / f"out.{out}").read_text(encoding="utf-8")


@pytest.mark.parametrize(("fmt", "key"), CASES)
def test_ffmpeg_converts_each_payload_as_text(ffmpeg: str, tmp_path: Path, fmt: str,
                                              key: str) -> None:
    """FFmpeg's demuxer, decoder and ASS parser (``ff_ass_split``, for the SRT encoder) keep
    every cue, its times and its text, and make no override tag of it."""
    subs = written(fmt, PAYLOADS[key][0])
    dialogue = [line.split(",", 9)[9] for line in
                ffmpeg_convert(ffmpeg, subs, fmt, "ass", tmp_path).splitlines()
                if line.startswith("Dialogue:")]
    assert dialogue == shown_texts(key)
    assert not any("{" in text or re.search(r"\\[Nnh]", text) for text in dialogue)
    cues = list(srt.parse(ffmpeg_convert(ffmpeg, subs, fmt, "srt", tmp_path)))
    ms = [(c.start.total_seconds() * 1000, c.end.total_seconds() * 1000) for c in cues]
    assert [(round(a), round(b)) for a, b in ms] == CUES_MS
    expected = shown_texts(key)
    if fmt == "ass":  # FFmpeg's SRT encoder writes the style's size, a tag of its own
        expected = [f'<font size="{subtitles.ASS_STYLE["Fontsize"]}">{text}</font>'
                    for text in expected]
    assert [c.content for c in cues] == expected


# --- libass, through FFmpeg's burn-in ---

PAYLOAD_FRAMES = range(5, 14)  # the payload's cue lasts [0.5 s, 1.4 s)


def rgb(frame: bytes) -> np.ndarray:
    return np.frombuffer(frame, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3).astype(int)


def lit(frame: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The rows and the columns holding a drawn (bright) pixel."""
    bright = rgb(frame).max(axis=2) > 128
    return np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))


def red_pixels(frame: bytes) -> int:
    pixel = rgb(frame)
    return int(((pixel[..., 0] > 128) & (pixel[..., 1:].max(axis=2) < 96)).sum())


def extent(indices: np.ndarray) -> int:
    return int(indices[-1] - indices[0] + 1) if len(indices) else 0


def burn_rgb(ffmpeg: str, subs: str, fmt: str, tmp_path: Path) -> list[bytes]:
    frames, stderr = burn(ffmpeg, subs, tmp_path, seconds=2.0, name=f"subs.{fmt}",
                          pix_fmt="rgb24")
    assert stderr == ""  # no parse error, no glyph missing from the fonts
    assert len(frames[0]) == WIDTH * HEIGHT * 3
    return frames


@pytest.fixture(scope="module")
def plain_x(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Per format, the frame showing the plain word ``x`` in the payload's place."""
    return {fmt: burn_rgb(ffmpeg, written(fmt, "x"), fmt,
                          tmp_path_factory.mktemp(fmt))[9] for fmt in FORMATS}


@pytest.mark.parametrize(("fmt", "key"), CASES)
def test_libass_draws_each_payload_as_text(ffmpeg: str, tmp_path: Path,
                                           plain_x: dict[str, bytes], fmt: str,
                                           key: str) -> None:
    """Drawn while its cue lasts, white (no colour tag), at the bottom (no ``\\an8``), on
    one line (no ``\\N``), and wider than a lone ``x`` (its markup characters drawn)."""
    frames = burn_rgb(ffmpeg, written(fmt, PAYLOADS[key][0]), fmt, tmp_path)
    assert [i for i in range(4, 15) if len(lit(frames[i])[0])] == list(PAYLOAD_FRAMES)
    frame = frames[9]
    (rows, columns), (x_rows, x_columns) = lit(frame), lit(plain_x[fmt])
    assert red_pixels(frame) == 0
    assert rows[0] > HEIGHT // 2
    assert extent(rows) < 2 * extent(x_rows) + 4  # an x's height, plus ascenders
    assert extent(columns) > 1.5 * extent(x_columns)


def test_the_payloads_are_live_when_written_raw(ffmpeg: str, tmp_path: Path) -> None:
    """What today's SRT did (the payload as given): red, at the top, or gone. Shows the
    checks above can tell live markup from text."""
    def raw(payload: str) -> str:
        return ("1\n00:00:00,000 --> 00:00:00,400\nbefore.\n\n"
                f"2\n00:00:00,500 --> 00:00:01,400\n{payload}\n\n"
                "3\n00:00:01,500 --> 00:00:01,900\nafter.\n\n")
    assert raw("x") == written("srt", "x")
    red = burn_rgb(ffmpeg, raw(PAYLOADS["font-colour"][0]), "srt", tmp_path)[9]
    assert red_pixels(red) > 0
    top = burn_rgb(ffmpeg, raw(PAYLOADS["an8"][0]), "srt", tmp_path)[9]
    assert lit(top)[0][-1] < HEIGHT // 2
    gone = burn_rgb(ffmpeg, raw(PAYLOADS["timing"][0]), "srt", tmp_path)
    assert not any(len(lit(frame)[0]) for frame in gone[5:14])
