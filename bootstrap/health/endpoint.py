"""Whether this worker serves a load-balancing endpoint, and on which ports.

RunPod's load-balancing endpoints start the worker with ``PORT`` (the app's HTTP server),
``PORT_HEALTH`` (where the platform polls, ``PORT`` when unset) and ``HEALTH_CHECK_PATH``
(``/ping`` when unset): 204 is initializing, 200 healthy, anything else unhealthy. Read by
both processes: the supervisor answers the health path, the worker's serve stage runs the
app's HTTP server. Standard library only: the supervisor imports this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bootstrap.kernel.config import Config

DEFAULT_PORT = 80  # RunPod's default for PORT
DEFAULT_PATH = "/ping"


@dataclass(frozen=True)
class LoadBalancing:
    port: int  # the app's HTTP server
    health_port: int  # where the platform polls the health path
    path: str

    @property
    def shared(self) -> bool:
        """One port for both: the app's server answers the health path itself once up."""
        return self.port == self.health_port


def load_balancing(config: Config, environ: Mapping[str, str] | None = None
                   ) -> LoadBalancing | None:
    """The load-balancing endpoint this boot serves, or None for a queue endpoint.

    ``endpoint = auto`` (the default) is load balancing when ``PORT`` or ``PORT_HEALTH`` is
    set, as RunPod sets them for that endpoint type and not for a queue one."""
    environ = os.environ if environ is None else environ
    if config.endpoint == "queue":
        return None
    if config.endpoint == "auto" and not (environ.get("PORT") or environ.get("PORT_HEALTH")):
        return None
    port = _port(environ.get("PORT"), DEFAULT_PORT)
    path = environ.get("HEALTH_CHECK_PATH") or DEFAULT_PATH
    return LoadBalancing(port, _port(environ.get("PORT_HEALTH"), port),
                         path if path.startswith("/") else f"/{path}")


def _port(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
