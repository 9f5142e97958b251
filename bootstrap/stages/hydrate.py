"""hydrate: run the worker from a copy of the environment on the container disk, where
that is faster than running it from the volume.

After install, the environment on the volume is published and healthy. When the volume's
lookups are slow (the volume stage's I/O probe, ``lookup_ms``) and the container disk has
room, its packed form (``bootstrap.environment.envpack``) is unpacked to
``hydrate_dir/<key>`` (``bootstrap.environment.hydrate``) and the worker starts from
there; a copy made by an earlier boot of this container is reused. The pages of the
large files the copy leaves on the volume that an earlier boot read
(``bootstrap.environment.prefetch``) are read in the background meanwhile, and the first
boot that runs from a copy records them once ready, with the part of the environment it
used (``bootstrap.environment.usedpack``): later boots unpack only that part, and its
large modules in a thread of the supervisor while the worker starts (``LaterUnpack``). Anything
in the way (no packed form, no room, a damaged pack, a failed unpack) is a warning, and
the worker runs from the volume as it always could: this stage never fails a boot.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootstrap import diskspace, ioprobe
from bootstrap.environment import envpack, envstore, hydrate, prefetch, usedpack
from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, info, warning
from bootstrap.kernel.output import Output
from bootstrap.kernel.stage import Outcome, Side, Stage

HYDRATED: Output[Path] = Output("hydrated", __name__)  # the local copy the worker runs from
LATER_UNPACK: Output[LaterUnpack] = Output("later_unpack", __name__)  # its large modules'

W001 = warning("hydrate.W001", "environment {key} has no packed form: the worker runs from "
                               "the volume",
               "it was built before packing existed, or with BOOTSTRAP_HYDRATE=never; a "
               "rebuild packs it (remove {env} to rebuild it)")
W002 = warning("hydrate.W002", "no room for a local copy on {disk}: {free_mb} MB free, "
                               "{need_mb} MB needed",
               "the worker runs from the volume; raise the container disk size, or set "
               "BOOTSTRAP_HYDRATE_DIR to a disk with room")
W003 = warning("hydrate.W003", "the packed environment cannot be used: {reason}",
               "the worker runs from the volume; remove {env} to have it rebuilt and packed")
W004 = warning("hydrate.W004", "copying the environment to {local} failed: {reason}",
               "the worker runs from the volume; a full container disk or a damaged pack "
               "(remove {env} to rebuild it)")
W005 = warning("hydrate.W005", "the packed part of environment {key} an earlier boot used "
                               "cannot be used: {reason}",
               "the whole packed form is copied instead (slower, same result), and this boot "
               "records the used part again once ready, replacing {record}")
I001 = info("hydrate.I001", "environment {key}: {action} {local}", "{why}")
I002 = info("hydrate.I002", "environment {key} runs from the volume: {why}",
            "BOOTSTRAP_HYDRATE=always copies it to the container disk regardless")


def _lookup_ms(ctx: Context) -> tuple[float | None, float | None]:
    """The volume's lookup latency and read rate: the volume stage's probe when it ran,
    else (``bootstrap check``, or a boot that does not build there) lookups alone, which
    write nothing."""
    rates = ctx.volume_io
    if isinstance(rates, ioprobe.Rates):
        return rates.lookup_ms, rates.read_mb_s
    try:
        return ioprobe.lookup_ms(ctx.config.volume), None
    except OSError:
        return None, None


def _plan(ctx: Context, env: Path) -> tuple[hydrate.Plan, dict[str, Any]]:
    marker = envstore.read_marker(env) or {}
    lookup, read = _lookup_ms(ctx)
    plan = hydrate.decide(ctx.config.hydrate, env, marker, ctx.config.hydrate_dir, lookup, read,
                          used_only=ctx.config.hydrate_used)
    return plan, marker


def _env(ctx: Context) -> Path | None:
    env = ctx.env
    return Path(env) if env else None


def check(ctx: Context) -> list[Message]:
    env = _env(ctx)
    if env is None or envstore.read_marker(env) is None:
        return []  # no environment, or the venv stage says what it would build
    plan, marker = _plan(ctx, env)
    key = str(marker.get("key", env.name))
    if plan.pack is None and ctx.config.hydrate != "never":
        return [W001.at(env, key=key, env=env)]
    if not plan.hydrate or plan.pack is None:
        return [I002.at(env, key=key, why=plan.why)]
    touched = prefetch.load(env)
    ahead = (f"; would read {touched.bytes >> 20} MB of its large files ahead, as an "
             "earlier boot read them" if touched is not None and touched.files else "")
    if hydrate.trusted(plan.local, hydrate.identity(marker, plan.pack)) is None:
        return [I001.at(plan.local, key=key, action="would reuse the local copy",
                        local=plan.local, why=plan.why + ahead)]
    damaged = envpack.damage(plan.pack)
    if damaged is not None:
        return [W003.at(plan.pack.path, reason=damaged, env=env)]
    free, need = hydrate.room(ctx.config.hydrate_dir, _source(plan), _later(plan))
    if free < need:
        return [W002.at(ctx.config.hydrate_dir, disk=diskspace.describe_disk(
            ctx.config.hydrate_dir), free_mb=free, need_mb=need)]
    refused = [] if plan.used_refused is None else [_used_refused(env, key, plan.used_refused)]
    return [*refused, I001.at(plan.local, key=key, action="would copy it to",
                              local=plan.local, why=plan.why + ahead)]


def _used_refused(env: Path, key: str, reason: str) -> Message:
    record = env / usedpack.RECORD
    return W005.at(record, key=key, reason=reason, record=record)


def _source(plan: hydrate.Plan) -> envpack.Pack:
    """The pack the copy is unpacked from."""
    assert plan.pack is not None
    return plan.used.pack if plan.used is not None else plan.pack


def _later(plan: hydrate.Plan) -> usedpack.Later | None:
    return None if plan.used is None else plan.used.later


def _use(ctx: Context, local: Path, facts: dict[str, Any]) -> None:
    """Run the worker from ``local``; the large modules it still links are unpacked
    meanwhile."""
    ctx.python = local / "bin" / "python"
    ctx.hydrated = local
    later = hydrate.later_of(local)
    todo = [] if later is None else hydrate.pending(local, later)
    if later is not None and todo:
        ctx.later_unpack = LaterUnpack(local, later)
        facts.update(later_pending=len(todo), later_mb=later.pack.unpacked >> 20)


class LaterUnpack:
    """The thread unpacking a copy's large modules while the worker starts
    (``hydrate.unpack_later``). It says how that went when it ends, unless the summary,
    the boot's last line, has begun: the supervisor then says it is still running."""

    def __init__(self, local: Path, later: usedpack.Later) -> None:
        self._said = threading.Lock()
        self._closed = False
        self.started = time.monotonic()
        # a daemon: a supervisor ending mid-way leaves links, which work, and a staging
        # directory the next unpacking removes
        self.thread = threading.Thread(target=self._run, args=(local, later),
                                       name="hydrate-later", daemon=True)
        self.thread.start()

    def _run(self, local: Path, later: usedpack.Later) -> None:
        try:
            done = hydrate.unpack_later(local, later)
            event = ("info", {"status": "done", "files": len(done),
                              "mb": later.pack.unpacked >> 20,
                              "s": round(time.monotonic() - self.started, 2)})
        except Exception as exc:  # a thread of its own: said, never raised
            reason = envpack.first_line(exc) or type(exc).__name__
            if isinstance(exc, envpack.PackFailed):  # damaged: recorded again from a full copy
                usedpack.forget(later.pack.path.parent, later.pack.path.name)
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


