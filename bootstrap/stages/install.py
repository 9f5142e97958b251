"""install: fill the environment the venv stage started, prove it, publish it
(FAILURES.md 5, 11, 12, 14).

Installs with uv or pip (``bootstrap.installer``), streaming output as rate-limited events,
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
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bootstrap import (
    backoff,
    command,
    compat,
    diskspace,
    envpack,
    envprobe,
    envstore,
    events,
    installer,
    redaction,
)
from bootstrap.command import CommandFailed
from bootstrap.context import Context
from bootstrap.envbuild import STATE, Build
from bootstrap.exit_codes import ExitCode
from bootstrap.message import Message, error, info, warning
from bootstrap.requirements import RequirementsMissing, load
from bootstrap.stage import Outcome, Side, Stage, StageFailed
from bootstrap.throttle import Throttle

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
W001 = warning("install.W001", "inconsistent environment: {detail}",
               "the installer's check reports it; pin compatible versions")
W002 = warning("install.W002", "known-bad versions: {detail}",
               "pin versions that match (torch, torchaudio and torchcodec move together)")
W003 = warning("install.W003", "the environment was not packed: {reason}",
               "it is published without its packed form; boots run it from the volume "
               "(hydrate.W001)")
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
    requirements.write_text(build.requirements.text())
    argv = build.installer.install_argv(build.python, requirements, config)
    attempts = max(config.install_attempts, 1)
    for attempt in range(1, attempts + 1):
        if build.lease.lost:
            raise StageFailed(E006.at(build.lease.path))
        try:
            build.installer.run(argv, timeout_s=config.install_timeout_s,
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


def _consistency(build: Build) -> list[Message]:
    try:
        build.installer.run(build.installer.check_argv(build.python), timeout_s=300)
    except CommandFailed as exc:
        detail = (exc.result.stdout or exc.result.stderr).strip().splitlines()
        return [W001.at(build.key, detail=(detail[0] if detail else "check failed")[:120])]
    return []


def _pack(ctx: Context, build: Build, messages: list[Message]) -> envpack.Pack | None:
    """The packed form the hydrate stage copies to the container disk, written before the
    marker so that it is published with the environment or not at all. A failure leaves
    the environment unpacked, with a warning: boots then run it from the volume."""
    if ctx.config.hydrate == "never":
        return None
    # Console scripts get their final path now (publish would do it after the pack).
    envstore.retarget_scripts(build.staging / "bin", build.staging, build.final)
    try:
        return envpack.write(build.staging, timeout_s=ctx.config.install_timeout_s)
    except envpack.PackFailed as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and diskspace.is_full(cause):
            raise cause from None  # the volume is full: the build's own E003 says so
        messages.append(W003.at(build.key, reason=str(exc)))
        return None


def _build(ctx: Context, build: Build) -> Outcome:
    published = False
    try:
        started = time.monotonic()
        attempts = _install(ctx, build)
        cache = build.installer.build_cache(build.staging)
        if cache is not None and cache.exists():  # the environment keeps its files: hard links
            shutil.rmtree(cache)
        install_s = round(time.monotonic() - started, 2)
        probe = _probe(build.python, [*WORKER_MODULES, *ctx.config.import_check], [])
        failures = _import_failures(probe)
        if failures:
            raise StageFailed(failures[0])
        messages = _consistency(build) + _warnings(probe["versions"])
        packed = _pack(ctx, build, messages)
        envstore.write_marker(build.staging, {
            "key": build.key, "inputs": build.inputs, "python": platform.python_version(),
            "base_python": os.path.realpath(sys.executable), "created": time.time(),
            "built_by": ctx.worker_id, "installer": build.installer.label,
            "versions": probe["versions"], "imports": probe["imports"],
            "install_s": install_s, "reason": build.reason,
            **({envpack.RECORD: packed.to_dict()} if packed is not None else {}),
        })
        store = envstore.Store(ctx.config.volume)
        try:
            final = store.publish(build.staging, build.key)
        except FileExistsError:  # another worker published first (a lease takeover race)
            final = build.final
        else:
            published = True
        ctx.state["env"] = str(final)
        ctx.state["python"] = str(Path(final) / "bin" / "python")
        facts = {"key": build.key, "attempts": attempts, "install_s": install_s,
                 "packages": len(probe["versions"]), "imports_ms": probe["imports"],
                 "packed": packed.to_dict() if packed is not None else None}
        busy = {p.name[len("env-"):-len(".lease")] for p in store.locks.glob("env-*.lease")}
        removed = store.gc(ctx.config.envs_keep, build.key, busy)
        if removed:
            facts["removed_envs"] = removed
        return Outcome(facts=facts, messages=messages)
    except OSError as exc:
        if diskspace.is_full(exc):
            raise _disk_full(build, str(exc)) from None
        raise
    finally:
        if not published:
            envstore.Store(ctx.config.volume).discard(build.staging)
        build.lease.release()
        ctx.state.pop(STATE, None)


def _verify_in_place(ctx: Context) -> Outcome:
    """Image mode (or local mode without an environment): nothing to install; prove what
    the interpreter has."""
    reqs = load(ctx.config)
    imports = [*ctx.config.import_check]
    if not reqs.configured and not imports:
        return Outcome(facts={"verified": 0}, skipped=True)
    python = Path(str(ctx.state.get("python", sys.executable)))
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
    return Outcome(facts={"key": key, "reused": True, "packages": len(versions)},
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
    build = ctx.state.get(STATE)
    if isinstance(build, Build):
        return _build(ctx, build)
    if "env" in ctx.state:
        return _reused(Path(ctx.state["env"]))
    return _verify_in_place(ctx)


STAGE = Stage(name="install", run=run, check=check, side=Side.SUPERVISOR,
              exit_code=ExitCode.INSTALL, deadline_s=3600)
