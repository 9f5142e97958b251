"""A job's budget: a wall-clock deadline, and a bound on the audio it may make.

Both are settings (``job_timeout_s``, ``job_max_audio_s``). The audio bound is applied to
the synthesis plan (``f5worker.f5.plan``: F5-TTS's own chunking of this text with this
reference) before any compute: a reference whose transcript is far shorter than its audio
(``ref_text: "A."`` over 12 s) makes every byte of text last seconds and the text fall
into tiny chunks, each re-reading the whole reference. The deadline is checked between
chunks and before each later step; a chunk that has started runs to its end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bootstrap.kernel.message import Message, error
from f5worker.f5 import Plan
from f5worker.handler.inputs import InputError, Limits

E001 = error("job.E001", "the job ran past its {limit:g} s budget ({done} of {total} "
             "chunks made)",
             "split the text over several jobs, or raise BOOTSTRAP_JOB_TIMEOUT_S (keep the "
             "endpoint's execution timeout above it)")


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

    def admit(self, plan: Plan) -> None:
        """Refuses, before any compute, a plan whose audio is over the bound."""
        if plan.seconds > self.limits.max_audio_s:
            raise InputError("text", f"would make about {plan.seconds:.0f} s of audio in "
                             f"{len(plan.chunks)} chunks with this reference; a job may make "
                             f"at most {self.limits.max_audio_s:g} s: split the text, or "
                             "give a reference whose transcript is all it says")

    def check(self, done: int, total: int) -> None:
        """Raises :class:`BudgetExceeded` once the deadline has passed."""
        if self.left_s < 0:
            raise BudgetExceeded(E001.at("job", limit=self.limits.job_timeout_s, done=done,
                                         total=total))
