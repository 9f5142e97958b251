"""A whole boot answering one job, against the same handler run the way RunPod's template
runs it, measured side by side in one run.

Method (docs/performance.md): each command runs N times, interleaved (A, B, C, then B, C,
A, ...: the order turns each round) after one warm-up each (page cache, .pyc files), so the
noise of this shared machine falls on all alike; we report medians and the ratio boot /
template.

- template: `python handler.py --test_input '{"input": ...}'`, a handler file that defines
            the echo handler and calls `runpod.serverless.start` itself, as RunPod's worker
            template does: one interpreter, the SDK, one job, exit.
- boot:     `bootstrap run` in local mode with the echo handler (bootstrap/echo.py) and
            `BOOTSTRAP_TEST_INPUT` (the same job): the supervisor and its stages (preflight,
            volume, venv, install and hydrate with nothing to do), the worker and its
            stages (storage, serve; cuda, audio, model and warmup skipped), the SDK, the
            job, the report and the summary.
- boot@TREE (with `--also TREE`, repeatable): the same boot from another checkout of
            bootstrap (e.g. the code before a change), interleaved with the others.

Usage: python bench/echo_vs_template.py [--runs 9] [--also /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET = 1.30  # issue 12: the boot at most 1.30x the template
JOB_INPUT = {"text": "hello"}
TEMPLATE = '''\
import runpod


def handler(job):
    return {"echo": job.get("input"), "worker_id": "template"}


runpod.serverless.start({"handler": handler})
'''


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}")
    return elapsed


def clean_env() -> dict[str, str]:
    """This environment without settings, and with bytecode caching on: the warm-up run
    writes the .pyc files every later run reads, as an installed package has them (a shell
    with PYTHONDONTWRITEBYTECODE would make every boot compile bootstrap from source)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("BOOTSTRAP_") and k != "PYTHONDONTWRITEBYTECODE"}


def boot_env(tree: Path, volume: Path) -> dict[str, str]:
    env = clean_env()
    env.update({
        "PYTHONPATH": str(tree),  # this checkout first, ahead of any installed bootstrap
        "BOOTSTRAP_MODE": "local", "BOOTSTRAP_VOLUME": str(volume),
        "BOOTSTRAP_LOG_FORMAT": "json", "BOOTSTRAP_SKIP": "cuda,audio,model,warmup",
        "BOOTSTRAP_HANDLER": "bootstrap.echo:make_handler",
        "BOOTSTRAP_TEST_INPUT": json.dumps(JOB_INPUT),
        "BOOTSTRAP_FALLBACK_REPORTS": str(volume / "fallback"),
    })
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--also", type=Path, action="append", default=[],
                        help="another checkout of bootstrap to boot from, interleaved")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-template-"))
    (work / "handler.py").write_text(TEMPLATE)
    py = sys.executable
    template_env = clean_env()
    template_env.pop("PYTHONPATH", None)
    # name -> (argv, env, cwd)
    commands = {
        "template": ([py, "handler.py", "--test_input", json.dumps({"input": JOB_INPUT})],
                     template_env, work),
        "boot": ([py, "-m", "bootstrap", "run"], boot_env(REPO, work / "volume"), REPO),
    }
    for index, tree in enumerate(args.also):
        tree = tree.resolve()
        commands[f"boot@{tree.name}"] = ([py, "-m", "bootstrap", "run"],
                                         boot_env(tree, work / f"volume-{index}"), tree)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for argv, env, cwd in commands.values():
        timed(argv, env, cwd)
    names = list(commands)
    for run in range(args.runs):
        # the order turns each round, so no command always follows the same one
        for name in names[run % len(names):] + names[:run % len(names)]:
            argv, env, cwd = commands[name]
            samples[name].append(timed(argv, env, cwd))
    median = {name: statistics.median(values) for name, values in samples.items()}
    result = {
        "runs": args.runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "median_s": {name: round(value, 3) for name, value in median.items()},
        "min_s": {name: round(min(values), 3) for name, values in samples.items()},
        "samples_s": {name: [round(v, 2) for v in values] for name, values in samples.items()},
        "ratio_to_template": {name: round(value / median["template"], 3)
                              for name, value in median.items() if name != "template"},
        "budget": BUDGET,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
