"""A background thread that says a long stage is still alive ("still running, 45 s"),
and, for a stage run in the supervisor, enforces its deadline (``bootstrap/kernel/watchdog.py``).

Six minutes of silence look the same as a hang; a heartbeat tells the operator which
stage is taking the time, before the platform's 7-minute cold-start limit. One thread per
stage does both jobs: a deadline costs no thread of its own.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

from bootstrap.kernel.protocol import emit_heartbeat

if TYPE_CHECKING:
    from bootstrap.kernel.watchdog import Watchdog


class Heartbeat:
    def __init__(self, stage: str, interval_s: float, watchdog: Watchdog | None = None) -> None:
        self.stage = stage
        self.interval_s = interval_s
        self.watchdog = watchdog
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def __enter__(self) -> Heartbeat:
        if self.interval_s > 0 or (self.watchdog is not None and self.watchdog.armed):
            self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _beat(self) -> None:
        next_beat = self._started + self.interval_s if self.interval_s > 0 else math.inf
        while True:
            due = self.watchdog.due() if self.watchdog is not None else math.inf
            wake = min(next_beat, due)
            if wake == math.inf:
                return
            if self._stop.wait(max(0.0, wake - time.monotonic())):
                return
            now = time.monotonic()
            if self.watchdog is not None:
                self.watchdog.tick(now)
            if now >= next_beat:
                emit_heartbeat(self.stage, int(now - self._started))
                next_beat += self.interval_s
