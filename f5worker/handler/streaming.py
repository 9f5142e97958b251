"""Streamed speech on a queue endpoint: a job asking ``"stream": true`` is answered part by
part, each part yielded as soon as a chunk of the text is spoken (RunPod sends each yield
to ``/stream``; with ``return_aggregate_stream`` ``/run`` and ``/runsync`` get them all).

The first chunk is cut short (``f5.short_first``, as F5-TTS's socket server does), so the
first audio waits for a quarter of a chunk's text, not a whole one. The audio is the
cross-faded result a plain job makes (``f5.Joiner``): only the tail a next chunk fades into
is held back. Each part is one message under RunPod's 1 MB stream limit:

- ``{"seq", "type": "audio", "format", "sample_rate", "samples", "audio"}``: ``audio`` is
  base64 of raw little-endian 16-bit mono (``pcm16``) or of a FLAC file of those samples
  (``flac``); their concatenation, decoded, is the answer's audio;
- last, ``{"seq", "type": "final", ...}``: what a plain answer carries (duration, seed, rtf,
  reference, timings, and ``audio_url`` when stored), without the audio itself inline.

A failure is yielded as ``{"error": ...}`` and ends the stream. A job not asking to stream
is answered whole, as one part.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

from bootstrap.kernel import events
from f5worker import f5
from f5worker.handler import f5tts, speech
from f5worker.handler.budget import Budget
from f5worker.handler.inputs import InputError, Request, action, as_object
from f5worker.handler.speech import Services

Job = dict[str, Any]
FORMATS = ("pcm16", "flac")
# RunPod refuses a stream part over 1 MB: 10 s of 24 kHz PCM16 is 480 kB, 640 kB in base64.
PART_S = 10.0
STREAM_FIELDS = ("stream", "stream_format")


def wants_stream(job_input: Any) -> bool:
    return isinstance(job_input, dict) and job_input.get("stream") is True


def stream_request(job_input: Any, svc: Services) -> tuple[Request, str]:
    """The synthesis request of a streaming job and its stream format, refused by field."""
    data = as_object(job_input)
    if action(data) != "synthesize":
        raise InputError("stream", "only a synthesis streams")
    fmt = data.get("stream_format", "pcm16")
    if fmt not in FORMATS:
        raise InputError("stream_format", f"must be one of {', '.join(FORMATS)}")
    if data.get("remove_silence"):
        raise InputError("remove_silence", "works on the whole audio; it cannot stream")
    request = f5tts.checked({k: v for k, v in data.items() if k not in STREAM_FIELDS}, svc)
    return request, str(fmt)


def encoded(samples: Any, rate: int, fmt: str) -> bytes:
    """``samples`` as the stream's format, converted to 16 bits by libsndfile exactly as
    the plain answer's WAV is (f5worker/handler/audio_io.encode): raw little-endian PCM16,
    or a FLAC file of the same samples."""
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if fmt == "pcm16":
        soundfile.write(buffer, clipped, rate, format="RAW", subtype="PCM_16", endian="LITTLE")
    else:
        soundfile.write(buffer, clipped, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def audio_parts(waves: Iterator[Any], rate: int, made: list[Any]) -> Iterator[Any]:
    """The joined audio in pieces of at most ``PART_S``, each as soon as no later chunk
    changes it; every piece is also appended to ``made`` (the final answer's audio)."""
    joiner = f5.Joiner(rate)
    longest = int(PART_S * rate)
    for ready in _joined(waves, joiner):
        made.append(ready)
        for at in range(0, len(ready), longest):
            yield ready[at:at + longest]


def _joined(waves: Iterator[Any], joiner: f5.Joiner) -> Iterator[Any]:
    for wave in waves:
        yield joiner.push(wave)
    yield joiner.finish()


def synthesize(job: Job, svc: Services, budget: Budget) -> Iterator[Job]:
    """The parts of a streaming synthesis; raises as a plain job does (before the first
    part for any refusal of its input or plan)."""
    request, fmt = stream_request(job.get("input"), svc)
    ready = speech.prepare(request, svc, budget, short_first=True)
    rate = svc.model.sample_rate
    seed = f5.random_seed() if request.seed is None else request.seed
    started = time.monotonic()
    waves = svc.model.waves(ready.clip.samples, ready.ref_text, ready.plan, seed,
                            nfe_step=request.nfe_step, cfg_strength=request.cfg_strength,
                            speed=request.speed, progress=speech.progress(job),
                            between=speech.chunk_guard(ready, request, svc, budget))
    import numpy as np

    seq = 0
    made: list[Any] = []
    try:
        for piece in audio_parts(waves, rate, made):
            if seq == 0:
                events.emit("info", "job.first_audio", job_id=job.get("id"),
                            seconds=round(time.monotonic() - started, 3))
            yield {"seq": seq, "type": "audio", "format": fmt, "sample_rate": rate,
                   "samples": len(piece),
                   "audio": base64.b64encode(encoded(piece, rate, fmt)).decode()}
            seq += 1
    finally:
        waves.close()  # a stream left unread gives the model back
    elapsed = time.monotonic() - started
    whole = np.concatenate(made) if made else np.zeros(0, dtype=np.float32)
    spoken = speech.Spoken(whole, seed, ready.plan, elapsed, ready.reference)
    final = f5tts.answer(job, svc, budget, request, spoken)
    final.pop("audio", None)  # it came in the parts
    final.pop("files", None)
    events.emit("info", "job.done", job_id=job.get("id"), duration_s=final["duration_s"],
                rtf=final["rtf"], stored="audio_url" in final, parts=seq)
    yield {"seq": seq, "type": "final", "stream_format": fmt, "chunks": len(ready.plan.chunks),
           **final}


def handler(svc: Services, whole: Callable[[Job], Job]) -> Callable[[Job], Iterator[Job]]:
    """The generator handler: a streaming job's parts, any other job's one whole answer
    (``whole``, the plain handler). ``return_aggregate_stream`` is asked of the SDK (the
    serve stage reads ``runpod_config``) so /run and /runsync get every part."""
    def generator(job: Job) -> Iterator[Job]:
        if not (isinstance(job, dict) and wants_stream(job.get("input"))):
            yield whole(job)
            return
        budget = Budget(svc.limits)
        try:
            yield from synthesize(job, svc, budget)
        except Exception as exc:  # the stream ends with the refusal; the worker goes on
            yield f5tts.failure(exc, job.get("id"), "synthesize")

    generator.runpod_config = {"return_aggregate_stream": True}  # type: ignore[attr-defined]
    return generator
