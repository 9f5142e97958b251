"""A FUSE passthrough (slowfs without latency) where one path never answers: the file
system reads the request and keeps it, as a network volume whose server went silent does.

A process that asks for that path waits in the kernel until the request is answered or
the process is killed: a signal interrupts the wait only if the file system handles
FUSE_INTERRUPT, and this one (like most) does not. That is the hang a deadline cannot
interrupt, only end.

    python -m tests.environment.hungfs BACKING MOUNTPOINT HUNG_PATH   # e.g. /hung
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.environment import slowfs


def serve(backing: Path, mountpoint: Path, hung: str) -> None:
    import mfusepy

    ops = slowfs.operations(backing, latency_s=0.0, mb_s=1000.0)
    answer = ops.getattr
    never = threading.Event()

    def getattr(path: str, fh: int | None = None) -> dict[str, Any]:
        if path == hung or path.startswith(hung + "/"):
            never.wait()  # the request was read; no answer will come
        result: dict[str, Any] = answer(path, fh)
        return result

    ops.getattr = getattr
    mfusepy.FUSE(ops, str(mountpoint), foreground=True, allow_other=True,
                 default_permissions=True, entry_timeout=0, negative_timeout=0,
                 fsname="hungfs", subtype="hungfs")


@contextlib.contextmanager
def mounted(backing: Path, mountpoint: Path, hung: str, timeout_s: float = 30.0
            ) -> Iterator[Path]:
    """``backing`` at ``mountpoint``, with ``hung`` (a path inside it) never answering."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    # As a module of the tests package (it imports slowfs from there), from the repository.
    proc = subprocess.Popen([sys.executable, "-m", "tests.environment.hungfs", str(backing),
                             str(mountpoint), hung], cwd=Path(__file__).resolve().parents[2],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not slowfs.is_mounted(mountpoint):
            if proc.poll() is not None:
                raise RuntimeError(f"hungfs exited {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"hungfs did not mount {mountpoint} in {timeout_s} s")
            time.sleep(0.05)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False,
                       capture_output=True)
        proc.kill()  # its hung thread never returns on its own
        proc.wait()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
