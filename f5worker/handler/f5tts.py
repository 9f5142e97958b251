"""The F5-TTS RunPod handler: one job in, one action, one answer.

The serve stage calls :func:`make_handler` with the boot's context (the model is in
``F5State.model``) and hands the result to ``runpod.serverless.start``. A job's
``action`` picks what it does: ``synthesize`` (the default: audio with the warm model),
or ``add_voice``, ``list_voices``, ``delete_voice`` (the voice library, handler/voice_jobs).
A synthesis may add word timings (the aligner the model stage loaded), and its files go
back inline or, with a bucket configured, as URLs (f5worker/handler/outputs).
A job never takes the worker down: a bad input is answered ``{"error": "<field>: <problem>"}``
and an unexpected failure ``{"error": "<action> failed: ..."}`` that names no path or
address (the event in the log has the detail). Every job runs within a budget
(f5worker/handler/budget): a deadline, checked between chunks, and a bound on the audio it may make,
checked on the synthesis plan before any compute. The client's text is never logged: its
length and a hash are. References are decoded in memory; the one temp file (silence
removal) lives in a temp directory removed whatever happens.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootstrap.kernel import events, redaction
from bootstrap.kernel.context import Context
from bootstrap.stages.storage import STORAGE
from bootstrap.storage import StorageError
from f5worker import settings, state
from f5worker.bucket_voices import BucketVoices
from f5worker.f5 import F5Model
from f5worker.handler import audio_io, outputs, refaudio, seed, seed_inputs, speech, voice_jobs
from f5worker.handler.budget import Budget, BudgetExceeded
from f5worker.handler.inputs import InputError, Limits, Request, action, parse
from f5worker.handler.outputs import OutputRefused
from f5worker.handler.refaudio import Fetch
from f5worker.handler.speech import Services
from f5worker.transcripts import TranscriptCache
from f5worker.voices import library

Job = dict[str, Any]


def _timings(aligner: Any, wave: Any, rate: int, request: Request) -> Job | str:
    """The word timings of the result as answer fields and a file, or why there are none:
    the audio is already made, and a text the aligner cannot read (no Latin letters) is no
    reason to throw it away."""
    from f5worker.aligner import AlignmentError
    from f5worker.handler.subtitles import align_all

    started = time.monotonic()
    try:
        timings = align_all(aligner, wave, rate, request.text)
    except AlignmentError as exc:
        return str(exc)
    events.emit("info", "job.aligned", seconds=round(time.monotonic() - started, 3))
    content, mime = timings.files([request.timing_format])[request.timing_format]
    return {"file": (content.encode(), mime), "word_count": timings.word_count,
            "timing_confidence": round(timings.confidence, 3)}


def checked(job_input: Any, svc: Services) -> Request:
    """The synthesis request, refused before any compute when this worker cannot honour
    it (timings without the aligner, a store without storage)."""
    request = parse(job_input, svc.limits)
    if request.return_word_timings:
        speech.require_aligner(svc)
    if request.store and svc.storage is None:
        raise InputError("store", "no storage is configured on this worker (BUCKET_* "
                         "variables); omit store to get the result inline")
    return request


def _synthesize(job: Job, svc: Services, budget: Budget) -> dict[str, Any]:
    request = checked(job.get("input"), svc)
    return answer(job, svc, budget, request, speech.speak(request, svc, budget, job))


def answer(job: Job, svc: Services, budget: Budget, request: Request,
           spoken: speech.Spoken) -> dict[str, Any]:
    """The answer to a synthesis once its audio is made: the file, the timings, where
    they went (f5worker/handler/streaming's final message is the same)."""
    rate = svc.model.sample_rate
    wave, seed, plan = spoken.wave, spoken.seed, spoken.plan
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
            files[f"timings.{request.timing_format}"] = timings.pop("file")
            timing_fields.update(timing_format=request.timing_format, **timings)
    if svc.keep is not None:
        _keep(svc.keep, str(job.get("id")), files)
    seconds = len(wave) / rate
    result = {"format": request.format, "sample_rate": rate,
              "duration_s": round(seconds, 3), "seed": seed, "reference": spoken.reference,
              "rtf": round(spoken.elapsed_s / seconds, 4) if seconds else None}
    result.update(_delivered(files, audio_name, job, request, svc))
    result.update(timing_fields)
    return result


def _delivered(files: dict[str, tuple[bytes, str]], audio_name: str, job: Job,
               request: Request, svc: Services) -> dict[str, Any]:
    """The audio and timings as response fields: inline (``audio`` base64, ``timings``
    text) or stored (``audio_url``, ``timings_url``), as f5worker/handler/outputs decides."""
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


# What a failed store operation could not do, in the client's words.
STORE_VERBS = {"upload": "write", "read": "read", "head": "read", "list": "list",
               "delete": "delete"}


def _storage_failed(exc: StorageError) -> str:
    """What is true: the operation that failed and the key as stored (never the endpoint
    or the bucket), not "the result could not be stored" for a read or a listing."""
    if exc.op == "upload" and "/voices/" not in f"/{exc.key}":
        return "the result could not be stored"  # true: a job's result was being written
    verb = STORE_VERBS.get(exc.op, exc.op or "use")
    what = f" {exc.key}" if exc.key else ""
    return f"the bucket could not {verb}{what}"


def services(ctx: Context, limits: Limits | None = None,
             fetch: Fetch = refaudio.fetch) -> Services:
    """What every job may use, from the boot's context (the model stage's warm model)."""
    model = state.of(ctx).model
    if not isinstance(model, F5Model):
        raise RuntimeError("no warm model in ctx.app_state: the model stage must run "
                           "before serve")
    # The SDK logs every job's whole output at DEBUG, its default: megabytes of base64 per
    # job on stdout. The serve stage imports it after this factory, so this still applies.
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    storage = STORAGE.get(ctx)  # set by the storage stage when a bucket is configured
    return Services(
        model=model, fetch=fetch,
        library=library(ctx.config, BucketVoices(storage) if storage else None),
        limits=limits or Limits.of(ctx.config),
        transcriber=state.of(ctx).transcriber,  # loaded by the model stage when on
        transcripts=TranscriptCache.of(ctx.config) if state.of(ctx).transcriber else None,
        aligner=state.of(ctx).aligner,  # loaded by the model stage when timings are on
        storage=storage,
        # On a developer machine the answer is also kept as a file: the demo's proof.
        keep=ctx.config.volume / "outputs" if ctx.config.mode == "local" else None)


def make_handler(ctx: Context, limits: Limits | None = None,
                 fetch: Fetch = refaudio.fetch) -> Callable[[Job], Any]:
    """The job function for ``runpod.serverless.start``. ``fetch`` gets reference audio
    from a URL; tests pass one that trusts their local HTTPS server. With the ``stream``
    setting it is a generator (f5worker/handler/streaming)."""
    svc = services(ctx, limits, fetch)
    handler = answering(svc)
    if settings.of(ctx.config).stream:
        from f5worker.handler import streaming

        return streaming.handler(svc, handler)
    return handler


def answering(svc: Services) -> Callable[[Job], Job]:
    """The job function of a queue endpoint: one job in, one answer."""
    def handler(job: Job) -> Job:
        budget = Budget(svc.limits)
        job_id = job.get("id") if isinstance(job, dict) else None
        name = "synthesize"
        try:
            if not isinstance(job, dict):
                raise InputError("input", "the job must be an object")
            if seed_inputs.is_seed(job.get("input")):  # the replaced worker's dialect
                name, result = seed.handle(job, svc, budget)
                events.emit("info", "job.done", job_id=job_id, action=f"seed.{name}")
                return result
            name = action(job.get("input"))
            if name != "synthesize":
                result = _voice_action(name, job.get("input"), svc)
                events.emit("info", "job.done", job_id=job_id, action=name)
                return result
            result = _synthesize(job, svc, budget)
        except Exception as exc:  # the worker serves the next job whatever this one did
            return failure(exc, job_id, name)
        events.emit("info", "job.done", job_id=job_id, duration_s=result["duration_s"],
                    rtf=result["rtf"], stored="audio_url" in result)
        return result

    return handler


def failure(exc: Exception, job_id: Any, name: str) -> Job:
    """The answer to a job that raised ``exc``, logged: a refusal names its field or its
    id; an unexpected failure its type only."""
    if isinstance(exc, InputError):
        events.emit("info", "job.refused", job_id=job_id, field=exc.field, error=str(exc))
        return _refusal(str(exc))
    if isinstance(exc, (OutputRefused, BudgetExceeded)):  # named, with their ids
        events.emit("error", "job.failed", job_id=job_id, action=name, error=str(exc))
        return _refusal(str(exc))
    if isinstance(exc, StorageError):
        # The store's message names its endpoint and bucket: for the log, not the client.
        events.emit("error", "job.failed", job_id=job_id, action=name, error=str(exc),
                    cause=exc.cause)
        return _refusal(f"{exc.id}: {_storage_failed(exc)}; the worker's log has the "
                        f"cause (job {_shown_id(job_id)})")
    # The exception's text can hold temp paths and internal addresses: the event
    # keeps it (redacted, like every event), the client gets its type only.
    events.emit("error", "job.failed", job_id=job_id, action=name,
                error=f"{type(exc).__name__}: {exc}"[:2000])
    what = "synthesis" if name == "synthesize" else name
    return _refusal(f"{what} failed: an internal error ({type(exc).__name__}); the "
                    f"worker's log has the details (job {_shown_id(job_id)})")


def _refusal(error: str) -> Job:
    """The answer to a job that failed: its text passes the redactor, as every event does
    (a refusal may quote what the client sent, or the worker's own settings)."""
    return {"error": redaction.redact(error)}


def _shown_id(job_id: Any) -> str:
    return outputs.safe_id(str(job_id)) if job_id is not None else "without id"
