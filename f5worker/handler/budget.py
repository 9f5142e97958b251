"""A job's budget: a wall-clock deadline, and a bound on the audio it may make.

Both are settings (``job_timeout_s``, ``job_max_audio_s``). The audio bound is applied to
the synthesis plan (``f5worker.f5.plan``: F5-TTS's own chunking of this text with this
reference) before any compute: a reference whose transcript is far shorter than its audio
(``ref_text: "A."`` over 12 s) makes every byte of text last seconds and the text fall
into tiny chunks, each re-reading the whole reference. The deadline covers the whole job:
a fetch gets only the time left, and it is checked before transcribing, before each chunk
and before word timings. A chunk that has started runs to its end, so each is bounded: by
the model's text embedding (:data:`f5worker.f5.MAX_FRAMES`, refused by field before
compute), by its predicted time (the model's measured cost per frame and step) to
:data:`CHUNK_SHARE` of the budget, and before each chunk by that prediction again: a
chunk may start while time is left and end past the deadline by at most that share; one
predicted to end later is not started (``job.E002``).

A chunk's time is predicted from the last chunk made. Within a job, after its first
chunk, that is this job's own chunk (same ``nfe_step``, similar length). Before it, it
is the warm-up's or another job's: another ``nfe_step`` and length, and a first call of a
new shape. Measured on the tiny CPU model, such a prediction was 1.5-2 times too high
(the vocoder's and each call's fixed cost counted per step), so before a job's first
chunk it is divided by :data:`PRIOR_MARGIN`: a prediction from elsewhere refuses only a
job far over its budget, never one merely near it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bootstrap.kernel.message import Message, error
from f5worker.f5 import MAX_FRAMES, Plan, chunk_frames
from f5worker.handler.inputs import InputError, Limits

E001 = error("job.E001", "the job ran past its {limit:g} s budget ({done} of {total} "
             "chunks made)",
             "split the text over several jobs, or raise BOOTSTRAP_JOB_TIMEOUT_S (keep the "
             "endpoint's execution timeout above it)")


E002 = error("job.E002", "the job would run past its {limit:g} s budget ({done} of {total} "
             "chunks made; the next would take about {need:.1f} s of the {left:.1f} s left)",
             "split the text over several jobs, lower nfe_step, or raise "
             "BOOTSTRAP_JOB_TIMEOUT_S (keep the endpoint's execution timeout above it)")
E003 = error("job.E003", "the job ran past its {limit:g} s budget before {step}",
             "send a shorter reference, or its ref_text, or raise BOOTSTRAP_JOB_TIMEOUT_S")


# The part of the budget one chunk may take, and may end past the deadline by.
CHUNK_SHARE = 0.5
# How far a prediction from another job's chunk (or the warm-up's) is trusted: measured
# 1.5-2 times high, so it refuses a job's first chunk only at 4 times what is left.
PRIOR_MARGIN = 4.0


class BudgetExceeded(Exception):
    """The job's deadline passed; the worker stops the job and serves the next one."""

    def __init__(self, message: Message) -> None:
        super().__init__(f"{message.id}: {message.msg}")
        self.message = message


@dataclass
class Budget:
    limits: Limits
    started: float = field(default_factory=time.monotonic)

    @property
    def left_s(self) -> float:
        return self.started + self.limits.job_timeout_s - time.monotonic()

    def admit(self, plan: Plan, ref_samples: int = 0) -> None:
        """Refuses, before any compute, a plan whose audio is over the bound, or one with a
        chunk the model cannot embed (its frames and the reference's over 8,192)."""
        for chunk, samples in zip(plan.chunks, plan.samples, strict=True):
            frames = chunk_frames(ref_samples, samples)
            if frames > MAX_FRAMES:
                raise InputError("text", f"a chunk of {len(chunk)} characters would need "
                                 f"{frames} frames with this reference; the model holds "
                                 f"{MAX_FRAMES}: use a faster speed or a shorter text")
        if plan.seconds > self.limits.max_audio_s:
            raise InputError("text", f"would make about {plan.seconds:.0f} s of audio in "
                             f"{len(plan.chunks)} chunks with this reference; a job may make "
                             f"at most {self.limits.max_audio_s:g} s: split the text, or "
                             "give a reference whose transcript is all it says")

    def before(self, step: str) -> None:
        """Raises :class:`BudgetExceeded` when the deadline passed before ``step``."""
        if self.left_s < 0:
            raise BudgetExceeded(E003.at("job", limit=self.limits.job_timeout_s, step=step))

    @property
    def chunk_s(self) -> float:
        """The most a chunk may take, and may end past the deadline by."""
        return self.limits.job_timeout_s * CHUNK_SHARE

    def check_next(self, done: int, total: int, need_s: float | None) -> None:
        """Before a chunk: stops once the deadline has passed, and refuses to start one
        predicted (``need_s``, from the last chunk made) to end more than
        :attr:`chunk_s` past it. Before this job's first chunk the prediction comes from
        elsewhere and counts for a :data:`PRIOR_MARGIN` th of itself."""
        self.check(done, total)
        if need_s is None:
            return
        trusted = need_s if done else need_s / PRIOR_MARGIN
        if trusted > self.left_s + self.chunk_s:
            raise BudgetExceeded(E002.at("job", limit=self.limits.job_timeout_s, done=done,
                                         total=total, need=need_s, left=self.left_s))

    def check(self, done: int, total: int) -> None:
        """Raises :class:`BudgetExceeded` once the deadline has passed."""
        if self.left_s < 0:
            raise BudgetExceeded(E001.at("job", limit=self.limits.job_timeout_s, done=done,
                                         total=total))
