"""A reference clip, decoded once, by one decoder, straight to what the model uses.

The model conditions on mono float32 samples at its own rate. F5-TTS's own loader resamples
with a windowed-sinc filter whose size follows the ratio of the two rates reduced by their
greatest common divisor: 48001 Hz to 24000 Hz has a ratio of 48001/24000, and the filter
asked for 9.2 GB in one allocation. Here FFmpeg's resampler (swresample, through
torchcodec) converts while decoding; its filter bank has a fixed number of phases, so its
cost does not depend on how odd the rate is. The source's rate must still lie in
``MIN_RATE``..``MAX_RATE``: below, there is no speech band left to clone; above, there is
no microphone.

A clip is decoded only up to the length the model uses: a few kilobytes of compressed
silence can declare hours of audio, and decoding all of it would take gigabytes. A long
clip is refused, or, with ``clip_long`` (the replaced worker's rule), cut to its middle
``CLIP_TO_S`` seconds when it lasts over ``CLIP_OVER_S``: only that middle is decoded, and
each cut is moved to the quietest 20 ms within half a second, so it falls between words
where the clip has a pause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_RATE = 8_000
MAX_RATE = 192_000
CLIP_OVER_S = 10.0
CLIP_TO_S = 8.0
CUT_SEARCH_S = 0.5  # how far a cut may move to find a quiet spot
# What is decoded of a clip whose header declares no length (its middle cannot be found
# without decoding all of it): one running past this is refused. 600 s of 8-channel
# 192 kHz FLAC took 6.3 s to decode; 30 s takes a twentieth of that.
NO_LENGTH_S = 30.0


class ClipRefused(ValueError):
    """The clip cannot serve as a reference; ``str()`` is what the client reads."""


@dataclass(frozen=True)
class Clip:
    """Mono float32 samples at ``rate``, and what was learnt decoding them."""

    samples: Any  # numpy float32, one dimension
    rate: int
    source_rate: int
    loudness_dbfs: float
    trimmed: bool = False
    original_s: float | None = None  # the clip's length before it was trimmed

    @property
    def seconds(self) -> float:
        return float(len(self.samples) / self.rate)


def loudness_dbfs(samples: Any) -> float:
    """RMS level in dB relative to full scale (0 dBFS is a full-scale square wave)."""
    import numpy as np

    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return -math.inf if rms == 0 else 20 * math.log10(rms)


def decode(source: bytes | Path, rate: int, *, min_seconds: float, max_seconds: float,
           min_dbfs: float, clip_long: bool = False) -> Clip:
    """``source`` (the bytes of any container FFmpeg reads, or a file) as a :class:`Clip`
    at ``rate``; :class:`ClipRefused` when it does not decode, its rate is outside
    ``MIN_RATE``..``MAX_RATE``, it is shorter than ``min_seconds``, longer than
    ``max_seconds`` (from the header when it says so, else after decoding at most half a
    second more; with ``clip_long``, a clip over ``CLIP_OVER_S`` is cut to its middle
    instead), or quieter than ``min_dbfs`` (the model's loudness normalisation divides
    by the clip's level: silence becomes a full-scale constant signal)."""
    from torchcodec.decoders import AudioDecoder

    try:
        decoder = AudioDecoder(str(source) if isinstance(source, Path) else source,
                               sample_rate=rate, num_channels=1)
        meta = decoder.metadata
        source_rate = int(meta.sample_rate or 0)
        if not MIN_RATE <= source_rate <= MAX_RATE:
            raise ClipRefused(f"has a sample rate of {source_rate} Hz; {MIN_RATE}-{MAX_RATE} "
                              "Hz is accepted")
        declared = meta.duration_seconds
        if clip_long and declared is not None and declared > CLIP_OVER_S:
            # Only the middle, with room on each side to move the cuts.
            start = max(0.0, declared / 2 - CLIP_TO_S / 2 - CUT_SEARCH_S)
            audio = decoder.get_samples_played_in_range(start,
                                                        start + CLIP_TO_S + 2 * CUT_SEARCH_S)
        elif declared is not None and declared > max_seconds + 0.05:
            raise _too_long(declared, max_seconds)
        else:
            audio = decoder.get_samples_played_in_range(
                0.0, (NO_LENGTH_S if clip_long else max_seconds) + 0.5)
    except ClipRefused:
        raise
    except Exception as exc:  # decoders raise RuntimeError, ValueError, ... on bad bytes
        raise ClipRefused(f"is not decodable audio ({type(exc).__name__})") from None
    samples = audio.data.reshape(-1).numpy().astype("float32")
    if samples.size == 0:
        raise ClipRefused("holds no audio samples")
    if declared is None and samples.size / rate > NO_LENGTH_S:
        raise ClipRefused(f"declares no length in its header and lasts over {NO_LENGTH_S:g} "
                          "s; send a clip whose header gives its length, or a shorter one")
    original = declared if declared is not None else samples.size / rate
    trimmed = clip_long and original > CLIP_OVER_S
    if trimmed:
        samples = middle(samples, rate)
    seconds = samples.size / rate
    if seconds > max_seconds + 0.05:
        raise _too_long(None, max_seconds)
    if seconds < min_seconds:
        raise ClipRefused(f"is {seconds:.2f} s; at least {min_seconds:g} s is needed")
    level = loudness_dbfs(samples)
    if level < min_dbfs:
        shown = "-inf" if level == -math.inf else f"{level:.1f}"
        raise ClipRefused(f"is silent or nearly so ({shown} dBFS RMS; at least {min_dbfs:g} "
                          "dBFS is needed)")
    return Clip(samples, rate, source_rate, level, trimmed,
                round(original, 3) if trimmed else None)


def middle(samples: Any, rate: int) -> Any:
    """The middle ``CLIP_TO_S`` seconds of ``samples``, each cut moved to the quietest
    20 ms within ``CUT_SEARCH_S`` of where it would fall."""
    want = int(CLIP_TO_S * rate)
    if samples.size <= want:
        return samples
    start = (samples.size - want) // 2
    return samples[_quietest(samples, rate, start):_quietest(samples, rate, start + want)]


def _quietest(samples: Any, rate: int, at: int) -> int:
    import numpy as np

    frame = max(1, int(0.02 * rate))
    reach = int(CUT_SEARCH_S * rate)
    low, high = max(0, at - reach), min(samples.size - frame, at + reach)
    if high <= low:
        return at
    starts = np.arange(low, high, frame // 2 or 1)
    energy = [float(np.mean(np.square(samples[i:i + frame], dtype=np.float64)))
              for i in starts]
    return int(starts[int(np.argmin(energy))]) + frame // 2


def _too_long(seconds: float | None, max_seconds: float) -> ClipRefused:
    # Clipping the audio but not its text garbles the output; refusing is honest.
    length = f"{seconds:.1f} s" if seconds is not None else f"over {max_seconds:g} s"
    return ClipRefused(f"is {length}; the model uses at most {max_seconds:g} s; it was "
                       "rejected, not trimmed: send a shorter clip with the text spoken in it")


def of_voice(path: Path, rate: int, max_seconds: float = 12.0) -> Clip:
    """A stored voice for the warm-up and the benches: decoded as a job's reference is,
    its loudness left to whoever judges the output."""
    return decode(path, rate, min_seconds=0.0, max_seconds=max_seconds, min_dbfs=-math.inf)
