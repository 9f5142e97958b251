"""venv: find the environment this worker's inputs call for (FAILURES.md 5, 7).

Environments live at ``<volume>/.bootstrap/envs/<key>/`` (``environment/envkey``). A healthy
one is reused (the worker runs its Python; nothing else happens). Otherwise this stage
hands the install stage what to build (``envbuild.Wanted``), which builds it as
one transaction under the key's lease. This stage only looks: it takes no lease and writes
nothing, so nothing it does can be left half done.

When the install stage is skipped (``skip`` names it) and no healthy environment is
published, nothing would build one: the boot fails here (``venv.E006``) instead of starting
the worker without the requirements.

Modes: ``volume`` always uses an environment; ``local`` uses one when requirements are
configured, else the current interpreter; ``image`` never does (packages are in the image).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bootstrap.environment import envbuild, envkey, envstore, installer, requirements
from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, error, info, warning
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed

E001 = error("venv.E001", "requirements file {path} does not exist",
             "set BOOTSTRAP_REQUIREMENTS to an existing file (relative to the working dir)")
E002 = error("venv.E002", "no installer found (installer = {choice})",
             "pip install uv into the image, or set BOOTSTRAP_INSTALLER=pip")
E006 = error("venv.E006", "environment {key} {state}, and the install stage, which builds "
                          "it, is skipped",
             "remove install from BOOTSTRAP_SKIP (the setting `skip`) for one boot to build "
             "it; later boots may skip install and reuse it")
W001 = warning("venv.W001", "environment {key} is unhealthy: {reason}",
               "it is rebuilt; if this repeats, the base image changed under the volume")
I001 = info("venv.I001", "environment {key} is healthy: {action}", "")
I002 = info("venv.I002", "environment {key} missing: {action} at {path}, "
                         "{count} requirements, {installer}", "")
I003 = info("venv.I003", "{mode} mode: no environment, {python} runs the worker",
            "{why}")
I004 = info("venv.I004", "a new environment: {changed} changed since {old}", "")
I005 = info("venv.I005", "environment {key} is built from: {lines}",
            "the lines marked added are what bootstrap's own stages need there "
            "(bootstrap/environment/requirements.py); the installer is given every line")


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


def _not_built(final: Path, key: str, reason: str) -> Message:
    state = "is not built" if reason == "missing" else f"is unhealthy ({reason})"
    return E006.at(final, key=key, state=state)


def _contents(key: str, final: Path, reqs: requirements.Requirements) -> Message:
    return I005.at(final, key=key, lines=reqs.describe())


def check(ctx: Context) -> list[Message]:
    try:
        reqs, found = _inputs(ctx)
    except StageFailed as exc:
        return [exc.message]
    # `bootstrap check` runs the worker stages' checks in the interpreter named here.
    if found is None:
        envbuild.use_this_interpreter(ctx)
        return [_no_env(ctx)]
    inputs = envkey.inputs(ctx.config, reqs, found.label)
    key = envkey.key(inputs)
    final = envstore.Store(ctx.config.volume).path(key)
    reason = envstore.health(final)
    if reason is None:
        envbuild.use_env(ctx, final)  # the hydrate stage's check predicts from it
        return [I001.at(final, key=key, action="would reuse it"), _contents(key, final, reqs)]
    if "install" in ctx.config.skip:
        return [_not_built(final, key, reason), _contents(key, final, reqs)]
    action = "would build it" if reason == "missing" else "would rebuild it"
    messages = [] if reason == "missing" else [W001.at(final, key=key, reason=reason)]
    return [*messages, I002.at(final, key=key, action=action, path=final,
                               count=len(reqs.lines), installer=found.label),
            _contents(key, final, reqs)]


def run(ctx: Context) -> Outcome:
    reqs, found = _inputs(ctx)
    if found is None:
        envbuild.use_this_interpreter(ctx)
        return Outcome(facts={"python": sys.executable, "env": None}, messages=[_no_env(ctx)])
    inputs = envkey.inputs(ctx.config, reqs, found.label)
    key = envkey.key(inputs)
    store = envstore.Store(ctx.config.volume)
    final = store.path(key)
    facts: dict[str, object] = {"key": key, "env": str(final), "installer": found.label,
                                "added": {added.line: added.by for added in reqs.added}}
    reason = envstore.health(final)
    if reason is None:
        envstore.mark_used(final)
        envbuild.use_env(ctx, final)
        return Outcome(facts={**facts, "reused": True})
    if "install" in ctx.config.skip:
        raise StageFailed(_not_built(final, key, reason))
    messages: list[Message] = []
    if reason == "missing":
        messages += _why_new(store, key, inputs)
    else:
        messages.append(W001.at(final, key=key, reason=reason))
        events.emit("warn", "venv.rebuild", key=key, reason=reason,
                    msg=f"rebuilding environment {key}: {reason}")
    envbuild.want(ctx, envbuild.Wanted(key, inputs, final, found, reqs, reason))
    return Outcome(facts={**facts, "reused": False, "reason": reason}, messages=messages)


STAGE = Stage(name="venv", run=run, check=check, side=Side.SUPERVISOR,
              exit_code=ExitCode.VENV, deadline_s=300)
