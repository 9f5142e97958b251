"""The supervisor's side of health, in one object with four calls: ``start`` (the first
second of the boot), ``worker_ready``, ``failed`` and ``hold``. Disabled, for a queue
endpoint outside Kubernetes, each call does nothing but write the ready file where one is
configured."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from bootstrap.health import kubernetes
from bootstrap.health.endpoint import LoadBalancing, load_balancing
from bootstrap.health.server import HealthServer, probe
from bootstrap.kernel import events
from bootstrap.kernel.config import Config

# How often the app's HTTP server is asked for its first 200.
PROBE_EVERY_S = 0.1


class HealthWatch:
    def __init__(self, config: Config, stage_of: Callable[[], str | None]) -> None:
        self.config = config
        self.lb: LoadBalancing | None = load_balancing(config)
        self.server: HealthServer | None = None
        if self.lb is not None:
            self.server = HealthServer(self.lb.health_port, self.lb.path, stage_of,
                                       app_port=None if self.lb.shared else self.lb.port)
        self._stop = threading.Event()

    def start(self) -> None:
        if self.server is not None and self.lb is not None and self.server.start():
            events.emit("info", "health.listening", port=self.lb.health_port,
                        path=self.lb.path, app_port=self.lb.port,
                        msg="answering the health path while the worker boots")

    def worker_ready(self) -> None:
        """The worker handed over to its server: healthy once that server answers."""
        if self.lb is None:
            kubernetes.write_ready(self.config.ready_file)
            return
        threading.Thread(target=self._await_app, name="health-probe", daemon=True).start()

    def _await_app(self) -> None:
        assert self.lb is not None and self.server is not None
        started = time.monotonic()
        while not self._stop.is_set():
            if probe(self.lb.port, self.lb.path, timeout=1.0) == 200:
                break
            self._stop.wait(PROBE_EVERY_S)
        if self._stop.is_set() or self.server.failure is not None:
            return
        self.server.healthy = True
        if self.lb.shared:
            self.server.close()  # the app's server answers the health path from now on
        kubernetes.write_ready(self.config.ready_file)
        events.emit("info", "health.healthy", port=self.lb.port,
                    waited_ms=int((time.monotonic() - started) * 1000),
                    msg="the app's HTTP server answers; the health path says 200")

    def failed(self, failure: dict[str, Any]) -> None:
        """A failed boot (or a worker that died serving): 503 with the failure, the
        termination message, no ready file."""
        self._stop.set()
        kubernetes.remove_ready(self.config.ready_file)
        kubernetes.write_termination(self.config.termination_log, failure)
        if self.server is not None:
            self.server.failure = {k: v for k, v in failure.items()
                                   if k in kubernetes.FIELDS}
            self.server.start()  # back on the port where the app's server had it
            events.emit("info", "health.failed", hold_s=self.config.health_hold_s,
                        msg="the health path says 503 with the failure until the worker "
                            "exits")

    def hold(self) -> None:
        """Keep the 503 up for ``health_hold_s`` so the platform marks the worker unhealthy
        and an operator can read why; a stop signal ends the wait."""
        if self.server is None or self.config.health_hold_s <= 0:
            return
        done = threading.Event()
        with contextlib.suppress(ValueError):  # not the main thread: no handler, just wait
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: done.set())
        # No event here: the summary, written before this wait, stays the boot's last line.
        done.wait(self.config.health_hold_s)
        self.server.close()

    def stopped(self) -> None:
        self._stop.set()
        kubernetes.remove_ready(self.config.ready_file)
