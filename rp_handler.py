#!/usr/bin/env python3
"""The worker as a RunPod handler file: what RunPod's tooling and docs run directly.

    python rp_handler.py                     boot and serve, as the container's entrypoint does
    python rp_handler.py --test_input '{"input": {"text": "Hi.", "voice": "default"}}'
    python rp_handler.py --rp_serve_api --rp_api_port 8000    the SDK's local HTTP server

A handler file usually builds its model at import and calls ``runpod.serverless.start``
itself. This one does neither: it replaces itself with ``python -m bootstrap run``, the
command the container runs, so the supervisor and every stage run first and a failed boot
still ends in one JSON line that names the stage, the cause and the fix (docs/exit-codes.md).
The RunPod SDK's own flags (the set runpod 1.10-1.12 parses) are checked here and handed to
the serve stage through ``BOOTSTRAP_SERVE_ARGS``, appended to any already in the environment,
so ``runpod.serverless.start`` sees them as if this file had called it. A ``--test_input``
given here wins over ``BOOTSTRAP_TEST_INPUT``. Without ``--test_input``, off the platform,
the SDK answers ``test_input.json`` from the working directory, as for any handler file.

Everything else comes from the usual settings (``BOOTSTRAP_*``, ``bootstrap.toml``); in a
checkout, the ``bootstrap`` and ``f5worker`` packages next to this file are the ones used;
the app is the F5-TTS one unless ``BOOTSTRAP_APP`` names another.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

# The exit codes the entrypoint uses for the same failures (docs/exit-codes.md).
EXIT_PREFLIGHT = 10
MIN_PYTHON = (3, 11)


def parser() -> argparse.ArgumentParser:
    """The RunPod SDK's command line (runpod.serverless's own parser), checked up front: a
    typo would otherwise be ignored by the SDK and the worker would serve something else."""
    p = argparse.ArgumentParser(
        prog="rp_handler.py",
        description="Boot the F5-TTS worker through bootstrap; the flags go to the RunPod SDK.")
    p.add_argument("--rp_log_level", metavar="LEVEL",
                   help="the SDK's log level: ERROR, WARN, INFO or DEBUG")
    p.add_argument("--rp_debugger", action="store_true", default=None,
                   help="the SDK's debugger output")
    p.add_argument("--rp_serve_api", action="store_true", default=None,
                   help="serve the SDK's local HTTP API (/run, /runsync, ...)")
    p.add_argument("--rp_api_port", type=int, metavar="PORT", help="its port (SDK default 8000)")
    p.add_argument("--rp_api_concurrency", type=int, metavar="N", help="its worker count")
    p.add_argument("--rp_api_host", metavar="HOST", help="its address (SDK default localhost)")
    p.add_argument("--test_input", metavar="JOB",
                   help='answer this one job and exit: JSON, {"input": {...}}')
    return p


def _summary_line(code: str, msg: str, hint: str, **extra: object) -> str:
    """One event in bootstrap's summary shape, for a failure before bootstrap can run."""
    event = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "error",
             "event": "summary", "stage": "entrypoint", "status": "fail",
             "exit_code": EXIT_PREFLIGHT, "code": code, "msg": msg, "hint": hint,
             "process": "rp_handler", **extra}
    return json.dumps(event)


def _check_test_input(p: argparse.ArgumentParser, text: str) -> None:
    """The SDK would fail on these only after the whole boot; say so before it starts."""
    try:
        job = json.loads(text)
    except ValueError as exc:
        p.error(f"--test_input is not JSON: {exc}")
    if not isinstance(job, dict) or "input" not in job:
        p.error('--test_input is a job: {"input": {...}} (the input alone is what '
                "BOOTSTRAP_TEST_INPUT takes)")


def child_env(argv: list[str], environ: dict[str, str], here: Path) -> dict[str, str]:
    """The environment ``bootstrap run`` gets for this command line (``argv`` without the
    program name). Exits with a usage error (2) for a flag the SDK does not know."""
    p = parser()
    args = p.parse_args(argv)
    if args.test_input is not None:
        _check_test_input(p, args.test_input)
    env = dict(environ)
    if argv:
        # Appended: for a flag given twice, the SDK's parser keeps the last, this one.
        env["BOOTSTRAP_SERVE_ARGS"] = " ".join(
            filter(None, [environ.get("BOOTSTRAP_SERVE_ARGS", "").strip(), shlex.join(argv)]))
    if args.test_input is not None:
        # The setting would come after the flags and win; the command line is the newer word.
        env["BOOTSTRAP_TEST_INPUT"] = ""
    # This file is the F5-TTS worker's: it boots that app unless told otherwise.
    env.setdefault("BOOTSTRAP_APP", "f5worker.app:APP")
    if (here / "bootstrap" / "__init__.py").is_file():
        # A checkout: its packages, whatever the working directory or an installed copy.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here), environ.get("PYTHONPATH")]))
    return env


def main() -> None:
    if sys.version_info[:2] < MIN_PYTHON:
        version = ".".join(str(part) for part in sys.version_info[:3])
        print(_summary_line(
            "entrypoint.E002",
            f"Python {version} at {sys.executable} is too old; bootstrap needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}",
            f"run this file with Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+",
            cause="too old", python=sys.executable, version=version), flush=True)
        sys.exit(EXIT_PREFLIGHT)
    env = child_env(sys.argv[1:], dict(os.environ), Path(__file__).resolve().parent)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "bootstrap", "run"], env)


if __name__ == "__main__":
    main()
