"""Speech from a request, shared by both dialects: the reference resolved and decoded,
the synthesis planned and bounded, then made.

A reference comes from the voice library (by name) or from the job (bytes or a URL). Its
transcript is the voice's, the job's ``ref_text``, or, when neither exists, the
transcriber's (the replaced worker's clients never send one): computed once per clip and
kept (beside a bucket voice, or in the volume's transcript cache by the clip's hash).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap.kernel import events
from bootstrap.storage import Storage
from f5worker import f5
from f5worker.f5 import F5Model
from f5worker.handler import audio_io, refaudio
from f5worker.handler.budget import Budget
from f5worker.handler.inputs import InputError, Limits, Request
from f5worker.handler.refaudio import Fetch
from f5worker.refclip import Clip
from f5worker.voices import VoiceLibrary

if TYPE_CHECKING:  # the transcriber imports transformers only when it loads
    from f5worker.transcriber import Transcriber
    from f5worker.transcripts import TranscriptCache

Job = dict[str, Any]


@dataclass(frozen=True)
class Services:
    """What a job may use: built once by :func:`make_handler` from the boot's context."""

    model: F5Model
    library: VoiceLibrary
    limits: Limits
    fetch: Fetch
    aligner: Any  # f5worker.aligner.Aligner when timings are on, else None
    storage: Storage | None  # set by the storage stage when a bucket is configured
    keep: Path | None  # local mode: answers are also written here
    transcriber: Transcriber | None = None  # loaded by the model stage when transcribing
    transcripts: TranscriptCache | None = None  # transcripts by clip hash, on the volume


def require_aligner(svc: Services) -> None:
    """Refuses, before any compute, timings on a worker that did not load the aligner."""
    if svc.aligner is None:
        raise InputError("return_word_timings", "word timings are off on this worker; its "
                         "operator turns them on with BOOTSTRAP_TIMINGS=1")


@dataclass(frozen=True)
class Spoken:
    wave: Any  # float32 samples at the model's rate
    seed: int
    plan: f5.Plan
    elapsed_s: float
    reference: dict[str, Any]  # what the answer says about the reference


def _progress(job: Job) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        update = {"chunks_done": done, "chunks": total}
        events.emit("info", "job.progress", job_id=job.get("id"), **update)
        # Only the platform has somewhere to send it; locally the SDK would fail in a thread.
        if total > 1 and os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"):
            import runpod

            runpod.serverless.progress_update(job, update)

    return report


@dataclass(frozen=True)
class Fields:
    """The fields a dialect names a reference's voice and audio with, for its refusals."""

    voice: str = "voice"
    audio: str = "ref_audio"
    text: str = "ref_text"


def fetched(url: str, svc: Services, field: str, budget: Budget | None = None) -> bytes:
    """The clip at ``url``, through the guarded fetcher, in the time the job has left;
    refusals name ``field``."""
    limits = svc.limits
    if budget is not None:
        budget.before("fetching the reference")
        left = math.floor(budget.left_s * 10) / 10  # shown in a refusal: one decimal
        limits = dataclasses.replace(limits, fetch_timeout_s=min(limits.fetch_timeout_s,
                                                                  max(left, 0.1)))
    try:
        return refaudio.body(None, url, limits, svc.fetch)
    except InputError as exc:
        raise exc.renamed(field) from None


def decoded(data: bytes, svc: Services, field: str) -> Clip:
    return audio_io.reference(data, svc.limits, svc.model.sample_rate, field=field)


