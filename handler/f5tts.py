"""The F5-TTS RunPod handler: one job in, one action, one answer.

The serve stage calls :func:`make_handler` with the boot's context (the model is in
``ctx.state["model"]``) and hands the result to ``runpod.serverless.start``. A job's
``action`` picks what it does: ``synthesize`` (the default: audio with the warm model),
or ``add_voice``, ``list_voices``, ``delete_voice`` (the voice library, handler/voice_jobs).
A synthesis may add word timings (the aligner the model stage loaded), and its files go
back inline or, with a bucket configured, as URLs (handler/outputs).
A job never takes the worker down: a bad input is answered ``{"error": "<field>: <problem>"}``
and an unexpected failure ``{"error": "<action> failed: ..."}`` that names no path or
address (the event in the log has the detail). Every job runs within a budget
(handler/budget): a deadline, checked between chunks, and a bound on the audio it may make,
checked on the synthesis plan before any compute. The client's text is never logged: its
length and a hash are. References are decoded in memory; the one temp file (silence
removal) lives in a temp directory removed whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap import events, f5
from bootstrap.context import Context
from bootstrap.f5 import F5Model
from bootstrap.refclip import Clip
from bootstrap.storage import Storage, StorageError
from bootstrap.voices import VoiceLibrary, library
from handler import audio_io, outputs, refaudio, voice_jobs
from handler.budget import Budget, BudgetExceeded
from handler.inputs import InputError, Limits, Request, action, parse
from handler.outputs import OutputRefused
from handler.refaudio import Fetch

Job = dict[str, Any]


def _progress(job: Job) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        update = {"chunks_done": done, "chunks": total}
        events.emit("info", "job.progress", job_id=job.get("id"), **update)
        # Only the platform has somewhere to send it; locally the SDK would fail in a thread.
        if total > 1 and os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"):
            import runpod

            runpod.serverless.progress_update(job, update)

    return report


def _reference(request: Request, library: VoiceLibrary, limits: Limits, fetch: Fetch,
               rate: int) -> tuple[Clip, str, dict[str, Any]]:
    """The reference decoded at the model's rate, its text, and what the response says
    about it."""
    if request.voice:
        # Read with its audio in one go: another job may replace or delete it meanwhile.
        found = library.read(request.voice)
        if found is None:
            names = list(library.all())
            known = ", ".join(names[:20]) + (f", ... ({len(names)} in all; list_voices "
                                             "lists them)" if len(names) > 20 else "")
            raise InputError("voice", f"unknown voice {request.voice!r} "
                             f"(available: {known or 'none'})")
        voice, data = found
        # Voices placed by hand were never checked; added ones were, and pass again.
        clip = audio_io.reference(data, limits, rate, field="voice")
        return clip, voice.text, {"voice": voice.name}
    data = refaudio.body(request.ref_audio, request.ref_url, limits, fetch)
    clip = audio_io.reference(data, limits, rate)
    return clip, request.ref_text, {"ref_audio_s": round(clip.seconds, 3), "trimmed": False}


@dataclass(frozen=True)
class Services:
    """What a job may use: built once by :func:`make_handler` from the boot's context."""

    model: F5Model
    library: VoiceLibrary
    limits: Limits
    fetch: Fetch
    aligner: Any  # bootstrap.aligner.Aligner when timings are on, else None
    storage: Storage | None  # set by the storage stage when a bucket is configured
    keep: Path | None  # local mode: answers are also written here


def _timings(aligner: Any, wave: Any, rate: int,
             request: Request) -> tuple[str, str] | str:
    """The word timings of the result as (content, mime type), or why there are none: the
    audio is already made, and a text the aligner cannot read (no Latin letters) is no
    reason to throw it away."""
    from bootstrap.aligner import AlignmentError
    from handler.subtitles import timings_for

    started = time.monotonic()
    try:
        timings = timings_for(aligner, wave, rate, request.text, request.timing_format)
    except AlignmentError as exc:
        return str(exc)
    events.emit("info", "job.aligned", seconds=round(time.monotonic() - started, 3))
    return timings


