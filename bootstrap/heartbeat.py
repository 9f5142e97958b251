"""A background thread that says a long stage is still alive ("still running, 45 s").

Six minutes of silence look the same as a hang; a heartbeat tells the operator which
stage is taking the time, before the platform's 7-minute cold-start limit.
"""

from __future__ import annotations

import threading
import time

from bootstrap.protocol import emit_heartbeat


class Heartbeat:
    def __init__(self, stage: str, interval_s: float) -> None:
        self.stage = stage
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def __enter__(self) -> Heartbeat:
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            elapsed = int(time.monotonic() - self._started)
            emit_heartbeat(self.stage, elapsed)
