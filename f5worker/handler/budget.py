"""A job's budget: a wall-clock deadline, and a bound on the audio it may make.

Both are settings (``job_timeout_s``, ``job_max_audio_s``). The audio bound is applied to
the synthesis plan (``f5worker.f5.plan``: F5-TTS's own chunking of this text with this
reference) before any compute: a reference whose transcript is far shorter than its audio
(``ref_text: "A."`` over 12 s) makes every byte of text last seconds and the text fall
into tiny chunks, each re-reading the whole reference. The deadline covers the whole job:
a fetch gets only the time left, and it is checked before transcribing, before each chunk
and before word timings. A chunk that has started runs to its end, so each is bounded: by
the model's text embedding (:data:`f5worker.f5.MAX_FRAMES`, refused by field before
compute), and before each chunk by its predicted time (the model's measured cost per
frame and step): a chunk that would end past the deadline is not started.
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

    def check_next(self, done: int, total: int, need_s: float | None) -> None:
        """Before a chunk: refuses to start one predicted (``need_s``) to end past the
        deadline, and stops once it has passed."""
        self.check(done, total)
        if need_s is not None and need_s > self.left_s:
            raise BudgetExceeded(E002.at("job", limit=self.limits.job_timeout_s, done=done,
                                         total=total, need=need_s, left=self.left_s))

    def check(self, done: int, total: int) -> None:
        """Raises :class:`BudgetExceeded` once the deadline has passed."""
        if self.left_s < 0:
            raise BudgetExceeded(E001.at("job", limit=self.limits.job_timeout_s, done=done,
                                         total=total))
