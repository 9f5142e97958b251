"""The cold start's work that outlives the hydrate stage, as tasks its Outcome carries
(``bootstrap.kernel.stage.Task``): the supervisor tells them when the boot is ready and
finishes them before its summary, knowing nothing else of them.

- ``LaterUnpack``: unpacks the copy's large modules while the worker starts;
- ``Recording``: once the boot is ready, records the pages this boot read of the linked
  files (readahead.py) and the part of the environment it used (used_part.py), hints
  for later boots.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from bootstrap.coldstart import local_copy, packs, readahead, records, used_part
from bootstrap.kernel import events
from bootstrap.kernel.stage import Task

Event = tuple[str, str, dict[str, Any]]  # level, name, fields


class LaterUnpack(Task):
    """The thread unpacking a copy's large modules while the worker starts
    (``local_copy.unpack_later``). It says how that went when it ends, unless the summary,
    the boot's last line, has begun: it then says it is still running."""

    def __init__(self, local: Path, later: used_part.Later) -> None:
        self._said = threading.Lock()
        self._closed = False
        self.started = time.monotonic()
        # a daemon: a supervisor ending mid-way leaves links, which work, and a staging
        # directory the next unpacking removes
        self.thread = threading.Thread(target=self._run, args=(local, later),
                                       name="hydrate-later", daemon=True)
        self.thread.start()

    def _run(self, local: Path, later: used_part.Later) -> None:
        try:
            done = local_copy.unpack_later(local, later)
            event = ("info", {"status": "done", "files": len(done),
                              "mb": later.pack.unpacked >> 20,
                              "s": round(time.monotonic() - self.started, 2)})
        except Exception as exc:  # a thread of its own: said, never raised
            reason = packs.first_line(exc) or type(exc).__name__
            if isinstance(exc, packs.PackFailed):  # damaged: recorded again from a full copy
                used_part.forget(later.pack.path.parent, later.pack.path.name)
            event = ("warn", {"status": "failed", "reason": reason[:200],
                              "msg": "the large modules stay linked to the volume (slower "
                                     "lookups, same result)"})
        with self._said:
            if not self._closed:
                events.emit(event[0], "hydrate.later", **event[1])
            self._closed = True

    def finish(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` for the unpacking; say that it still runs if it does."""
        self.thread.join(timeout=wait_s)
        with self._said:
            if not self._closed and self.thread.is_alive():
                events.emit("info", "hydrate.later", status="running", waited_s=wait_s,
                            msg="still unpacking the large modules; the copy links them "
                                "to the volume until then")
            self._closed = True


class Recording(Task):
    """Records, once the boot is ready, the large files' pages this boot read, and the part
    of the environment it used (from a full copy only: a copy of the used part cannot tell
    what else a boot would have used), when no boot recorded them before. In a thread of
    its own (a round trip per linked file, a pack written to the volume), never raising:
    they are hints for later boots. The thread writes no line itself: ``finish`` says its
    event, or that it is still running when the summary cannot wait."""

    def __init__(self, env: Path, local: Path, used: bool) -> None:
        self.env, self.local, self.used = env, local, used
        self.event: Event | None = None
        self.thread: threading.Thread | None = None

    def ready(self) -> None:
        pages = not (self.env / readahead.RECORD).exists()
        used = (self.used and local_copy.made_from(self.local) == "full"
                and _no_used_record(self.env, self.local))
        if not pages and not used:
            return
        # not a daemon: one still running goes on (the process waits for it before it
        # exits); it only writes to the volume
        self.thread = threading.Thread(target=self._run, args=(pages, used),
                                       name="hydrate-record")
        self.thread.start()

    def _run(self, pages: bool, used: bool) -> None:
        env, local = self.env, self.local
        if pages:
            with contextlib.suppress(OSError):
                later = local_copy.later_of(local)
                unpacked = set() if later is None else set(later.members)
                linked = [rel for rel in (local / records.LINKED).read_text().splitlines()
                          if rel not in unpacked]  # linked only until they were unpacked
                touched = readahead.record(env, linked)
                if touched.files:
                    readahead.save(env, touched)
        self.event = _record_used(env, local) if used else None

    def finish(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` for the recording, then say how it ended."""
        if self.thread is None:
            return
        self.thread.join(timeout=wait_s)
        if self.thread.is_alive():
            events.emit("info", "hydrate.recording", status="running", waited_s=wait_s,
                        msg="still recording what this boot used; it finishes before the "
                            "process exits")
        elif self.event is not None:
            level, name, fields = self.event
            events.emit(level, name, **fields)


def _no_used_record(env: Path, local: Path) -> bool:
    """No usable record of the used part: none, or one that does not parse or whose pack is
    gone (a boot that found it so copied the full pack: it records a new one)."""
    try:
        of = json.loads((local / records.COPY).read_text())["of"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return used_part.find(env, of)[0] is None


def _record_used(env: Path, local: Path) -> Event:
    """Pack the part of ``local`` (a full copy of ``env``) this boot used, beside ``env``;
    returns the event that says how it went."""
    try:
        record = local / records.COPY
        of = json.loads(record.read_text())["of"]
        used = used_part.write(env, local, of, made_at=record.stat().st_mtime)
    except (OSError, ValueError, KeyError, TypeError, packs.PackFailed) as exc:
        return "warn", "hydrate.used_not_recorded", {"reason": str(exc)[:200]}
    if used is None:
        return "info", "hydrate.used_not_recorded", {
            "reason": "no file of the copy was read since the unpack (atime not kept)"}
    return "info", "hydrate.used_recorded", {
        "file": used.pack.path.name, "files": used.pack.files, "linked": used.pack.linked,
        "dirs": used.dirs, "mb": used.pack.size >> 20}
