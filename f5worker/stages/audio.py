"""audio: proves the audio stack decodes before a request needs it.

torchaudio 2.9 decodes every file through torchcodec, which must match torch's minor
version and needs FFmpeg's shared libraries; when either is wrong F5-TTS fails at request
time, or produces silence. So the versions are compared against known pairings, and a
small known WAV is decoded through ``torchaudio.load`` (the call F5-TTS makes on every
reference) and compared with what was written.
"""

from __future__ import annotations

import math
import shutil
import struct
import tempfile
import wave
from pathlib import Path
from typing import Any

from bootstrap.kernel.context import Context
from bootstrap.kernel.message import Message, error, warning
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed
from f5worker.exit_codes import F5ExitCode

# torch minor -> the torchcodec minors built against it (torchcodec's compatibility table).
TORCHCODEC_FOR_TORCH = {"2.8": ("0.6", "0.7"), "2.9": ("0.8", "0.9"), "2.10": ("0.10",)}
PACKAGES = ("torch", "torchaudio", "torchcodec")
RATE, SECONDS, HZ = 24000, 0.25, 440.0

E001 = error("audio.E001", "torchcodec {torchcodec} does not work with torch {torch}",
             "pip install 'torchcodec=={want}.*' (pip picks a newer one by default)")
E002 = error("audio.E002", "torchcodec {torchcodec} cannot load its libraries",
             "install FFmpeg's shared libraries (apt-get install ffmpeg); the cause lists "
             "what failed")
E003 = error("audio.E003", "decoding a known WAV with torchaudio.load failed",
             "the cause is the decoder's error; FFmpeg and torchcodec are the usual suspects")
E004 = error("audio.E004", "torchaudio {torchaudio} does not match torch {torch}",
             "install the same minor of both, e.g. torch==2.9.1 with torchaudio==2.9.1")
E005 = error("audio.E005", "{package} is not installed in the worker's environment",
             "install the f5 extra (pip install '.[f5]')")
E006 = error("audio.E006", "a known WAV decoded wrong: {why}",
             "the decoder returns bad samples; reinstall torchcodec and FFmpeg")
W001 = warning("audio.W001", "the ffmpeg/ffprobe programs are not on PATH",
               "pydub needs them for anything but PCM WAV; apt-get install ffmpeg")


def _minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def versions() -> dict[str, str | None]:
    import importlib.metadata  # here, not at the top: the boot pays for every module import

    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def version_problems(found: dict[str, str | None]) -> list[Message]:
    problems = [E005.at(name, package=name) for name in PACKAGES if not found[name]]
    if problems:
        return problems
    torch, torchaudio, codec = (str(found[n]) for n in PACKAGES)
    if _minor(torchaudio) != _minor(torch):
        problems.append(E004.at("torchaudio", torchaudio=torchaudio, torch=torch))
    allowed = TORCHCODEC_FOR_TORCH.get(_minor(torch))
    if allowed and _minor(codec) not in allowed:
        problems.append(E001.at("torchcodec", torchcodec=codec, torch=torch, want=allowed[-1]))
    return problems


def check(ctx: Context) -> list[Message]:
    found = version_problems(versions())
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        found.append(W001.at("PATH"))
    return found


def write_known_wav(path: Path) -> list[int]:
    """A 440 Hz tone as 16-bit PCM; returns the samples written."""
    samples = [int(12000 * math.sin(2 * math.pi * HZ * i / RATE))
               for i in range(int(RATE * SECONDS))]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return samples


def _decode(path: Path) -> tuple[Any, int]:
    try:
        import torchaudio
    except Exception as exc:
        raise StageFailed(E003.at("torchaudio"), cause=f"{type(exc).__name__}: {exc}") from exc
    return torchaudio.load(str(path))  # type: ignore[no-any-return]


def _ffmpeg_versions() -> dict[str, Any]:
    from torchcodec._core import get_ffmpeg_library_versions

    return dict(get_ffmpeg_library_versions())


def run(ctx: Context) -> Outcome:
    found = versions()
    facts: dict[str, Any] = {"versions": found}
    problems = version_problems(found)
    if problems:
        raise StageFailed(problems[0])
    codec = str(found["torchcodec"])
    try:
        facts["ffmpeg"] = _ffmpeg_versions()
    except Exception as exc:  # torchcodec raises RuntimeError listing every library tried
        raise StageFailed(E002.at("torchcodec", torchcodec=codec),
                          cause=f"{type(exc).__name__}: {exc}"[:2000]) from exc
    with tempfile.TemporaryDirectory(prefix="bootstrap-audio-") as tmp:
        path = Path(tmp) / "known.wav"
        written = write_known_wav(path)
        try:
            audio, rate = _decode(path)
        except StageFailed:
            raise
        except Exception as exc:
            raise StageFailed(E003.at(path), cause=f"{type(exc).__name__}: {exc}"[:2000]) from exc
    why = None
    if rate != RATE:
        why = f"sample rate {rate}, wrote {RATE}"
    elif tuple(audio.shape) != (1, len(written)):
        why = f"shape {tuple(audio.shape)}, wrote (1, {len(written)})"
    else:
        worst = float((audio[0] * 32768 - audio.new_tensor(written)).abs().max())
        if worst > 2:
            why = f"samples differ by up to {worst:.0f} LSB"
    if why:
        raise StageFailed(E006.at("torchaudio.load", why=why))
    facts["decoded"] = {"rate": rate, "frames": len(written)}
    return Outcome(facts=facts, messages=check(ctx)[len(problems):])


STAGE = Stage(name="audio", run=run, check=check, side=Side.WORKER, exit_code=F5ExitCode.AUDIO,
              deadline_s=120)
