"""venv: find the environment this worker's inputs call for, or start building it
(FAILURES.md 5, 7).

Environments live at ``<volume>/.bootstrap/envs/<key>/`` (``bootstrap.envkey``). A healthy
one is reused (``ctx.state["python"]`` points at it; nothing else happens). Otherwise:
take the key's lease (``bootstrap.lease``), look again (another worker may have finished
it meanwhile), remove leftovers of interrupted builds, and create an empty environment in a
staging directory; the install stage fills and publishes it.

Modes: ``volume`` always uses an environment; ``local`` uses one when requirements are
configured, else the current interpreter; ``image`` never does (packages are in the image).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bootstrap import diskspace, envkey, envstore, events, installer, requirements
from bootstrap.command import CommandFailed
from bootstrap.context import Context
from bootstrap.envbuild import STATE, Build
from bootstrap.exit_codes import ExitCode
from bootstrap.lease import Lease, Owner
from bootstrap.message import Message, error, info, warning
from bootstrap.stage import Outcome, Side, Stage, StageFailed

E001 = error("venv.E001", "requirements file {path} does not exist",
             "set BOOTSTRAP_REQUIREMENTS to an existing file (relative to the working dir)")
E002 = error("venv.E002", "no installer found (installer = {choice})",
             "pip install uv into the image, or set BOOTSTRAP_INSTALLER=pip")
E003 = error("venv.E003", "creating the environment failed: {reason}",
             "the cause holds the command and its output")
E004 = error("venv.E004", "no space on {disk} to create the environment ({free_mb} MB free)",
             "free space on the volume (old environments: .bootstrap/envs) or enlarge it")
E005 = error("venv.E005", "waited {waited} s for {holder} to build the environment",
             "that worker is stuck; its lease is taken over {timeout} s after its last "
             "heartbeat (BOOTSTRAP_LEASE_TIMEOUT_S)")
W001 = warning("venv.W001", "environment {key} is unhealthy: {reason}",
               "it is rebuilt; if this repeats, the base image changed under the volume")
I001 = info("venv.I001", "environment {key} is healthy: {action}", "")
I002 = info("venv.I002", "environment {key} missing: {action} at {path}, "
                         "{count} requirements, {installer}", "")
I003 = info("venv.I003", "{mode} mode: no environment, {python} runs the worker",
            "{why}")
I004 = info("venv.I004", "a new environment: {changed} changed since {old}", "")


def wants_env(ctx: Context, reqs: requirements.Requirements) -> bool:
    return ctx.config.mode == "volume" or (ctx.config.mode == "local" and reqs.configured)


def _inputs(ctx: Context) -> tuple[requirements.Requirements, installer.Installer | None]:
    try:
        reqs = requirements.load(ctx.config)
    except requirements.RequirementsMissing as exc:
        raise StageFailed(E001.at(exc.path, path=exc.path)) from None
    if not wants_env(ctx, reqs):
        return reqs, None
    try:
        return reqs, installer.find(ctx.config.installer)
    except installer.NoInstaller:
        raise StageFailed(E002.at(ctx.config.installer, choice=ctx.config.installer)) from None


def _no_env(ctx: Context) -> Message:
    why = ("packages come from the image" if ctx.config.mode == "image" else
           "no requirements configured (BOOTSTRAP_REQUIREMENTS builds one)")
    return I003.at(sys.executable, mode=ctx.config.mode, python=sys.executable, why=why)


def _why_new(store: envstore.Store, key: str, inputs: dict[str, object]) -> list[Message]:
    for old in store.others(key)[:1]:
        recorded = (envstore.read_marker(old) or {}).get("inputs", {})
        changed = envkey.differences(recorded, inputs)
        if changed:
            return [I004.at(old.name, changed=", ".join(changed), old=old.name)]
    return []


def check(ctx: Context) -> list[Message]:
    try:
        reqs, found = _inputs(ctx)
    except StageFailed as exc:
        return [exc.message]
    # `bootstrap check` runs the worker stages' checks in the interpreter named here.
    if found is None:
        ctx.state["python"] = sys.executable
        return [_no_env(ctx)]
    inputs = envkey.inputs(ctx.config, reqs, found.label)
    key = envkey.key(inputs)
    final = envstore.Store(ctx.config.volume).path(key)
    reason = envstore.health(final)
    if reason is None:
        ctx.state["env"] = str(final)  # the hydrate stage's check predicts from it
        ctx.state["python"] = str(final / "bin" / "python")
        return [I001.at(final, key=key, action="would reuse it")]
    action = "would build it" if reason == "missing" else "would rebuild it"
    messages = [] if reason == "missing" else [W001.at(final, key=key, reason=reason)]
    return [*messages, I002.at(final, key=key, action=action, path=final,
                               count=len(reqs.lines), installer=found.label)]


def _use(ctx: Context, env: Path) -> None:
    envstore.mark_used(env)
    ctx.state["env"] = str(env)
    ctx.state["python"] = str(env / "bin" / "python")


def _wait_s(ctx: Context) -> float:
    # the longest a healthy build can take: every install attempt, plus creating the env
    return ctx.config.install_timeout_s * ctx.config.install_attempts + 120


def run(ctx: Context) -> Outcome:
    reqs, found = _inputs(ctx)
    if found is None:
        ctx.state["python"] = sys.executable
        return Outcome(facts={"python": sys.executable, "env": None}, messages=[_no_env(ctx)])
    inputs = envkey.inputs(ctx.config, reqs, found.label)
    key = envkey.key(inputs)
    store = envstore.Store(ctx.config.volume)
    final = store.path(key)
    facts: dict[str, object] = {"key": key, "env": str(final), "installer": found.label}
    messages: list[Message] = []
    lease = Lease(store.locks, f"env-{key}", Owner(ctx.worker_id), ctx.config.lease_timeout_s)
    while True:
        reason = envstore.health(final)
        if reason is None:
            _use(ctx, final)
            return Outcome(facts={**facts, "reused": True}, messages=messages)
        def published(seen: tuple[int, int] | None = store.identity(final)) -> bool:
            return store.identity(final) not in (seen, None)

        try:
            acquired = lease.acquire(done=published, wait_s=_wait_s(ctx))
        except TimeoutError as exc:
            raise StageFailed(E005.at(lease.path, waited=int(_wait_s(ctx)),
                                      holder=str(exc).rpartition("for ")[2],
                                      timeout=int(ctx.config.lease_timeout_s))) from None
        if acquired:
            break
        facts["waited_for_another_worker"] = True  # it published; look at what it built
    # holding the lease: look again, another worker may have finished just before us
    reason = envstore.health(final)
    if reason is None:
        lease.release()
        _use(ctx, final)
        return Outcome(facts={**facts, "reused": True}, messages=messages)
    if reason != "missing":
        messages.append(W001.at(final, key=key, reason=reason))
        events.emit("warn", "venv.rebuild", key=key, reason=reason,
                    msg=f"rebuilding environment {key}: {reason}")
        store.discard(final)
    else:
        messages += _why_new(store, key, inputs)
    removed = store.clean_leftovers(key)
    if removed:
        facts["removed_leftovers"] = removed
    if lease.took_over is not None:
        facts["took_over_lease_of"] = lease.took_over.describe()
    staging = store.staging(key, ctx.worker_id)
    try:
        found.run(found.create_argv(staging, ctx.config.system_site_packages), timeout_s=300)
    except (CommandFailed, OSError) as exc:
        store.discard(staging)
        lease.release()
        text = str(exc)
        if diskspace.text_says_full(text) or diskspace.is_full(exc):
            raise StageFailed(E004.at(store.root, disk=diskspace.describe_disk(store.root),
                                      free_mb=diskspace.free_mb(store.root)), text) from None
        raise StageFailed(E003.at(staging, reason=text.splitlines()[0][:120]), text) from None
    ctx.state[STATE] = Build(key, inputs, staging, final, lease, found, reqs,
                             reason=reason)
    return Outcome(facts={**facts, "reused": False, "reason": reason}, messages=messages)


STAGE = Stage(name="venv", run=run, check=check, side=Side.SUPERVISOR,
              exit_code=ExitCode.VENV, deadline_s=3600)