def _synthesize(job: Job, svc: Services, budget: Budget) -> dict[str, Any]:
    request = parse(job.get("input"), svc.limits)
    model = svc.model
    if request.return_word_timings and svc.aligner is None:
        raise InputError("return_word_timings", "word timings are off on this worker; its "
                         "operator turns them on with BOOTSTRAP_TIMINGS=1")
    if request.store and svc.storage is None:
        raise InputError("store", "no storage is configured on this worker (BUCKET_* "
                         "variables); omit store to get the result inline")
    rate = model.sample_rate
    clip, ref_text, reference = _reference(request, svc.library, svc.limits, svc.fetch, rate)
    plan = f5.plan(len(clip.samples), ref_text, request.text, request.speed, rate)
    budget.admit(plan)  # before any compute, with or without a store
    if not svc.storage:  # with a store, a long answer goes there instead
        _refuse_oversized(plan, svc.limits)
    events.emit("info", "job.planned", chunks=len(plan.chunks),
                audio_s=round(plan.seconds, 3), text_chars=len(request.text),
                text_sha256=hashlib.sha256(request.text.encode()).hexdigest()[:16])
    started = time.monotonic()
    wave, seed = model.synthesize(clip.samples, ref_text, plan, nfe_step=request.nfe_step,
                                  cfg_strength=request.cfg_strength, speed=request.speed,
                                  seed=request.seed, progress=_progress(job),
                                  between=budget.check)
    elapsed = time.monotonic() - started
    if request.remove_silence:
        wave = _without_silence(wave, rate)
    audio = audio_io.encode(wave, rate, request.format)
    audio_name = f"audio.{request.format}"
    files = {audio_name: (audio, f"audio/{request.format}")}
    timing_fields: dict[str, Any] = {}
    if request.return_word_timings:
        budget.check(len(plan.chunks), len(plan.chunks))
        timings = _timings(svc.aligner, wave, rate, request)
        if isinstance(timings, str):
            timing_fields["timings_error"] = timings
        else:
            files[f"timings.{request.timing_format}"] = (timings[0].encode(), timings[1])
            timing_fields["timing_format"] = request.timing_format
    if svc.keep is not None:
        _keep(svc.keep, str(job.get("id")), files)
    seconds = len(wave) / rate
    result = {"format": request.format, "sample_rate": rate,
              "duration_s": round(seconds, 3), "seed": seed, "reference": reference,
              "rtf": round(elapsed / seconds, 4) if seconds else None}
    result.update(_delivered(files, audio_name, job, request, svc))
    result.update(timing_fields)
    return result


def _delivered(files: dict[str, tuple[bytes, str]], audio_name: str, job: Job,
               request: Request, svc: Services) -> dict[str, Any]:
    """The audio and timings as response fields: inline (``audio`` base64, ``timings``
    text) or stored (``audio_url``, ``timings_url``), as handler/outputs decides."""
    fields = outputs.fields(files, svc.storage, svc.limits.max_result_bytes,
                            str(job.get("id") or ""), inline_when_small=request.store is False)
    timing_name = next((name for name in files if name != audio_name), None)
    if timing_name is not None:
        if "files" in fields:  # inline: subtitles are text, so they travel as text
            fields["timings"] = files[timing_name][0].decode()
            del fields["files"]
        if "file_urls" in fields:
            fields["timings_url"] = fields.pop("file_urls")[timing_name]
    return fields


def _refuse_oversized(plan: f5.Plan, limits: Limits) -> None:
    """Refuses, before any compute, a job whose answer would exceed the platform's limit
    (16-bit samples, base64 makes 4 bytes of every 3)."""
    size = sum(plan.samples) * 2 * 4 // 3
    if size > limits.max_result_bytes:
        raise InputError("text", f"the audio would be about {size / 2**20:.2f} MB, over the "
                         f"{limits.max_result_bytes / 2**20:.2f} MB the platform returns; "
                         "split the text over several jobs")


