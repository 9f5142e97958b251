"""hydrate: run the worker from a copy of the environment on the container disk, where
that is faster than running it from the volume.

After install, the environment on the volume is published and healthy. This stage asks
the cold start for its plan (``bootstrap.coldstart.plan``): from the volume, from a copy
an earlier boot of this container made, or from a copy it unpacks now (the full pack, or
the part an earlier boot used with its large modules unpacked while the worker starts,
and the pages of the linked files an earlier boot read, read ahead). ``check`` says that
plan; ``run`` carries it out, and hands the supervisor its background work as tasks
(``bootstrap.coldstart.tasks``). Anything in the way (no packed form, no room, a damaged
pack, a failed unpack) is a warning, and the worker runs from the volume as it always
could: this stage never fails a boot.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bootstrap import diskspace
from bootstrap.coldstart import local_copy, packs, readahead, records
from bootstrap.coldstart.plan import Plan, Volume, Way, plan
from bootstrap.coldstart.tasks import LaterUnpack, Recording
from bootstrap.environment import envstore
from bootstrap.environment.envbuild import ENV, PYTHON
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, info, warning
from bootstrap.kernel.output import Output
from bootstrap.kernel.stage import Outcome, Side, Stage, Task

HYDRATED: Output[Path] = Output("hydrated", __name__)  # the local copy the worker runs from

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



def _volume_message(chosen: Plan, why: str) -> Message:
    """Why the plan runs the worker from the volume."""
    env, key = chosen.env, chosen.key
    if chosen.volume is Volume.NO_PACK:
        return W001.at(env, key=key, env=env)
    if chosen.volume is Volume.DAMAGED:
        assert chosen.pack is not None
        return W003.at(chosen.pack.path, reason=chosen.why, env=env)
    if chosen.volume is Volume.NO_ROOM:
        hydrate_dir = chosen.local.parent
        return W002.at(hydrate_dir, disk=diskspace.describe_disk(hydrate_dir),
                       free_mb=chosen.room[0], need_mb=chosen.room[1])
    return I002.at(env, key=key, why=why)


def _used_refused(chosen: Plan, reason: str) -> Message:
    record = chosen.env / records.USED_PART
    return W005.at(record, key=chosen.key, reason=reason, record=record)


def _ahead(chosen: Plan) -> str:
    if chosen.ahead is None:
        return ""
    return (f"; would read {chosen.ahead.bytes >> 20} MB of its large files ahead, as an "
            "earlier boot read them")


def check(ctx: Context) -> list[Message]:
    env = ENV.get(ctx)
    if env is None or envstore.read_marker(env) is None:
        return []  # no environment, or the venv stage says what it would build
    chosen = plan(ctx)
    assert chosen is not None
    said = f"{chosen.why}{_ahead(chosen)}; plan: {chosen.tier}"
    if chosen.way is Way.VOLUME:
        return [_volume_message(chosen, said)]
    if chosen.way is Way.REUSE:
        return [I001.at(chosen.local, key=chosen.key, action="would reuse the local copy",
                        local=chosen.local, why=said)]
    refused = [] if chosen.used_refused is None else [_used_refused(chosen, chosen.used_refused)]
    return [*refused, I001.at(chosen.local, key=chosen.key, action="would copy it to",
                              local=chosen.local, why=said)]


def run(ctx: Context) -> Outcome:
    chosen = plan(ctx)
    if chosen is None:
        return Outcome(facts={"from": None}, skipped=True)
    facts: dict[str, Any] = {"key": chosen.key, "plan": chosen.tier, **chosen.facts}
    if chosen.way is Way.VOLUME:
        return _from_volume(facts, _volume_message(chosen, chosen.why), chosen.why)
    _read_ahead(chosen, facts)
    if chosen.way is Way.REUSE:
        return _use(ctx, chosen, {**facts, "reused": True, "form": chosen.form},
                    [I001.at(chosen.local, key=chosen.key, action="reusing the local copy",
                             local=chosen.local, why=chosen.why)])
    return _copy(ctx, chosen, facts)


def _from_volume(facts: dict[str, Any], message: Message, why: str) -> Outcome:
    return Outcome(facts={**facts, "from": "volume", "why": why}, messages=[message])


def _read_ahead(chosen: Plan, facts: dict[str, Any]) -> None:
    """Start reading what an earlier boot from a copy read of the linked large files. The
    reader's threads are daemons of the supervisor: they read while the worker starts,
    and end with the reading or with the supervisor."""
    if chosen.ahead is None:
        facts["prefetch_mb"] = None  # none recorded yet: this boot records it when ready
        return
    readahead.Reader(chosen.env, chosen.ahead).start()
    facts.update(prefetch_mb=chosen.ahead.bytes >> 20, prefetch_files=len(chosen.ahead.files))


def _use(ctx: Context, chosen: Plan, facts: dict[str, Any],
         messages: list[Message]) -> Outcome:
    """Run the worker from the local copy; the large modules it still links are unpacked
    meanwhile, and what this boot used is recorded once it is ready."""
    local = chosen.local
    PYTHON.set(ctx, local / "bin" / "python")
    tasks: list[Task] = [Recording(chosen.env, local, ctx.config.hydrate_used)]
    later = local_copy.later_of(local)
    todo = [] if later is None else local_copy.pending(local, later)
    if later is not None and todo:
        tasks.append(LaterUnpack(local, later))
        facts.update(later_pending=len(todo), later_mb=later.pack.unpacked >> 20)
    return Outcome(facts={**facts, "from": "local"}, messages=messages, tasks=tasks)


def _copy(ctx: Context, chosen: Plan, facts: dict[str, Any]) -> Outcome:
    assert chosen.pack is not None
    env, local, key = chosen.env, chosen.local, chosen.key
    hydrate_dir = ctx.config.hydrate_dir
    started = time.monotonic()
    try:
        copied = local_copy.copy(env, chosen.marker, chosen.pack, local, chosen.used)
    except (packs.PackFailed, OSError) as exc:
        if diskspace.is_full(exc):
            reason = f"{diskspace.describe_disk(hydrate_dir)} is full"
        else:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return _from_volume(facts, W004.at(local, local=local, reason=reason, env=env), reason)
    copy_s = round(time.monotonic() - started, 2)
    problem = local_copy.trusted(local, chosen.identity)
    if problem is not None:
        local_copy.discard(local)
        return _from_volume(facts, W004.at(local, local=local, reason=problem, env=env),
                            problem)
    if copied.removed:
        facts["removed_leftovers"] = copied.removed
    messages = []
    refused = chosen.used_refused or copied.used_failed
    if refused is not None:
        messages.append(_used_refused(chosen, refused))
    if copied.made:
        facts["form"] = copied.form
        if copied.used_failed is not None:
            facts["used_failed"] = copied.used_failed
    action = "copied to" if copied.made else "another worker copied it to"
    return _use(ctx, chosen, {**facts, "reused": False, "copy_s": copy_s,
                              "copied_by_another": not copied.made},
                [*messages, I001.at(local, key=key, action=action, local=local,
                                    why=f"{chosen.why}; {copy_s} s")])


STAGE = Stage(name="hydrate", run=run, check=check, side=Side.SUPERVISOR,
              exit_code=ExitCode.VENV, deadline_s=3600)
