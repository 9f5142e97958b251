"""The F5-TTS RunPod handler: one job in, one action, one answer.

The serve stage calls :func:`make_handler` with the boot's context (the model is in
``ctx.state["model"]``) and hands the result to ``runpod.serverless.start``. A job's
``action`` picks what it does: ``synthesize`` (the default: audio with the warm model),
or ``add_voice``, ``list_voices``, ``delete_voice`` (the voice library, handler/voice_jobs).
A job never takes the worker down: a bad input is answered ``{"error": "<field>: <problem>"}``
and an unexpected failure ``{"error": "<action> failed: ..."}``, with an event in the log.
Each job works in its own temp directory, removed whatever happens.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootstrap import events
from bootstrap.context import Context
from bootstrap.f5 import F5Model, expected_samples
from handler import audio_io, refaudio, voice_jobs
from handler.inputs import InputError, Limits, Request, action, parse
from handler.voices import VoiceLibrary

Job = dict[str, Any]
Fetch = Callable[[str, int, float], bytes]  # (url, max bytes, timeout s) -> body


def _progress(job: Job) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        update = {"chunks_done": done, "chunks": total}
        events.emit("info", "job.progress", job_id=job.get("id"), **update)
        # Only the platform has somewhere to send it; locally the SDK would fail in a thread.
        if total > 1 and os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"):
            import runpod

            runpod.serverless.progress_update(job, update)

    return report


def _reference(request: Request, library: VoiceLibrary, tmp: Path, limits: Limits,
               fetch: Fetch) -> tuple[Path, str, dict[str, Any]]:
    """The reference WAV path, its text, and what the response says about it."""
    if request.voice:
        # Read with its audio in one go: another job may replace or delete it meanwhile.
        found = library.read(request.voice)
        if found is None:
            known = ", ".join(library.all()) or "none"
            raise InputError("voice", f"unknown voice {request.voice!r} (available: {known})")
        voice, audio = found
        copy = tmp / "voice.wav"
        copy.write_bytes(audio)
        return copy, voice.text, {"voice": voice.name}
    data = request.ref_audio
    if data is None:
        assert request.ref_url
        data = fetch(request.ref_url, limits.max_ref_bytes, limits.fetch_timeout_s)
    path = tmp / "reference"
    path.write_bytes(data)
    seconds = audio_io.reference_seconds(path)
    if seconds > limits.max_ref_seconds:
        # Clipping the audio but not its text garbles the output; refusing is honest.
        raise InputError("ref_audio", f"is {seconds:.1f} s; the model uses at most "
                         f"{limits.max_ref_seconds:g} s; it was rejected, not trimmed: send "
                         "a shorter clip with the text spoken in it")
    if seconds < limits.min_ref_seconds:
        raise InputError("ref_audio", f"is {seconds:.2f} s; at least "
                         f"{limits.min_ref_seconds:g} s is needed")
    return path, request.ref_text, {"ref_audio_s": round(seconds, 3), "trimmed": False}


def _timings(aligner: Any, wave: Any, rate: int, request: Request) -> dict[str, Any]:
    """The word timings of the result, or why there are none: the audio is already made,
    and a text the aligner cannot read (no Latin letters) is no reason to throw it away."""
    from bootstrap.aligner import AlignmentError
    from handler.subtitles import timings_for

    started = time.monotonic()
    try:
        content, _ = timings_for(aligner, wave, rate, request.text, request.timing_format)
    except AlignmentError as exc:
        return {"timings_error": str(exc)}
    events.emit("info", "job.aligned", seconds=round(time.monotonic() - started, 3))
    return {"timings": content, "timing_format": request.timing_format}


def _synthesize(job: Job, model: F5Model, library: VoiceLibrary, limits: Limits,
                fetch: Fetch, aligner: Any) -> dict[str, Any]:
    request = parse(job.get("input"), limits)
    if request.return_word_timings and aligner is None:
        raise InputError("return_word_timings", "word timings are off on this worker; its "
                         "operator turns them on with BOOTSTRAP_TIMINGS=1")
    with tempfile.TemporaryDirectory(prefix="f5tts-job-") as tmp:
        ref_wav, ref_text, reference = _reference(request, library, Path(tmp), limits, fetch)
        _refuse_oversized(request, ref_wav, ref_text, model.sample_rate, limits)
        started = time.monotonic()
        wave, seed = model.synthesize(ref_wav, ref_text, request.text,
                                      nfe_step=request.nfe_step,
                                      cfg_strength=request.cfg_strength, speed=request.speed,
                                      seed=request.seed, progress=_progress(job))
        elapsed = time.monotonic() - started
        if request.remove_silence:
            wave = _without_silence(wave, model.sample_rate, Path(tmp))
    audio = base64.b64encode(audio_io.encode(wave, model.sample_rate, request.format))
    if len(audio) > limits.max_result_bytes:
        raise InputError("text", f"the audio is {len(audio) / 2**20:.2f} MB, over the "
                         f"{limits.max_result_bytes / 2**20:.2f} MB the platform returns; "
                         "split the text over several jobs")
    seconds = len(wave) / model.sample_rate
    result = {"audio": audio.decode(), "format": request.format,
              "sample_rate": model.sample_rate, "duration_s": round(seconds, 3), "seed": seed,
              "reference": reference, "rtf": round(elapsed / seconds, 4) if seconds else None}
    if request.return_word_timings:
        result.update(_timings(aligner, wave, model.sample_rate, request))
    return result


def _refuse_oversized(request: Request, ref_wav: Path, ref_text: str, rate: int,
                      limits: Limits) -> None:
    """Refuses, before any compute, a job whose answer would exceed the platform's limit
    (16-bit samples, base64 makes 4 bytes of every 3)."""
    import soundfile

    info = soundfile.info(str(ref_wav))
    ref_samples = int(info.frames * rate / info.samplerate)
    samples = expected_samples(ref_samples, ref_text, request.text, request.speed)
    size = samples * 2 * 4 // 3
    if size > limits.max_result_bytes:
        raise InputError("text", f"the audio would be about {size / 2**20:.2f} MB, over the "
                         f"{limits.max_result_bytes / 2**20:.2f} MB the platform returns; "
                         "split the text over several jobs")


def _without_silence(wave: Any, rate: int, tmp: Path) -> Any:
    import soundfile
    from f5_tts.infer.utils_infer import remove_silence_for_generated_wav

    path = tmp / "generated.wav"
    soundfile.write(path, wave, rate)
    remove_silence_for_generated_wav(str(path))
    trimmed, _ = soundfile.read(path, dtype="float32")
    return trimmed


def _keep(folder: Path, job_id: str, result: Job) -> None:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in job_id)[:80] or "job"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.{result['format']}"
    path.write_bytes(base64.b64decode(result["audio"]))
    events.emit("info", "job.written", path=str(path))


def _voice_action(name: str, library: VoiceLibrary, job_input: Any, limits: Limits,
                  fetch: Fetch) -> Job:
    if name == "add_voice":
        return voice_jobs.add(library, job_input, limits, fetch)
    if name == "list_voices":
        return voice_jobs.list_all(library, job_input)
    return voice_jobs.delete(library, job_input)


def make_handler(ctx: Context, limits: Limits | None = None,
                 fetch: Fetch = refaudio.fetch) -> Callable[[Job], Job]:
    """The job function for ``runpod.serverless.start``. ``fetch`` gets reference audio
    from a URL; tests pass one that trusts their local HTTPS server."""
    model = ctx.state.get("model")
    if not isinstance(model, F5Model):
        raise RuntimeError("no warm model in ctx.state['model']: the model stage must run "
                           "before serve")
    limits = limits or Limits()
    # The SDK logs every job's whole output at DEBUG, its default: megabytes of base64 per
    # job on stdout. The serve stage imports it after this factory, so this still applies.
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    # On a developer machine the answer is also kept as a file: the demo's proof.
    keep = ctx.config.volume / "outputs" if ctx.config.mode == "local" else None

    library = VoiceLibrary(ctx.config.on_volume(ctx.config.model_voices),
                           ctx.config.voices_bundled)
    aligner = ctx.state.get("aligner")  # loaded by the model stage when timings are on

    def handler(job: Job) -> Job:
        job_id = job.get("id") if isinstance(job, dict) else None
        name = "synthesize"
        try:
            if not isinstance(job, dict):
                raise InputError("input", "the job must be an object")
            name = action(job.get("input"))
            if name != "synthesize":
                result = _voice_action(name, library, job.get("input"), limits, fetch)
                events.emit("info", "job.done", job_id=job_id, action=name)
                return result
            result = _synthesize(job, model, library, limits, fetch, aligner)
        except InputError as exc:
            events.emit("info", "job.refused", job_id=job_id, field=exc.field, error=str(exc))
            return {"error": str(exc)}
        except Exception as exc:  # the worker serves the next job whatever this one did
            events.emit("error", "job.failed", job_id=job_id, action=name,
                        error=f"{type(exc).__name__}: {exc}"[:500])
            what = "synthesis" if name == "synthesize" else name
            return {"error": f"{what} failed: {type(exc).__name__}: {exc}"[:500]}
        events.emit("info", "job.done", job_id=job_id, duration_s=result["duration_s"],
                    rtf=result["rtf"])
        if keep is not None:
            _keep(keep, str(job_id), result)
        return result

    return handler