def _without_silence(wave: Any, rate: int) -> Any:
    import soundfile
    from f5_tts.infer.utils_infer import remove_silence_for_generated_wav

    with tempfile.TemporaryDirectory(prefix="f5tts-job-") as tmp:
        path = Path(tmp) / "generated.wav"
        soundfile.write(path, wave, rate)
        with contextlib.redirect_stdout(sys.stderr):  # it prints; stdout carries events
            remove_silence_for_generated_wav(str(path))
        trimmed, _ = soundfile.read(path, dtype="float32")
    return trimmed


def _keep(folder: Path, job_id: str, files: dict[str, tuple[bytes, str]]) -> None:
    name = outputs.safe_id(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    for file, (data, _) in files.items():
        path = folder / f"{name}.{file.partition('.')[2]}"
        path.write_bytes(data)
        events.emit("info", "job.written", path=str(path))


def _voice_action(name: str, job_input: Any, svc: Services) -> Job:
    if name == "add_voice":
        return voice_jobs.add(svc.library, job_input, svc.limits, svc.model.sample_rate,
                              svc.fetch)
    if name == "list_voices":
        return voice_jobs.list_all(svc.library, job_input)
    return voice_jobs.delete(svc.library, job_input)


def make_handler(ctx: Context, limits: Limits | None = None,
                 fetch: Fetch = refaudio.fetch) -> Callable[[Job], Job]:
    """The job function for ``runpod.serverless.start``. ``fetch`` gets reference audio
    from a URL; tests pass one that trusts their local HTTPS server."""
    model = ctx.state.get("model")
    if not isinstance(model, F5Model):
        raise RuntimeError("no warm model in ctx.state['model']: the model stage must run "
                           "before serve")
    # The SDK logs every job's whole output at DEBUG, its default: megabytes of base64 per
    # job on stdout. The serve stage imports it after this factory, so this still applies.
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    svc = Services(
        model=model, fetch=fetch, library=library(ctx.config),
        limits=limits or Limits(job_timeout_s=ctx.config.job_timeout_s,
                                max_audio_s=ctx.config.job_max_audio_s),
        aligner=ctx.state.get("aligner"),  # loaded by the model stage when timings are on
        storage=ctx.state.get("storage"),
        # On a developer machine the answer is also kept as a file: the demo's proof.
        keep=ctx.config.volume / "outputs" if ctx.config.mode == "local" else None)

    def handler(job: Job) -> Job:
        budget = Budget(svc.limits)
        job_id = job.get("id") if isinstance(job, dict) else None
        name = "synthesize"
        try:
            if not isinstance(job, dict):
                raise InputError("input", "the job must be an object")
            name = action(job.get("input"))
            if name != "synthesize":
                result = _voice_action(name, job.get("input"), svc)
                events.emit("info", "job.done", job_id=job_id, action=name)
                return result
            result = _synthesize(job, svc, budget)
        except InputError as exc:
            events.emit("info", "job.refused", job_id=job_id, field=exc.field, error=str(exc))
            return {"error": str(exc)}
        except (OutputRefused, BudgetExceeded) as exc:  # named, with their ids
            events.emit("error", "job.failed", job_id=job_id, action=name, error=str(exc))
            return {"error": str(exc)}
        except StorageError as exc:
            # The store's message names its endpoint and bucket: for the log, not the client.
            events.emit("error", "job.failed", job_id=job_id, action=name, error=str(exc),
                        cause=exc.cause)
            return {"error": f"{exc.id}: the result could not be stored; the worker's log "
                             f"has the cause (job {_shown_id(job_id)})"}
        except Exception as exc:  # the worker serves the next job whatever this one did
            # The exception's text can hold temp paths and internal addresses: the event
            # keeps it (redacted, like every event), the client gets its type only.
            events.emit("error", "job.failed", job_id=job_id, action=name,
                        error=f"{type(exc).__name__}: {exc}"[:2000])
            what = "synthesis" if name == "synthesize" else name
            return {"error": f"{what} failed: an internal error ({type(exc).__name__}); the "
                             f"worker's log has the details (job {_shown_id(job_id)})"}
        events.emit("info", "job.done", job_id=job_id, duration_s=result["duration_s"],
                    rtf=result["rtf"], stored="audio_url" in result)
        return result

    return handler


def _shown_id(job_id: Any) -> str:
    return outputs.safe_id(str(job_id)) if job_id is not None else "without id"
