"""install: build the environment the venv stage found missing, as one transaction; prove
it; publish it (FAILURES.md 5, 11, 12, 14).

``build`` is the whole transaction, in one function: take the key's lease
(``bootstrap.environment.lease``; waiters stop waiting when another worker publishes), look again
(another worker may have finished meanwhile), remove leftovers of interrupted builds,
create the environment in a staging directory, install, verify, pack, write the marker,
publish by rename, release. The lease is a ``with`` block and the staging directory is
removed in its ``finally``: a failure, a stop signal or a lost lease leaves neither behind.

Installs with uv or pip (``environment/installer``), streaming output as rate-limited events,
with a timeout per attempt and retries with backoff for transient failures (network, 5xx,
timeouts) and none for permanent ones (no such distribution, conflicts). ENOSPC/EDQUOT is
named with the disk, its free space and what the build had written. Then the key modules
are imported in the environment's Python (each timed), its consistency is checked, known-bad
version pairs are warned about, and the marker (with the resolved versions) is written last
before the directory is published by rename.

A warm boot (the venv stage reused a healthy environment) runs no installer and no
subprocess: it reads the marker. In image mode nothing is installed: the image's Python
imports the key modules and the requirements are checked against what it has.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bootstrap import diskspace
from bootstrap.coldstart import packs
from bootstrap.environment import compat, envbuild, envprobe, envstore, installer
from bootstrap.environment.envbuild import Build, Wanted
from bootstrap.environment.lease import Lease, Owner, WaitedTooLong
from bootstrap.environment.requirements import RequirementsMissing, load
from bootstrap.kernel import backoff, command, events, redaction
from bootstrap.kernel.command import CommandFailed
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, error, info, warning
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed
from bootstrap.kernel.throttle import Throttle

# The longest wait between install attempts: an index that is down for longer than a few
# minutes is a failure to report, not to sit through.
MAX_WAIT_S = 120.0

# The modules behind WORKER_REQUIREMENTS: the worker cannot start without them.
WORKER_MODULES = ("click", "psutil", "structlog")

E001 = error("install.E001", "the installer failed: {reason}",
             "a permanent error (a missing or conflicting requirement); the cause holds "
             "the installer's output; fix the requirements")
E002 = error("install.E002", "install failed {attempts} times: {reason}",
             "check the network and the index {index}; BOOTSTRAP_INDEX_URL sets it")
E003 = error("install.E003", "{what} on {disk} during install: {free_mb} MB free, "
             "{used_mb} MB written",
             "free space on {disk} or enlarge it; nothing was published")
E004 = error("install.E004", "{module} does not import: {reason}",
             "the environment was not published; fix the requirement that provides it")
E005 = error("install.E005", "{count} requirement(s) not met by the image, e.g. {first}",
             "rebuild the image with them, or use BOOTSTRAP_MODE=volume")
E006 = error("install.E006", "the build lease was taken over by another worker",
             "this worker stalled past BOOTSTRAP_LEASE_TIMEOUT_S; raise it")
E007 = error("install.E007", "creating the environment failed: {reason}",
             "the cause holds the command and its output")
E008 = error("install.E008", "waited {waited} s for {holder} to build the environment",
             "that worker is stuck; its lease is taken over {timeout} s after its last "
             "heartbeat (BOOTSTRAP_LEASE_TIMEOUT_S)")
W001 = warning("install.W001", "inconsistent environment: {detail}",
               "the installer's check reports it; pin compatible versions")
W002 = warning("install.W002", "known-bad versions: {detail}",
               "pin versions that match (torch, torchaudio and torchcodec move together)")
W003 = warning("install.W003", "the environment was not packed: {reason}",
               "it is published without its packed form; boots run it from the volume "
               "(hydrate.W001)")
W004 = warning("install.W004", "pip cannot apply the app's overrides: {overrides}",
               "install uv (pip install uv) or set BOOTSTRAP_INSTALLER=uv; with pip the "
               "packages' own requirements stand (F5-TTS's gradio holds runpod at 1.10.0)")
I001 = info("install.I001", "environment {key}: {count} packages, no installer run", "")
I002 = info("install.I002", "{count} requirement(s) and {imports} import(s) verified in {python}",
            "")
I003 = info("install.I003", "image mode: would verify {count} requirement(s) and {imports} "
                            "import(s) in {python}", "")


def _index(ctx: Context) -> str:
    url = ctx.config.index_url or "(the installer's default)"
    return str(redaction.redact(url))


def _disk_full(build: Build, text: str) -> StageFailed:
    """E003 naming the disk that filled: the volume, or the temp dir or an operator's
    ``UV_CACHE_DIR`` on the container disk."""
    written = [build.staging.parent, Path(tempfile.gettempdir())]
    if os.environ.get("UV_CACHE_DIR"):
        written.append(Path(os.environ["UV_CACHE_DIR"]))
    full = diskspace.fullest(written)
    disk = diskspace.describe_disk(full)
    what = "disk quota exceeded" if diskspace.quota_in(text) else "no space left"
    used = diskspace.used_mb(build.staging) if build.staging.exists() else 0
    return StageFailed(E003.at(full, what=what, disk=disk, used_mb=used,
                               free_mb=diskspace.free_mb(full)), text)


def _install(ctx: Context, build: Build) -> int:
    """Run the installer until it succeeds; the number of attempts it took."""
    config = ctx.config
    requirements = build.staging / ".bootstrap-requirements.txt"
    requirements.write_text(build.wanted.requirements.text())
    overrides = None
    if build.wanted.requirements.overrides:
        overrides = build.staging / ".bootstrap-overrides.txt"
        overrides.write_text(build.wanted.requirements.overrides_text())
    argv = build.wanted.installer.install_argv(build.python, requirements, config, overrides)
    attempts = max(config.install_attempts, 1)
    for attempt in range(1, attempts + 1):
        if build.lease.lost:
            raise StageFailed(E006.at(build.lease.path))
        try:
            build.wanted.installer.run(argv, timeout_s=config.install_timeout_s,
                                on_line=Throttle("install.output"), target=build.staging)
            return attempt
        except CommandFailed as exc:
            text = exc.render()
            if diskspace.text_says_full(text):
                raise _disk_full(build, text) from None
            transient = installer.is_transient(exc)
            first = _first_error(exc, transient)
            if not transient:
                raise StageFailed(E001.at(build.key, reason=first), text) from None
            if attempt == attempts:
                raise StageFailed(E002.at(build.key, attempts=attempts, reason=first,
                                          index=_index(ctx)), text, transient=True) from None
            delay = backoff.wait_s(config.install_backoff_s, attempt, MAX_WAIT_S)
            events.emit("warn", "install.retry", attempt=attempt, attempts=attempts,
                        delay_s=delay, reason=first,
                        msg=f"transient install failure, retrying in {delay:g} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def _first_error(exc: CommandFailed, transient: bool = False) -> str:
    """The installer's line that says why: for a transient failure the root cause (the
    connection error), else the resolver's "because ..." or the first error line."""
    if exc.timed_out:
        return f"timed out after {exc.result.duration_s:.0f} s"
    lines = [line.strip().removeprefix("cause:").strip()
             for line in exc.result.stderr.splitlines() if line.strip()]
    if transient:
        causes = [line for line in lines
                  if any(marker in line.lower() for marker in installer.TRANSIENT)]
        if causes:
            return _short(causes[-1])
    for wanted in ("because", "error"):
        for line in lines:
            if wanted in line.lower():
                return _short(line)
    return _short(lines[-1]) if lines else f"exit {exc.result.returncode}"


