"""warmup: one real synthesis with a stored voice before the first request.

A model can load and still produce garbage: NaN from a bad kernel, silence from a broken
vocoder or a zeroed checkpoint, or run on another device than intended. The warm-up's
output must be finite and audible, made on the chosen device; its real-time factor
(seconds of compute per second of audio) is reported. It also pays the first-call costs
(kernel selection, allocator growth) so the first client does not.

With transcription on, the same voice is transcribed once too: the recognizer is proven
end to end (a tokenizer that loads but cannot decode fails here, not on a client's job),
and its first-call costs are paid at boot as well.
"""

from __future__ import annotations

import time
from typing import Any

from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from bootstrap.kernel.message import Message, error
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed
from bootstrap.stages.cuda import DEVICE
from f5worker import refclip, settings, state, voices
from f5worker.exit_codes import F5ExitCode

TEXT = "The quick brown fox jumps over the lazy dog."
MIN_RMS = 1e-4  # about -80 dBFS: below this the output is silence

E001 = error("warmup.E001", "no voice {voice!r} to warm up with",
             "store {voice}.wav and {voice}.txt in the voices directory, or set "
             "BOOTSTRAP_WARMUP_VOICE")
E002 = error("warmup.E002", "the warm-up synthesis failed",
             "the cause is F5-TTS's own error")
E003 = error("warmup.E003", "the warm-up output is not finite ({bad} NaN/inf samples)",
             "a bad kernel or half precision on this GPU; the cause says where")
E004 = error("warmup.E004", "the warm-up output is silent (RMS {rms:.2e})",
             "a zeroed or wrong checkpoint or vocoder; check the model stage's files")
E005 = error("warmup.E005", "the model is on {found}, not on the chosen {device}",
             "the model must be placed explicitly; this is a bug in the model stage")
E006 = error("warmup.E006", "no model is loaded; the model stage must run before warmup",
             "keep model before warmup in the pipeline")
E007 = error("warmup.E007", "the warm-up transcription of voice {voice!r} failed: {why}",
             "check the recognition model's files (asr_dir), or BOOTSTRAP_TRANSCRIBE=0 "
             "(then every job must send ref_text)")


def check(ctx: Context) -> list[Message]:
    return []


def _device_of(model: Any) -> str:
    return str(next(model.model.parameters()).device)


def run(ctx: Context) -> Outcome:
    own = settings.of(ctx.config)
    import numpy as np

    model = state.of(ctx).model
    if model is None:
        raise StageFailed(E006.at("model"))
    device = str(DEVICE.get(ctx) or model.device)
    found = _device_of(model)
    # torch names the first GPU "cuda:0" when asked for "cuda"; compare the type and index.
    if found.split(":")[0] != device.split(":")[0] or (":" in device and found != device):
        raise StageFailed(E005.at(found, found=found, device=device))
    library = voices.library(ctx.config)
    voice = library.get(own.warmup_voice)
    if voice is None:
        name = own.warmup_voice
        raise StageFailed(E001.at(name, voice=name), cause=f"voices: {sorted(library.all())}")
    started = time.monotonic()
    try:
        # The library has no bucket yet (storage runs after warmup): a voice is a file.
        assert voice.audio is not None, "only bucket voices have no file"
        clip = refclip.of_voice(voice.audio, model.sample_rate)
        wave, _ = model.synthesize(clip.samples, voice.text, TEXT,
                                   nfe_step=own.warmup_nfe, seed=0)
    except Exception as exc:
        raise StageFailed(E002.at(voice.name), cause=f"{type(exc).__name__}: {exc}") from exc
    elapsed = time.monotonic() - started
    samples = np.asarray(wave, dtype=np.float64)
    bad = int((~np.isfinite(samples)).sum())
    if bad or samples.size == 0:
        raise StageFailed(E003.at(device, bad=bad))
    rms = float(np.sqrt(np.mean(samples**2)))
    if rms < MIN_RMS:
        raise StageFailed(E004.at(device, rms=rms))
    seconds = samples.size / model.sample_rate
    facts: dict[str, object] = {
        "device": device, "voice": voice.name, "nfe_step": own.warmup_nfe,
        "audio_s": round(seconds, 3), "compute_s": round(elapsed, 3),
        "rtf": round(elapsed / seconds, 4), "rms": round(rms, 5)}
    recognizer = state.of(ctx).transcriber
    if recognizer is not None:
        started = time.monotonic()
        try:
            heard = recognizer.transcribe(clip.samples, clip.rate)
        except Exception as exc:  # TranscriptionError, or ValueError on a bad clip
            raise StageFailed(E007.at(voice.name, voice=voice.name, why=exc),
                              cause=f"{type(exc).__name__}: {exc}") from exc
        # Its length only: the text is the voice's, not worth a log line.
        facts["transcription"] = {"compute_s": round(time.monotonic() - started, 3),
                                  "chars": len(heard)}
    events.emit("info", "warmup.done", **facts)
    return Outcome(facts=facts)


STAGE = Stage(name="warmup", run=run, check=check, side=Side.WORKER,
              exit_code=F5ExitCode.WARMUP, deadline_s=300)
