"""Audio in and out of a job: a reference decoded for the model, the result encoded.

A reference is decoded once, by one decoder (``f5worker.refclip``: FFmpeg through
torchcodec, resampling as it decodes), into what the model uses; every container FFmpeg
reads is accepted. Its refusals name the field the client filled.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from f5worker import refclip
from f5worker.handler.inputs import InputError, Limits
from f5worker.refclip import Clip


def reference(source: bytes | Path, limits: Limits, rate: int,
              field: str = "ref_audio") -> Clip:
    """``source`` as mono samples at ``rate``; an :class:`InputError` naming ``field``
    when it does not decode, or its rate, length or loudness is outside the limits."""
    try:
        return refclip.decode(source, rate, min_seconds=limits.min_ref_seconds,
                              max_seconds=limits.max_ref_seconds,
                              min_dbfs=limits.min_ref_dbfs, clip_long=limits.clip_long)
    except refclip.ClipRefused as exc:
        raise InputError(field, str(exc)) from None


def encode(wave: Any, rate: int, fmt: str) -> bytes:
    """``wave`` (float samples in -1..1) as a 16-bit WAV or a FLAC file."""
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    samples = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    soundfile.write(buffer, samples, rate, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def seconds_of(path: Path) -> float | None:
    """The length of a stored voice from its header; None when it cannot be read."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:  # a broken file is listed without a length, not a failed listing
        return None
    return round(info.frames / info.samplerate, 3) if info.samplerate else None
