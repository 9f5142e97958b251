"""Audio in and out of a job: measuring a reference, encoding the result.

A reference is decoded with ``torchaudio.load``, the call F5-TTS itself makes on it, so a
file that passes here is one the model can read.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from handler.inputs import InputError


def reference_seconds(path: Path) -> float:
    """The length of the reference at ``path``; an :class:`InputError` if it won't decode."""
    samples, rate = load_mono(path)
    return float(len(samples) / rate)


def encode(wave: Any, rate: int, fmt: str) -> bytes:
    """``wave`` (float samples in -1..1) as a 16-bit WAV or a FLAC file."""
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    samples = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    soundfile.write(buffer, samples, rate, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def load_mono(path: Path) -> tuple[Any, int]:
    """The audio at ``path`` as mono float32 samples and its rate; an :class:`InputError`
    naming ``ref_audio`` when it does not decode or holds nothing."""
    import torchaudio

    try:
        audio, rate = torchaudio.load(str(path))
    except Exception as exc:  # decoders raise RuntimeError, ValueError, ... on bad bytes
        raise InputError("ref_audio", f"is not decodable audio ({type(exc).__name__})") from None
    if audio.numel() == 0 or rate <= 0:
        raise InputError("ref_audio", "holds no audio samples")
    return audio.mean(dim=0).numpy().astype("float32"), int(rate)


def loudness_dbfs(samples: Any) -> float:
    """RMS level in dB relative to full scale (0 dBFS is a full-scale square wave)."""
    import numpy as np

    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return -math.inf if rms == 0 else 20 * math.log10(rms)


def wav_seconds(path: Path) -> float | None:
    """The length of a stored voice from its header; None when it cannot be read."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:  # a broken file is listed without a length, not a failed listing
        return None
    return round(info.frames / info.samplerate, 3) if info.samplerate else None