def _short(line: str) -> str:
    line = str(redaction.redact(line))
    return line if len(line) <= 120 else line[:117] + "..."


def _probe(python: Path, imports: list[str], requirements: list[str]) -> dict[str, Any]:
    spec = json.dumps({"imports": imports, "requirements": requirements})
    result = command.run([python, "-I", envprobe.__file__, spec], timeout_s=600)
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _import_failures(probe: dict[str, Any]) -> list[Message]:
    return [E004.at(module, module=module, reason=outcome["error"])
            for module, outcome in probe["imports"].items() if "error" in outcome]


def _warnings(versions: dict[str, str]) -> list[Message]:
    return [W002.at(problem.split()[0], detail=problem) for problem in compat.problems(versions)]


def _unapplied(wanted: Wanted) -> list[Message]:
    overrides = wanted.requirements.overrides
    if overrides and wanted.installer.name != "uv":
        return [W004.at(wanted.installer.label, overrides="; ".join(overrides))]
    return []


def _consistency(build: Build) -> list[Message]:
    try:
        build.wanted.installer.run(build.wanted.installer.check_argv(build.python), timeout_s=300)
    except CommandFailed as exc:
        lines = f"{exc.result.stdout}\n{exc.result.stderr}".strip().splitlines()
        problems = _unexpected(lines, build.wanted.requirements.overrides)
        if problems or not lines:
            return [W001.at(build.key, detail=(problems or ["check failed"])[0][:120])]
    return []