def _reference(request: Request, svc: Services, fields: Fields,
               budget: Budget) -> tuple[Clip, str, dict[str, Any]]:
    """The reference decoded at the model's rate, its text, and what the answer says about
    it. A reference without a text, or trimmed to its middle (the text given was of the
    whole clip), is transcribed."""
    library = svc.library
    if request.voice:
        # Read with its audio in one go: another job may replace or delete it meanwhile.
        found = library.read(request.voice)
        if found is None:
            # One page of 20, not the whole bucket (20,000 voices took ~14 s to list).
            page, more = library.page(20)
            names = list(page)[:20]
            known = ", ".join(names) + (", ... (list_voices lists them all)"
                                        if more or len(page) > 20 else "")
            raise InputError(fields.voice, f"unknown voice {request.voice!r} "
                             f"(available: {known or 'none'})")
        voice, data = found
        # Voices placed by hand were never checked; added ones were, and pass again.
        clip = decoded(data, svc, fields.voice)
        text = voice.text
        guard = functools.partial(_before_transcribing, request, svc, budget)
        if voice.source == "bucket" and svc.library.bucket is not None:
            # Its transcript, once made, is kept beside it for every endpoint (of the
            # same middle, when the clip is cut: the cut is the same every time).
            if not text:
                keep = functools.partial(svc.library.bucket.keep_text, voice.name,
                                         digest=hashlib.sha256(data).hexdigest())
                text = _transcript(clip, svc, fields.voice, keep, guard)
        elif clip.trimmed or not text:
            text = _transcript(clip, svc, fields.voice, None, guard)
        return clip, text, {"voice": voice.name, **_trim(clip)}
    if request.ref_audio is not None:
        data = request.ref_audio
    else:
        assert request.ref_url, "the job's input names ref_audio as bytes or as a URL"
        data = fetched(request.ref_url, svc, fields.audio, budget)
    clip = decoded(data, svc, fields.audio)
    text = request.ref_text
    if clip.trimmed or not text:
        text = _transcript(clip, svc, fields.text, None,
                           functools.partial(_before_transcribing, request, svc, budget))
    return clip, text, {"ref_audio_s": round(clip.seconds, 3), "trimmed": False,
                        **_trim(clip)}


def _trim(clip: Clip) -> dict[str, Any]:
    return {"trimmed": True, "original_s": clip.original_s} if clip.trimmed else {}


# The most UTF-8 bytes a second of speech holds (fast English is ~20 characters a
# second): a transcript can say no more, so a plan made with this many bytes of reference
# text is the shortest audio the job can make, known before transcribing.
FASTEST_SPEECH_BYTES_S = 40


def _before_transcribing(request: Request, svc: Services, budget: Budget,
                         clip: Clip) -> None:
    """Refuses, before the transcriber runs, a job that its bounds would refuse whatever
    the transcript says, and one whose deadline has passed."""
    longest = "x" * max(1, int(FASTEST_SPEECH_BYTES_S * clip.seconds))
    shortest = f5.plan(len(clip.samples), longest, request.text, request.speed,
                       svc.model.sample_rate)
    budget.admit(shortest, len(clip.samples))
    if not svc.storage:
        _refuse_oversized(shortest, svc.limits)
    budget.before("transcribing the reference")


def _transcript(clip: Clip, svc: Services, field: str,
                keep: Callable[[str], None] | None,
                guard: Callable[[Clip], None] | None = None) -> str:
    """What the clip says: from the cache by the clip's hash, else the transcriber's
    (``guard`` first: it may refuse the job), then kept (in the cache, and through
    ``keep`` beside a stored voice)."""
    digest = hashlib.sha256(clip.samples.tobytes()).hexdigest()
    cached = svc.transcripts.get(digest) if svc.transcripts is not None else None
    if cached:
        events.emit("info", "transcribe.cached", chars=len(cached))
        if keep is not None:
            keep(cached)
        return str(cached)
    if svc.transcriber is None:
        raise InputError(field, "is needed: this reference has no transcript, and "
                         "transcription is off on this worker (BOOTSTRAP_TRANSCRIBE=1 turns "
                         "it on)")
    from f5worker.transcriber import TranscriptionError

    if guard is not None:
        guard(clip)
    try:
        text = str(svc.transcriber.transcribe(clip.samples, clip.rate)).strip()
    except TranscriptionError as exc:
        if exc.kind != "empty":
            raise  # the recognizer itself failed: an internal error, detailed in the log
        text = ""
    if not text:
        raise InputError(field, "is needed: the speech recognition heard no words in the "
                         "reference")
    if svc.transcripts is not None:
        svc.transcripts.put(digest, text)
    if keep is not None:
        keep(text)
    return text