def finish_later(ctx: Context, wait_s: float) -> None:
    """Before the boot's summary: the later unpacking's end, or that it still runs."""
    if ctx.later_unpack is not None:
        ctx.later_unpack.finish(wait_s)


def _prefetch(env: Path, facts: dict[str, Any]) -> None:
    """Start reading what an earlier boot from a copy read of the linked large files. The
    reader's threads are daemons of the supervisor: they read while the worker starts,
    and end with the reading or with the supervisor."""
    touched = prefetch.load(env)
    if touched is None or not touched.files:
        facts["prefetch_mb"] = None  # none recorded yet: this boot records it when ready
        return
    prefetch.Reader(env, touched).start()
    facts.update(prefetch_mb=touched.bytes >> 20, prefetch_files=len(touched.files))


class Recording:
    """The thread recording what a boot used, and the event it leaves behind. The thread
    writes no line itself: the supervisor says its event before the summary, which is the
    boot's last line, or says that it is still running when the summary cannot wait."""

    def __init__(self, work: Callable[[], tuple[str, str, dict[str, Any]] | None]) -> None:
        self.event: tuple[str, str, dict[str, Any]] | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), name="prefetch-record")
        self.thread.start()

    def _run(self, work: Callable[[], tuple[str, str, dict[str, Any]] | None]) -> None:
        self.event = work()

    def finish(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` for the recording, then say how it ended. One still running
        goes on (the process waits for it before it exits); it only writes to the volume."""
        self.thread.join(timeout=wait_s)
        if self.thread.is_alive():
            events.emit("info", "hydrate.recording", status="running", waited_s=wait_s,
                        msg="still recording what this boot used; it finishes before the "
                            "process exits")
        elif self.event is not None:
            level, name, fields = self.event
            events.emit(level, name, **fields)


def record_touched(ctx: Context) -> Recording | None:
    """Once the worker is ready (or has finished its stages, in a boot that does not
    serve; the supervisor calls this once): record the large files' pages this boot read,
    and the part of the environment it used (from a full copy only: a copy of the used
    part cannot tell what else a boot would have used), when it ran from a copy and no
    boot recorded them before. In a thread of its own (a round trip per linked file, a
    pack written to the volume), never raising: they are hints for later boots."""
    local, env = ctx.hydrated, ctx.env
    if local is None or env is None:
        return None
    pages = not (env / prefetch.RECORD).exists()
    used = (ctx.config.hydrate_used and hydrate.made_from(local) == "full"
            and _no_used_record(env, local))
    if not pages and not used:
        return None

    def record() -> tuple[str, str, dict[str, Any]] | None:
        if pages:
            with contextlib.suppress(OSError):
                later = hydrate.later_of(local)
                unpacked = set() if later is None else set(later.members)
                linked = [rel for rel in (local / envpack.LINKED).read_text().splitlines()
                          if rel not in unpacked]  # linked only until they were unpacked
                touched = prefetch.record(env, linked)
                if touched.files:
                    prefetch.save(env, touched)
        return _record_used(env, local) if used else None

    return Recording(record)


def _no_used_record(env: Path, local: Path) -> bool:
    """No usable record of the used part: none, or one that does not parse or whose pack is
    gone (a boot that found it so copied the full pack: it records a new one)."""
    try:
        of = json.loads((local / hydrate.RECORD).read_text())["of"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return usedpack.find(env, of)[0] is None


def _record_used(env: Path, local: Path) -> tuple[str, str, dict[str, Any]]:
    """Pack the part of ``local`` (a full copy of ``env``) this boot used, beside ``env``;
    returns the event that says how it went."""
    try:
        record = local / hydrate.RECORD
        of = json.loads(record.read_text())["of"]
        used = usedpack.write(env, local, of, made_at=record.stat().st_mtime)
    except (OSError, ValueError, KeyError, TypeError, envpack.PackFailed) as exc:
        return "warn", "hydrate.used_not_recorded", {"reason": str(exc)[:200]}
    if used is None:
        return "info", "hydrate.used_not_recorded", {
            "reason": "no file of the copy was read since the unpack (atime not kept)"}
    return "info", "hydrate.used_recorded", {
        "file": used.pack.path.name, "files": used.pack.files, "linked": used.pack.linked,
        "dirs": used.dirs, "mb": used.pack.size >> 20}


def run(ctx: Context) -> Outcome:
    env = _env(ctx)
    if env is None:
        return Outcome(facts={"from": None}, skipped=True)
    plan, marker = _plan(ctx, env)
    key = str(marker.get("key", env.name))
    facts: dict[str, Any] = {"key": key, **plan.facts}
    if not plan.hydrate or plan.pack is None:
        facts.update({"from": "volume", "why": plan.why})
        message = (W001.at(env, key=key, env=env)
                   if plan.pack is None and ctx.config.hydrate != "never"
                   else I002.at(env, key=key, why=plan.why))
        return Outcome(facts=facts, messages=[message])
    pack, local = plan.pack, plan.local
    _prefetch(env, facts)
    want = hydrate.identity(marker, pack)
    if hydrate.trusted(local, want) is None:
        _use(ctx, local, facts)
        return Outcome(facts={**facts, "from": "local", "reused": True,
                              "form": hydrate.made_from(local)},
                       messages=[I001.at(local, key=key, action="reusing the local copy",
                                         local=local, why=plan.why)])
    return _copy(ctx, env, marker, plan, facts)


def _volume(facts: dict[str, Any], message: Message, why: str) -> Outcome:
    return Outcome(facts={**facts, "from": "volume", "why": why}, messages=[message])


def _copy(ctx: Context, env: Path, marker: dict[str, Any], plan: hydrate.Plan,
          facts: dict[str, Any]) -> Outcome:
    assert plan.pack is not None
    pack, local, used, why = plan.pack, plan.local, plan.used, plan.why
    key = str(marker.get("key", env.name))
    hydrate_dir = ctx.config.hydrate_dir
    damaged = envpack.damage(pack)
    if damaged is not None:
        return _volume(facts, W003.at(pack.path, reason=damaged, env=env), damaged)
    # room for the used part only: should it fail, the full copy may find the disk full
    free, need = hydrate.room(hydrate_dir, _source(plan), _later(plan))
    if free < need:
        disk = diskspace.describe_disk(hydrate_dir)
        return _volume(facts, W002.at(hydrate_dir, disk=disk, free_mb=free, need_mb=need),
                       f"{free} MB free on {disk}, {need} MB needed")
    started = time.monotonic()
    try:
        copied = hydrate.copy(env, marker, pack, local, used)
    except (envpack.PackFailed, OSError) as exc:
        if diskspace.is_full(exc):
            reason = f"{diskspace.describe_disk(hydrate_dir)} is full"
        else:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return _volume(facts, W004.at(local, local=local, reason=reason, env=env), reason)
    copy_s = round(time.monotonic() - started, 2)
    problem = hydrate.trusted(local, hydrate.identity(marker, pack))
    if problem is not None:
        hydrate.discard(local)
        return _volume(facts, W004.at(local, local=local, reason=problem, env=env), problem)
    _use(ctx, local, facts)
    if copied.removed:
        facts["removed_leftovers"] = copied.removed
    messages = []
    refused = plan.used_refused or copied.used_failed
    if refused is not None:
        messages.append(_used_refused(env, key, refused))
    if copied.made:
        facts["form"] = copied.form
        if copied.used_failed is not None:
            facts["used_failed"] = copied.used_failed
    action = "copied to" if copied.made else "another worker copied it to"
    return Outcome(facts={**facts, "from": "local", "reused": False, "copy_s": copy_s,
                          "copied_by_another": not copied.made},
                   messages=[*messages, I001.at(local, key=key, action=action, local=local,
                                                why=f"{why}; {copy_s} s")])


STAGE = Stage(name="hydrate", run=run, check=check, side=Side.SUPERVISOR,
              exit_code=ExitCode.VENV, deadline_s=3600)
