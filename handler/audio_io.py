"""Audio in and out of a job: measuring a reference, encoding the result.

A reference is decoded with torchcodec, the decoder ``torchaudio.load`` (which F5-TTS calls
on it) uses in torchaudio 2.9, so a file that passes here is one the model can read. It is
decoded only up to the length the model uses: a few kilobytes of compressed silence can
declare hours of audio, and decoding all of it as float32 would take gigabytes.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from handler.inputs import InputError, Limits


def reference_seconds(path: Path, limits: Limits) -> float:
    """The length of the reference at ``path``; an :class:`InputError` if it won't decode
    or its length is outside the limits."""
    samples, rate = load_mono(path, limits)
    return float(len(samples) / rate)


def encode(wave: Any, rate: int, fmt: str) -> bytes:
    """``wave`` (float samples in -1..1) as a 16-bit WAV or a FLAC file."""
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    samples = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    soundfile.write(buffer, samples, rate, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def load_mono(path: Path, limits: Limits) -> tuple[Any, int]:
    """The audio at ``path`` as mono float32 samples and its rate; an :class:`InputError`
    naming ``ref_audio`` when it does not decode, holds nothing, is shorter than
    ``limits.min_ref_seconds`` or lasts longer than ``limits.max_ref_seconds`` (refused
    from the header when it says so, else after decoding at most half a second more)."""
    from torchcodec.decoders import AudioDecoder

    max_seconds = limits.max_ref_seconds
    try:
        decoder = AudioDecoder(str(path), num_channels=1)
        declared = decoder.metadata.duration_seconds
        if declared is not None and declared > max_seconds + 0.05:
            raise _too_long(declared, max_seconds)
        audio = decoder.get_samples_played_in_range(0.0, max_seconds + 0.5)
    except InputError:
        raise
    except Exception as exc:  # decoders raise RuntimeError, ValueError, ... on bad bytes
        raise InputError("ref_audio", f"is not decodable audio ({type(exc).__name__})") from None
    rate = int(audio.sample_rate)
    samples = audio.data.reshape(-1).numpy().astype("float32")
    if samples.size == 0 or rate <= 0:
        raise InputError("ref_audio", "holds no audio samples")
    if samples.size / rate > max_seconds + 0.05:
        raise _too_long(None, max_seconds)
    if samples.size / rate < limits.min_ref_seconds:
        raise InputError("ref_audio", f"is {samples.size / rate:.2f} s; at least "
                         f"{limits.min_ref_seconds:g} s is needed")
    return samples, rate


def _too_long(seconds: float | None, max_seconds: float) -> InputError:
    # Clipping the audio but not its text garbles the output; refusing is honest.
    length = f"{seconds:.1f} s" if seconds is not None else f"over {max_seconds:g} s"
    return InputError("ref_audio", f"is {length}; the model uses at most {max_seconds:g} s; "
                      "it was rejected, not trimmed: send a shorter clip with the text "
                      "spoken in it")


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
