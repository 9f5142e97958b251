"""The replaced worker's dialect mapped onto this worker: one place, both ways.

Its requests (``f5worker/handler/seed_inputs.py``) become this worker's own (a ``Request`` for the
speech core, a bucket voice for ``upload``), and the answers take that worker's shape,
field for field (``docs/seed-api.md``), so its clients run unchanged:

- ``tts``: ``audio_url``, ``duration``, ``job_id``, ``seed``, ``status``, ``text``; with
  timings, ``timing_files`` (every format), ``timing_format``, ``timing_method``,
  ``word_count``, ``timing_confidence``. Results are stored in its layout,
  ``output/<job_id>.wav`` and ``timings/<job_id>.<fmt>``, so ``download`` finds them by
  job id. A value that worker took and this one cannot honour is answered with what was
  done instead (``timing_method``: the words are timed by forced alignment, and a
  ``timing_note`` says so when another engine was asked for), never with a failure.
- ``upload``: the clip at ``voice_file_url`` becomes ``voices/<voice_name>`` in the bucket.
- ``list_voices``: every voice as ``{name: <name>.wav, size, last_modified}``.
- ``download``: presigned URLs of a job's stored objects.

Without a bucket (that worker always had one) a TTS answer carries the audio inline
(``audio``, base64) with ``audio_url: null``; ``upload`` and ``download`` are refused.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from typing import Any

from bootstrap.kernel import events
from f5worker.bucket_voices import BucketVoices
from f5worker.handler import audio_io, seed_inputs, speech
from f5worker.handler.budget import Budget
from f5worker.handler.inputs import InputError, ListPage, Request
from f5worker.handler.seed_inputs import Download, Speak
from f5worker.handler.speech import Services
from f5worker.voices import VoiceError

Job = dict[str, Any]
DEFAULT_VOICE = "default"  # spoken when a request names no local_voice, as that worker did
AUDIO_KEY = "output/{job_id}.wav"
TIMING_KEY = "timings/{job_id}.{fmt}"
TIMING_METHOD = "forced_alignment"
FIELDS = speech.Fields(voice="local_voice", audio="local_voice", text="local_voice")


def handle(job: Job, svc: Services, budget: Budget) -> tuple[str, Job]:
    """The answer to ``job`` (in the replaced worker's dialect), and its endpoint's name."""
    job_input = job.get("input")
    name = seed_inputs.endpoint(job_input)
    if name == "tts":
        return name, _tts(job, seed_inputs.parse_tts(job_input, svc.limits), svc, budget)
    if name == "upload":
        return name, _upload(seed_inputs.parse_upload(job_input), svc, budget)
    if name == "list_voices":
        return name, _list(svc, seed_inputs.parse_list(job_input))
    return name, _download(seed_inputs.parse_download(job_input), svc)


def _request(old: Speak) -> Request:
    voice = old.voice if old.voice or old.url else DEFAULT_VOICE
    # No transcript: that worker's clients never sent one; the speech core transcribes.
    return Request(text=old.text, ref_text="", voice=voice, ref_url=old.url,
                   speed=old.speed, seed=old.seed, format="wav",
                   return_word_timings=old.timings, timing_format=old.timing_format)


def _tts(job: Job, old: Speak, svc: Services, budget: Budget) -> Job:
    if old.timings:
        speech.require_aligner(svc)
    spoken = speech.speak(_request(old), svc, budget, job, FIELDS)
    rate = svc.model.sample_rate
    job_id = str(uuid.uuid4())
    wav = audio_io.encode(spoken.wave, rate, "wav")
    answer: Job = {"duration": round(len(spoken.wave) / rate, 3), "job_id": job_id,
                   "seed": spoken.seed, "status": "completed", "text": old.text}
    if spoken.reference.get("trimmed"):
        answer["reference"] = spoken.reference
    root = svc.storage.rooted() if svc.storage else None
    if root is None:
        answer.update({"audio_url": None, "audio": base64.b64encode(wav).decode(),
                       "note": "no bucket is configured on this worker: the audio is inline"})
    else:
        answer["audio_url"] = root.upload(AUDIO_KEY.format(job_id=job_id), wav, "audio/wav")
    if old.timings:
        budget.check(len(spoken.plan.chunks), len(spoken.plan.chunks))
        answer.update(_timings(old, spoken.wave, rate, job_id, svc))
    events.emit("info", "job.stored" if root else "job.inline", job_id=job.get("id"),
                seed_job_id=job_id)
    return answer


def _timings(old: Speak, wave: Any, rate: int, job_id: str, svc: Services) -> Job:
    from f5worker.aligner import AlignmentError
    from f5worker.handler import subtitles

    fields: Job = {"timing_format": old.timing_format, "timing_method": TIMING_METHOD}
    if old.timing_method != "whisperx":
        fields["timing_note"] = (f"timing_method {old.timing_method!r} is not available "
                                 "here: the words were timed by forced alignment of the "
                                 "text to the audio")
    try:
        timings = subtitles.align_all(svc.aligner, wave, rate, old.text)
    except AlignmentError as exc:
        fields.update({"timing_files": {}, "word_count": 0, "timing_confidence": 0.0,
                       "timings_error": str(exc)})
        return fields
    files = timings.files(seed_inputs.TIMING_FORMATS)
    root = svc.storage.rooted() if svc.storage else None
    if root is None:
        fields["timing_files"] = {fmt: None for fmt in files}
        fields["timings"] = {fmt: content for fmt, (content, _) in files.items()}
    else:
        fields["timing_files"] = {
            fmt: root.upload(TIMING_KEY.format(job_id=job_id, fmt=fmt), content.encode(), mime)
            for fmt, (content, mime) in files.items()}
    fields.update({"word_count": timings.word_count,
                   "timing_confidence": round(timings.confidence, 3)})
    return fields


def _bucket(svc: Services, field: str, what: str) -> BucketVoices:
    if svc.storage is None:
        raise InputError(field, f"{what} needs a bucket: set S3_BUCKET, AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY (or the BUCKET_* variables) on the endpoint")
    return BucketVoices(svc.storage)


def _upload(up: seed_inputs.Upload, svc: Services, budget: Budget) -> Job:
    bucket = svc.library.bucket or _bucket(svc, "voice_name", "upload")
    try:
        svc.library.check_upload(up.name, svc.limits.max_voices)  # before fetching
    except VoiceError as exc:
        raise InputError("voice_name", str(exc)) from None
    data = speech.fetched(up.url, svc, "voice_file_url", budget)
    clip = speech.decoded(data, svc, "voice_file_url")
    wav = audio_io.encode(clip.samples, svc.model.sample_rate, "wav")
    try:
        _, replaced = bucket.add(up.name, wav, "")
    except VoiceError as exc:  # replaced by another job since the check
        raise InputError("voice_name", str(exc)) from None
    events.emit("info", "voice.uploaded", voice=up.name, replaced=replaced,
                duration_s=round(clip.seconds, 3))
    clipped = " (clipped to its middle)" if clip.trimmed else ""
    return {"status": f"Voice '{up.voice_name}' uploaded successfully",
            "message": f"stored as voices/{up.name}.wav: {clip.seconds:.1f} s{clipped}, "
                       "24 kHz mono; it is transcribed when first used",
            "replaced": replaced}


def _list(svc: Services, ask: ListPage) -> Job:
    """One page of the voices (all of them, with fewer than ``limit`` in the bucket);
    ``next`` names the ``after`` of the next page, null at the end."""
    voices = []
    page, following = svc.library.page(ask.limit, ask.after)
    for voice in page.values():
        size, modified = voice.size, voice.last_modified
        if voice.audio is not None:
            with_stat = voice.audio.stat()
            size = with_stat.st_size
            modified = datetime.datetime.fromtimestamp(
                with_stat.st_mtime, datetime.UTC).isoformat().replace("+00:00", "Z")
        voices.append({"name": f"{voice.name}.wav", "size": size, "last_modified": modified,
                       "source": voice.source})
    return {"voices": voices, "count": len(voices), "next": following, "status": "success"}


def _download(ask: Download, svc: Services) -> Job:
    if svc.storage is None:
        raise InputError("job_id", "no bucket is configured on this worker: results are "
                         "returned inline and not kept")
    root = svc.storage.rooted()
    if ask.type == "audio":
        key = AUDIO_KEY.format(job_id=ask.job_id)
        if root.head(key) is None:
            raise InputError("job_id", f"no stored audio for job {ask.job_id!r}")
        return {"audio_url": root.url(key), "content_type": "audio/wav",
                "filename": f"{ask.job_id}.wav", "status": "ready"}
    key = TIMING_KEY.format(job_id=ask.job_id, fmt=ask.format)
    found = root.head(key)
    if found is None:
        raise InputError("job_id", f"no stored {ask.format} timings for job {ask.job_id!r} "
                         "(asked with return_word_timings?)")
    return {"timing_url": root.url(key), "content_type": found.content_type,
            "format": ask.format, "filename": f"{ask.job_id}.{ask.format}", "status": "ready"}
