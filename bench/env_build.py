"""Building the environment: bootstrap against the ways it replaces, side by side in one run.

Method (docs/performance.md): every variant runs N times, interleaved (A, B, C, D, A, ...),
each cold (an empty volume and an empty installer cache of its own), from the same local
wheelhouse, so the network is not measured. Medians and ratios are reported. Two workloads:

- synthetic: tests/environment/wheelhouse.py, bootstrap's dependencies, a package of 1,500 small
             modules and two small ones (requirements ``bsdemo_a``, ``bsdemo_many``): file
             system work, nothing to resolve.
- f5deps:    the real thing the seed installed at boot, the F5 extra of pyproject.toml as
             its requirements, resolved by each installer from a wheelhouse of the 190
             distributions of bench/f5deps.txt (~400 MB of wheels, from PyPI once, cached in
             .cache/bench-wheelhouse/f5deps), less torch, triton and nvidia-*-cu12 (~4 GB:
             an empty ``torch`` wheel of the same version stands in, so what requires torch
             resolves). Needs the network on its first run.

- bootstrap-uv:  ``bootstrap run`` (volume mode, serve skipped), the venv + install stages'
                 durations from its events: key, lease, ``uv venv``, ``uv pip install
                 --compile-bytecode``, import check, pip check, marker, publish.
- bootstrap-pip: the same with ``installer = pip``.
                 For both, the installer's own run inside the stages (``install_s``) is
                 printed too: what bootstrap adds is the difference.
- seed:          the seed's way: ``python -m venv`` (with pip) then ``pip install -r``.
- bare-uv:       ``uv venv`` then ``uv pip install --compile-bytecode -r`` (same flags).
- warm:          a second boot against a built volume: venv + install stages.
- concurrent:    8 cold boots started together against one empty volume, wall time to the
                 last summary, against one cold boot's wall time; and the same two against
                 a built volume (warm), to tell the build from what every boot pays.

Usage: python bench/env_build.py [--runs 5] [--workload synthetic|f5deps|all] [--only ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # a script: the repository's tests package is not installed
from tests.environment import wheelhouse  # noqa: E402  (the tests' wheelhouse builder)

CONCURRENT = 8
CACHE = REPO / ".cache" / "bench-wheelhouse"
LEFT_OUT = ("torch==2.9.1",)  # stands for torch, triton, nvidia-*-cu12: see bench/f5deps.txt


@dataclass(frozen=True)
class Workload:
    wheels: Path
    requirements: str  # what is asked for; the installer resolves the rest from the wheels


def synthetic(root: Path) -> Workload:
    return Workload(wheelhouse.build(root / "wheelhouse"), "bsdemo_a\nbsdemo_many\n")


def f5deps(root: Path) -> Workload:
    """The F5 extra, from a wheelhouse of its real dependencies built once (network)."""
    out = CACHE / "f5deps"
    if not (out / ".complete").exists():
        out.mkdir(parents=True, exist_ok=True)
        # pip wheel: the wheels from PyPI, and the few sdist-only ones built to wheels once
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--prefer-binary", "-r", str(REPO / "bench" / "f5deps.txt"),
                        "-w", str(out)], check=True)
        name, version = LEFT_OUT[0].split("==")
        wheelhouse.write_wheel(out, name, version, {f"{name}/__init__.py": b""})
        (out / ".complete").touch()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["f5"]
    return Workload(out, "".join(f"{line}\n" for line in extra))


WORKLOADS: dict[str, Callable[[Path], Workload]] = {"synthetic": synthetic, "f5deps": f5deps}


def clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOOTSTRAP_", "PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", UV_CACHE_DIR=str(tmp / "uv-cache"),
               PYTHONPATH=str(REPO))
    return env


def boot_env(tmp: Path, load: Workload, volume: Path, installer: str) -> dict[str, str]:
    return clean_env(tmp) | {
        "BOOTSTRAP_VOLUME": str(volume), "BOOTSTRAP_LOG_FORMAT": "json",
        "BOOTSTRAP_SKIP": "cuda,audio,model,warmup,serve", "BOOTSTRAP_MIN_FREE_VOLUME_MB": "1",
        "BOOTSTRAP_FIND_LINKS": str(load.wheels), "BOOTSTRAP_NO_INDEX": "1",
        "BOOTSTRAP_REQUIREMENTS_TEXT": load.requirements, "BOOTSTRAP_INSTALLER": installer,
        "BOOTSTRAP_FALLBACK_REPORTS": str(tmp / "reports")}


def stages_ms(stdout: str) -> dict[str, int]:
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary" and summary["status"] == "ok", summary
    stages: dict[str, int] = summary["stages"]
    return stages


def boot(tmp: Path, load: Workload, volume: Path, installer: str = "uv") -> tuple[float, str]:
    volume.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bootstrap", "run"], capture_output=True,
                          text=True, env=boot_env(tmp, load, volume, installer), check=True)
    return time.perf_counter() - started, proc.stdout


# The installer's own run inside each bootstrap build (the install stage's install_s):
# what the stages add around it is the rest
INSTALLER_S: dict[str, list[float]] = {}


def installer_s(stdout: str) -> float:
    for line in stdout.splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("stage") == "install" and event.get("status") == "ok":
            return float(event["facts"]["install_s"])
    raise ValueError("no install stage in the boot's events")


def bootstrap_build(installer: str) -> Callable[[Path, Workload], float]:
    def run(tmp: Path, load: Workload) -> float:
        _, out = boot(tmp, load, tmp / "vol", installer)
        stages = stages_ms(out)
        INSTALLER_S.setdefault(f"bootstrap-{installer}", []).append(installer_s(out))
        return (stages["venv"] + stages["install"]) / 1000
    return run


def shell(tmp: Path, *commands: list[str]) -> float:
    env = clean_env(tmp)
    started = time.perf_counter()
    for argv in commands:
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def requirements_file(tmp: Path, load: Workload) -> Path:
    path = tmp / "requirements.txt"
    path.write_text("click>=8.1\npsutil>=5.9\nstructlog>=24.1\n" + load.requirements)
    return path


def seed(tmp: Path, load: Workload) -> float:
    env = tmp / "venv"
    return shell(tmp, [sys.executable, "-m", "venv", str(env)],
                 [str(env / "bin" / "pip"), "install", "--no-index", "--find-links",
                  str(load.wheels), "-r", str(requirements_file(tmp, load))])


def bare_uv(tmp: Path, load: Workload) -> float:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = tmp / "venv"
    return shell(tmp, [uv, "venv", "--quiet", "--python", sys.executable, str(env)],
                 [uv, "pip", "install", "--quiet", "--python", str(env / "bin" / "python"),
                  "--compile-bytecode", "--no-index", "--find-links", str(load.wheels),
                  "-r", str(requirements_file(tmp, load))])


def warm(tmp: Path, load: Workload) -> float:
    boot(tmp, load, tmp / "vol")
    _, out = boot(tmp, load, tmp / "vol")
    stages = stages_ms(out)
    return (stages["venv"] + stages["install"]) / 1000


def one_cold(tmp: Path, load: Workload) -> float:
    return boot(tmp, load, tmp / "vol")[0]


def one_warm(tmp: Path, load: Workload) -> float:
    boot(tmp, load, tmp / "vol")
    return boot(tmp, load, tmp / "vol")[0]


def concurrent_warm(tmp: Path, load: Workload) -> float:
    boot(tmp, load, tmp / "vol")
    return concurrent(tmp, load)


def concurrent(tmp: Path, load: Workload) -> float:
    volume = tmp / "vol"
    volume.mkdir(exist_ok=True)
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "bootstrap", "run"], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=boot_env(tmp, load, volume, "uv") | {
                                  "RUNPOD_POD_ID": f"bench-{i}"})
             for i in range(CONCURRENT)]
    for proc in procs:
        out, _ = proc.communicate()
        stages_ms(out)
    return time.perf_counter() - started


VARIANTS: dict[str, Callable[[Path, Workload], float]] = {
    "bootstrap-uv": bootstrap_build("uv"), "bootstrap-pip": bootstrap_build("pip"),
    "seed": seed, "bare-uv": bare_uv, "warm": warm, "one-cold-boot": one_cold,
    f"{CONCURRENT}-concurrent-boots": concurrent, "one-warm-boot": one_warm,
    f"{CONCURRENT}-concurrent-warm-boots": concurrent_warm,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="synthetic")
    parser.add_argument("--only", nargs="*", help="run only these variants")
    args = parser.parse_args()
    variants = {n: v for n, v in VARIANTS.items() if not args.only or n in args.only}
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    for name in names:
        root = Path(tempfile.mkdtemp(prefix="bench-env-"))
        try:
            print(f"\n=== workload: {name} ===", flush=True)
            bench(WORKLOADS[name](root), variants, args.runs, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def bench(load: Workload, variants: dict[str, Callable[[Path, Workload], float]], runs: int,
          root: Path) -> None:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(runs):
        for name, variant in variants.items():
            tmp = root / f"{name}-{i}"
            tmp.mkdir()
            times[name].append(variant(tmp, load))
            print(f"  run {i + 1} {name}: {times[name][-1]:.2f} s", flush=True)
            shutil.rmtree(tmp, ignore_errors=True)
    # Medians, and minimums: on a shared machine the fastest run is the least disturbed one
    for label, pick in (("median", statistics.median), ("min", min)):
        print(f"\n== by {label} ==")
        report({name: pick(values) for name, values in times.items()}, times)
    for name, values in INSTALLER_S.items():
        print(f"{name}: the installer's own run {statistics.median(values):.2f} s (median; "
              f"{' '.join(f'{v:.2f}' for v in values)}), the stages' own work around it is "
              f"the rest")
    INSTALLER_S.clear()


def report(pick: dict[str, float], times: dict[str, list[float]]) -> None:
    print(f"{'variant':<26} {'s':>7}  runs")
    for name, values in times.items():
        print(f"{name:<26} {pick[name]:>7.3f}  {' '.join(f'{v:.2f}' for v in values)}")
    n = CONCURRENT
    ratios = [
        ("seed / bootstrap-uv (target >= 5)", "seed", "bootstrap-uv"),
        ("bootstrap-uv / bare-uv (target <= 1.2)", "bootstrap-uv", "bare-uv"),
        ("bootstrap-pip / seed", "bootstrap-pip", "seed"),
        (f"{n} concurrent / one cold boot (target <= 1.3)", f"{n}-concurrent-boots",
         "one-cold-boot"),
    ]
    for label, top, bottom in ratios:
        if top in pick and bottom in pick:
            print(f"{label}: {pick[top] / pick[bottom]:.2f}")
    # What 8 boots cost besides the build: the same 8 against a built volume. Subtracted,
    # what is left is the build that the 8 shared, against one boot's build.
    needed = (f"{n}-concurrent-boots", f"{n}-concurrent-warm-boots", "one-cold-boot",
              "one-warm-boot")
    if all(name in pick for name in needed):
        shared = pick[needed[0]] - pick[needed[1]]
        print(f"{n} concurrent less {n} warm / one cold less one warm: "
              f"{shared / (pick[needed[2]] - pick[needed[3]]):.2f}")
    if "warm" in pick:
        print(f"warm boot, venv + install stages: {pick['warm'] * 1000:.0f} ms (target < 100)")

if __name__ == "__main__":
    main()
