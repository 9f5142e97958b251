"""A reference is decoded once, by one decoder (FFmpeg through torchcodec), whatever its
container: each clip here is made by the real ``ffmpeg`` in the test, then decoded into what
the model uses, and spoken from by the real handler. Long clips are cut to their middle."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bootstrap.kernel.context import Context
from f5worker import refclip
from f5worker.handler import audio_io, f5tts
from f5worker.handler.inputs import InputError, Limits

CONTAINERS = {  # file name -> ffmpeg's output options
    "clip.wav": ["-c:a", "pcm_s16le"],
    "clip.flac": ["-c:a", "flac"],
    "clip.mp3": ["-c:a", "libmp3lame", "-b:a", "96k"],
    "clip.ogg": ["-c:a", "libopus", "-b:a", "48k"],
    "clip.opus": ["-c:a", "libopus", "-b:a", "48k"],
    "clip.m4a": ["-c:a", "aac", "-b:a", "96k"],
}


def made_by_ffmpeg(folder: Path, name: str, options: list[str], seconds: float = 3.0,
                   rate: int = 44100) -> bytes:
    """A voice-like clip (a 150 Hz buzz whose loudness pulses 4 times a second)."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is part of the audio stack (scripts/system-packages.sh)"
    source = (f"aevalsrc=0.3*sin(2*PI*150*t)*(0.55+0.45*sin(2*PI*4*t))"
              f":s={rate}:d={seconds}")
    path = folder / name
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
                    *options, str(path)], check=True)
    return path.read_bytes()


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_every_container_ffmpeg_reads_decodes_to_the_models_rate(tmp_path: Path,
                                                                 name: str) -> None:
    data = made_by_ffmpeg(tmp_path, name, CONTAINERS[name])
    clip = audio_io.reference(data, Limits(), 24000)
    assert clip.rate == 24000 and clip.source_rate in (44100, 48000)  # Opus is 48 kHz
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert abs(clip.seconds - 3.0) < 0.1
    assert -20 < clip.loudness_dbfs < -8 and not clip.trimmed


def test_an_m4a_clip_is_spoken_from_by_the_handler(booted: Context, tmp_path: Path) -> None:
    """AAC in MP4 was refused before: soundfile, one of three decoders then, cannot read
    it."""
    data = made_by_ffmpeg(tmp_path, "clip.m4a", CONTAINERS["clip.m4a"])
    handler = f5tts.make_handler(booted)
    answer: dict[str, Any] = handler({"id": "m4a", "input": {
        "text": "From an M4A clip.", "ref_audio": base64.b64encode(data).decode(),
        "ref_text": "A buzzing tone.", "nfe_step": 2}})
    assert "audio" in answer, answer
    reference = answer["reference"]
    assert not reference["trimmed"] and abs(reference["ref_audio_s"] - 3.0) < 0.1  # AAC pads


def test_a_12_s_clip_is_cut_to_its_middle_8_s_at_quiet_points(tmp_path: Path) -> None:
    data = made_by_ffmpeg(tmp_path, "long.wav", CONTAINERS["clip.wav"], seconds=12.0)
    clip = audio_io.reference(data, Limits(), 24000)
    assert clip.trimmed and clip.original_s == 12.0
    assert abs(clip.seconds - refclip.CLIP_TO_S) <= 2 * refclip.CUT_SEARCH_S
    # The loudness pulses 4 times a second, quietest at each pulse's trough: each cut
    # lands within 20 ms of one, where the clip is far quieter than on average.
    edge = np.sqrt(np.mean(np.square(clip.samples[:240])))
    assert edge < 0.5 * np.sqrt(np.mean(np.square(clip.samples)))


def test_with_clipping_off_a_12_s_clip_is_refused(tmp_path: Path) -> None:
    data = made_by_ffmpeg(tmp_path, "long.wav", CONTAINERS["clip.wav"], seconds=12.0)
    with pytest.raises(InputError, match=r"is 12\.0 s; the model uses at most 11\.9 s"):
        audio_io.reference(data, Limits(clip_long=False, max_ref_seconds=11.9), 24000)
