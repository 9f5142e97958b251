"""The ASS timings burnt into video by FFmpeg's ``ass`` filter (libass, what FFmpeg, mpv and
VLC render with): the file loads without a complaint, each cue is drawn while it lasts and
not after, and braces and backslashes are drawn as text, not read as markup. Every injection
payload, in SRT and WebVTT too, is in test_subtitles_injection.py.

In CI (``CI=true``) a missing ffmpeg or ``ass`` filter fails these tests; elsewhere they
skip, saying why (scripts/system-packages.sh installs ffmpeg, which brings libass)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from f5worker.aligner import Word
from f5worker.handler import subtitles

IN_CI = os.environ.get("CI", "").lower() == "true"
WIDTH, HEIGHT, FPS = 320, 240, 10


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def find_ffmpeg(*filters: str) -> str:
    """The ffmpeg with each of ``filters``; fails in CI or skips, saying why, without."""
    found = shutil.which("ffmpeg")
    if found is None:
        _missing("ffmpeg is not installed (scripts/system-packages.sh ffmpeg)")
        raise AssertionError  # unreachable: _missing fails or skips
    listed = subprocess.run([found, "-hide_banner", "-filters"], capture_output=True,
                            text=True, check=True, timeout=60).stdout
    names = {line.split()[1] for line in listed.splitlines() if len(line.split()) > 1}
    for name in filters:
        if name not in names:
            _missing(f"this ffmpeg has no {name!r} filter (built without libass)")
    return found


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return find_ffmpeg("ass")


def burn(ffmpeg: str, subs: str, tmp_path: Path, seconds: float = 2.0,
         frames: int | None = None, name: str = "subs.ass",
         pix_fmt: str = "gray") -> tuple[list[bytes], str]:
    """Renders ``subs`` (written to ``name``) over black video, one frame per 1/FPS s, and
    returns the frames and FFmpeg's stderr (at warning level: libass's complaints show
    there). An ``.ass`` file goes through the ``ass`` filter, any other through
    ``subtitles`` (FFmpeg's decoder turns it into ASS for libass); the video is in
    ``pix_fmt`` throughout, so libass blends in it."""
    (tmp_path / name).write_text(subs, encoding="utf-8")
    count = frames if frames is not None else round(seconds * FPS)
    draw = f"ass={name}" if name.endswith(".ass") else f"subtitles={name}"
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "warning", "-f", "lavfi",
         "-i", f"color=c=black:s={WIDTH}x{HEIGHT}:r={FPS}:d={seconds}",
         "-vf", f"format={pix_fmt},{draw}", "-frames:v", str(count),
         "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        cwd=tmp_path, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    size = len(result.stdout) // count
    assert size * count == len(result.stdout) and size % (WIDTH * HEIGHT) == 0
    video = result.stdout
    return [video[i:i + size] for i in range(0, len(video), size)], result.stderr.decode()


def lit_rows(frame: bytes) -> list[int]:
    """The rows holding a drawn (bright) pixel."""
    return [y for y in range(HEIGHT) if max(frame[y * WIDTH:(y + 1) * WIDTH]) > 128]


def with_text(ass: str, text: str) -> str:
    """``ass`` with its one Dialogue's text replaced, unescaped (the control case)."""
    head, _, _ = ass.rpartition(",,")
    return f"{head},,{text}\n"


def test_ffmpeg_burns_the_timings_into_video_without_a_complaint(
        ffmpeg: str, tmp_path: Path) -> None:
    words = [Word("Hello,", 0.0, 0.3), Word("{world}", 0.3, 0.5), Word("C:\\New", 0.5, 0.6),
             Word('"café",', 0.6, 0.8), Word("naïve", 0.8, 0.9), Word("Ωμέγα", 0.9, 1.0),
             Word("привет.", 1.0, 1.2)]
    ass = subtitles.to_ass(words, max_words=2)
    (tmp_path / "subs.ass").write_text(ass, encoding="utf-8")
    # The command of the issue, as is.
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i",
         f"color=c=black:s={WIDTH}x{HEIGHT}:d=2", "-vf", "ass=subs.ass", "-frames:v", "30",
         "-f", "null", "-"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    frames, stderr = burn(ffmpeg, ass, tmp_path)
    assert stderr == ""  # no warning either: no parse error, no missing glyph
    cue_ends = [end for _, end, _ in subtitles._timed(words, 100, 2, subtitles.MAX_CUE_S)]
    assert cue_ends[-1] == 120
    for index, frame in enumerate(frames):  # frame i shows t = i / FPS
        drawn = bool(lit_rows(frame))
        assert drawn == (index * 100 // FPS < cue_ends[-1]), f"frame {index}"


def test_each_cue_is_drawn_only_while_it_lasts(ffmpeg: str, tmp_path: Path) -> None:
    words = [Word("one.", 0.2, 0.5), Word("two.", 1.0, 1.3)]
    frames, stderr = burn(ffmpeg, subtitles.to_ass(words), tmp_path)
    assert stderr == ""
    drawn = [index for index, frame in enumerate(frames) if lit_rows(frame)]
    assert drawn == [2, 3, 4, 10, 11, 12]  # [0.2, 0.5) and [1.0, 1.3) at 10 frames a second


def test_braces_are_drawn_not_read_as_an_override_block(ffmpeg: str, tmp_path: Path) -> None:
    ass = subtitles.to_ass([Word("{b}", 0.0, 1.0)])
    # Issue 22 changed the escape: look-alike braces, since libass's \{b\} is an override
    # block to pysubs2 and FFmpeg's own ASS parser.
    assert ass.endswith(",,\u2774b\u2775\n")
    frames, stderr = burn(ffmpeg, ass, tmp_path, seconds=0.1)
    assert stderr == "" and lit_rows(frames[0])
    # Unescaped, "{b}" is a comment in an override block and nothing is drawn: the check
    # above can tell the two apart.
    bare, _ = burn(ffmpeg, with_text(ass, "{b}"), tmp_path, seconds=0.1)
    assert not lit_rows(bare[0])


def test_a_backslash_before_n_is_drawn_not_read_as_a_line_break(
        ffmpeg: str, tmp_path: Path) -> None:
    ass = subtitles.to_ass([Word("C:\\New", 0.0, 1.0)])
    one_line, _ = burn(ffmpeg, subtitles.to_ass([Word("CNew", 0.0, 1.0)]), tmp_path, 0.1)
    frames, stderr = burn(ffmpeg, ass, tmp_path, seconds=0.1)
    assert stderr == ""
    height = len(lit_rows(one_line[0]))
    assert height and abs(len(lit_rows(frames[0])) - height) <= 2
    # Unescaped, \N breaks the line: twice the height, which the check above would catch.
    bare, _ = burn(ffmpeg, with_text(ass, "C:\\New"), tmp_path, seconds=0.1)
    assert len(lit_rows(bare[0])) > 1.5 * height