# What a check says of a missing or mismatched requirement: "f5-tts 1.1 requires gradio,
# which is not installed." and "... has requirement x>=2, but you have x 1" (pip);
# "The package `f5-tts` requires `gradio>=6`, but it's not installed" (uv).
_ABOUT = re.compile(r"(?:requires|has requirement) [`'\"]?([A-Za-z0-9][A-Za-z0-9._-]*)")
_TALLY = re.compile(r"^(Using Python |Checked \d+ packages?|Found \d+ incompatibilit)")


def _unexpected(lines: list[str], overrides: tuple[str, ...]) -> list[str]:
    """The check's complaints less those about a package the app's overrides replaced: the
    override is the app's decision (App.overrides), not a broken environment."""
    replaced = {_canonical(re.split(r"[\s;<>=!~\[]", line, maxsplit=1)[0]) for line in overrides}

    def expected(line: str) -> bool:
        found = _ABOUT.search(line)
        return bool(_TALLY.match(line.strip())) or (
            found is not None and _canonical(found.group(1)) in replaced)

    return [line for line in lines if line.strip() and not expected(line)]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pack(ctx: Context, build: Build, messages: list[Message]) -> packs.Pack | None:
    """The packed form the hydrate stage copies to the container disk, written before the
    marker so that it is published with the environment or not at all. A failure leaves
    the environment unpacked, with a warning: boots then run it from the volume."""
    if ctx.config.hydrate == "never":
        return None
    # Console scripts get their final path now (publish would do it after the pack).
    envstore.retarget_scripts(build.staging / "bin", build.staging, build.wanted.final)
    try:
        return packs.write(build.staging, timeout_s=ctx.config.install_timeout_s)
    except packs.PackFailed as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and diskspace.is_full(cause):
            raise cause from None  # the volume is full: the build's own E003 says so
        messages.append(W003.at(build.key, reason=str(exc)))
        return None


def _create(ctx: Context, build: Build) -> None:
    """An empty environment in the staging directory."""
    found = build.wanted.installer
    try:
        found.run(found.create_argv(build.staging, ctx.config.system_site_packages),
                  timeout_s=300)
    except (CommandFailed, OSError) as exc:
        text = exc.render() if isinstance(exc, CommandFailed) else str(exc)
        if diskspace.text_says_full(text) or (isinstance(exc, OSError)
                                              and diskspace.is_full(exc)):
            raise _disk_full(build, text) from None
        raise StageFailed(E007.at(build.staging, reason=text.splitlines()[0][:120]),
                          text) from None


def _wait_s(ctx: Context) -> float:
    # the longest a healthy build can take: every install attempt, plus creating the env
    return ctx.config.install_timeout_s * ctx.config.install_attempts + 120


def build(ctx: Context, wanted: Wanted) -> Outcome:
    """The whole build, one transaction: lease → look again → create → install → verify →
    publish → release. The lease is held by the ``with`` block alone; another worker that
    publishes the environment first (before this one took the lease, or while it waited)
    ends the transaction with that environment in use."""
    store = envstore.Store(ctx.config.volume)
    lease = Lease(store.locks, f"env-{wanted.key}", Owner(ctx.worker_id),
                  ctx.config.lease_timeout_s)
    facts: dict[str, Any] = {"key": wanted.key}
    while True:
        seen = store.identity(wanted.final)

        def published(seen: tuple[int, int] | None = seen) -> bool:
            return store.identity(wanted.final) not in (seen, None)

        try:
            with lease.holding(done=published, wait_s=_wait_s(ctx)) as held:
                # look again: no other worker can be building it while this one holds it
                if held and envstore.health(wanted.final) is not None:
                    staging = store.staging(wanted.key, ctx.worker_id)
                    outcome = _build(ctx, Build(wanted, staging, lease), store, facts)
                    break
        except WaitedTooLong as exc:
            raise StageFailed(E008.at(lease.path, waited=int(_wait_s(ctx)),
                                      holder=str(exc).rpartition("for ")[2],
                                      timeout=int(ctx.config.lease_timeout_s))) from None
        # another worker published it: use it, unless it is unhealthy too (then rebuild)
        if envstore.health(wanted.final) is None:
            envstore.mark_used(wanted.final)
            envbuild.use_env(ctx, wanted.final)
            reused = _reused(wanted.final)
            reused.facts["built_by_another_worker"] = True
            return reused
    # the lease is released: what remains is housekeeping
    busy = {p.name[len("env-"):-len(".lease")] for p in store.locks.glob("env-*.lease")}
    removed = store.gc(ctx.config.envs_keep, wanted.key, busy)
    if removed:
        outcome.facts["removed_envs"] = removed
    return outcome