@dataclass(frozen=True)
class Prepared:
    """A synthesis ready to run: its reference, the text of it, and its admitted plan."""

    clip: Clip
    ref_text: str
    plan: f5.Plan
    reference: dict[str, Any]  # what the answer says about the reference


def prepare(request: Request, svc: Services, budget: Budget, fields: Fields = Fields(),
            short_first: bool = False) -> Prepared:
    """The reference resolved and the plan admitted by the job's budget, before any
    compute; ``short_first`` cuts the first chunk short (a stream's first audio)."""
    rate = svc.model.sample_rate
    clip, ref_text, reference = _reference(request, svc, fields, budget)
    plan = f5.plan(len(clip.samples), ref_text, request.text, request.speed, rate,
                   max_chars=_chunk_bound(clip, ref_text, request, svc, budget))
    if short_first:
        plan = f5.short_first(plan, len(clip.samples), ref_text, request.speed)
    budget.admit(plan, len(clip.samples))  # before any compute, with or without a store
    if not svc.storage:  # with a store, a long answer goes there instead
        _refuse_oversized(plan, svc.limits)
    events.emit("info", "job.planned", chunks=len(plan.chunks),
                audio_s=round(plan.seconds, 3), text_chars=len(request.text),
                text_sha256=hashlib.sha256(request.text.encode()).hexdigest()[:16])
    return Prepared(clip, ref_text, plan, reference)


def chunk_guard(ready: Prepared, request: Request, svc: Services,
                budget: Budget) -> Callable[[int, int], None]:
    """What runs before each chunk: the job's deadline against the next chunk's time."""
    return _before_chunk(ready.clip, ready.plan, request, svc, budget)


progress = _progress  # each chunk reported, as a job's progress


def speak(request: Request, svc: Services, budget: Budget, job: Job,
          fields: Fields = Fields()) -> Spoken:
    """``request.text`` spoken like its reference, within the job's budget."""
    rate = svc.model.sample_rate
    ready = prepare(request, svc, budget, fields)
    started = time.monotonic()
    wave, seed = svc.model.synthesize(
        ready.clip.samples, ready.ref_text, ready.plan, nfe_step=request.nfe_step,
        cfg_strength=request.cfg_strength, speed=request.speed, seed=request.seed,
        progress=_progress(job), between=chunk_guard(ready, request, svc, budget))
    elapsed = time.monotonic() - started
    if request.remove_silence:
        wave = _without_silence(wave, rate)
    return Spoken(wave, seed, ready.plan, elapsed, ready.reference)


def _chunk_bound(clip: Clip, ref_text: str, request: Request, svc: Services,
                 budget: Budget) -> int | None:
    """The most bytes of text a chunk may hold: within the model's embedding, and, once
    the model's cost is known, within the budget's chunk share (a chunk cannot be
    stopped); where the reference alone is over that share, as long as the reference."""
    ref_frames = len(clip.samples) // 256
    if not ref_frames:
        return None
    frames = f5.MAX_FRAMES - ref_frames - 1
    cost = svc.model.predict_s(1, request.nfe_step)
    if cost:
        frames = min(frames, max(ref_frames, int(budget.chunk_s / cost) - ref_frames))
    if frames <= 0:
        return None  # the reference alone fills the embedding: refused by admit
    ref_bytes = len(f5.ref_text_for_model(ref_text).encode()) + 1
    return max(1, int(frames * ref_bytes * request.speed / ref_frames))


def _before_chunk(clip: Clip, plan: f5.Plan, request: Request, svc: Services,
                  budget: Budget) -> Callable[[int, int], None]:
    def check(done: int, total: int) -> None:
        frames = f5.chunk_frames(len(clip.samples), plan.samples[done])
        budget.check_next(done, total, svc.model.predict_s(frames, request.nfe_step))

    return check


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
