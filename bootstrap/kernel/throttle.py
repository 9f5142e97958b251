"""Installer output as events, at a rate the console can bear.

pip and uv print hundreds of lines for a large requirement set; the console (and the boot
report's tail) needs the gist and the last words, not every line. At most one event per
``interval_s``; lines in between are counted and the count rides on the next event.
"""

from __future__ import annotations

import threading
import time

from bootstrap.kernel import events


class Throttle:
    def __init__(self, event: str, interval_s: float = 0.25) -> None:
        self.event = event
        self.interval_s = interval_s
        self._last = float("-inf")  # the first line always goes out
        self._dropped = 0
        self._lock = threading.Lock()  # stdout and stderr are pumped by two threads

    def __call__(self, stream: str, line: str) -> None:
        if not line.strip():
            return
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval_s:
                self._dropped += 1
                return
            self._last, dropped, self._dropped = now, self._dropped, 0
        fields = {"dropped": dropped} if dropped else {}
        events.emit("info", self.event, stream=stream, line=line[:300], **fields)