def _build(ctx: Context, build: Build, store: envstore.Store,
           facts: dict[str, Any]) -> Outcome:
    """Holding the lease: nothing else builds this key. The staging directory is published
    or removed before this returns, whatever happens."""
    wanted = build.wanted
    store.discard(wanted.final)  # unhealthy, if there at all (the venv stage said why)
    removed = store.clean_leftovers(build.key)
    if removed:
        facts["removed_leftovers"] = removed
    if build.lease.took_over is not None:
        facts["took_over_lease_of"] = build.lease.took_over.describe()
    published = False
    try:
        _create(ctx, build)
        started = time.monotonic()
        attempts = _install(ctx, build)
        cache = wanted.installer.build_cache(build.staging)
        if cache is not None and cache.exists():  # the environment keeps its files: hard links
            shutil.rmtree(cache)
        install_s = round(time.monotonic() - started, 2)
        probe = _probe(build.python, [*WORKER_MODULES, *ctx.config.import_check], [])
        failures = _import_failures(probe)
        if failures:
            raise StageFailed(failures[0])
        messages = _consistency(build) + _warnings(probe["versions"]) + _unapplied(wanted)
        packed = _pack(ctx, build, messages)
        envstore.write_marker(build.staging, {
            "key": build.key, "inputs": wanted.inputs, "python": platform.python_version(),
            "base_python": os.path.realpath(sys.executable), "created": time.time(),
            "built_by": ctx.worker_id, "installer": wanted.installer.label,
            "versions": probe["versions"], "imports": probe["imports"],
            "install_s": install_s, "reason": wanted.reason,
            **({packs.RECORD: packed.to_dict()} if packed is not None else {}),
        })
        try:
            final = store.publish(build.staging, build.key)
        except FileExistsError:  # another worker published first (a lease takeover race)
            final = wanted.final
        else:
            published = True
        envbuild.use_env(ctx, final)
        return Outcome(facts={**facts, "built": published, "attempts": attempts,
                              "install_s": install_s, "packages": len(probe["versions"]),
                              "imports_ms": probe["imports"],
                              "packed": packed.to_dict() if packed is not None else None},
                       messages=messages)
    except OSError as exc:
        if diskspace.is_full(exc):
            raise _disk_full(build, str(exc)) from None
        raise
    finally:
        if not published:
            store.discard(build.staging)


def _verify_in_place(ctx: Context) -> Outcome:
    """Image mode (or local mode without an environment): nothing to install; prove what
    the interpreter has."""
    reqs = load(ctx.config)
    imports = [*ctx.config.import_check]
    if not reqs.configured and not imports:
        return Outcome(facts={"verified": 0}, skipped=True)
    python = envbuild.python_in_use(ctx)
    probe = _probe(python, imports, list(reqs.lines))
    failures = _import_failures(probe)
    if failures:
        raise StageFailed(failures[0])
    if probe["unmet"]:
        raise StageFailed(E005.at(python, count=len(probe["unmet"]), first=probe["unmet"][0]),
                          "\n".join(probe["unmet"]))
    return Outcome(facts={"imports_ms": probe["imports"], "packages": len(probe["versions"])},
                   messages=[I002.at(python, count=len(reqs.lines), imports=len(imports),
                                     python=python), *_warnings(probe["versions"])])


def _reused(env: Path) -> Outcome:
    marker = envstore.read_marker(env) or {}
    versions: dict[str, str] = marker.get("versions", {})
    key = marker.get("key", env.name)
    return Outcome(facts={"key": key, "reused": True, "built": False,
                          "packages": len(versions)},
                   messages=[I001.at(env, key=key, count=len(versions)), *_warnings(versions)])


def check(ctx: Context) -> list[Message]:
    """The venv stage's check says what would be built; here only image mode has news."""
    if ctx.config.mode != "image":
        return []
    try:
        count = len(load(ctx.config).lines)
    except RequirementsMissing:
        return []  # venv.E001 names it
    return [I003.at(sys.executable, count=count, imports=len(ctx.config.import_check),
                    python=sys.executable)]


def run(ctx: Context) -> Outcome:
    wanted = envbuild.wanted(ctx)
    if wanted is not None:
        return build(ctx, wanted)
    env = envbuild.env_in_use(ctx)
    if env is not None:
        return _reused(env)
    return _verify_in_place(ctx)


STAGE = Stage(name="install", run=run, check=check, side=Side.SUPERVISOR,
              exit_code=ExitCode.INSTALL, deadline_s=3600)
