"""Cold start of the F5-TTS worker: its environment and model on a slow network volume,
against the same on a local disk, side by side in one run.

Method (docs/performance.md, "Cold start from the volume"):

- The volume is the test bed of tests/environment/slowfs.py: a FUSE passthrough of a local
  directory that adds a latency to every metadata operation (lookup, getattr, open,
  readdir, ...) and caps read bandwidth, with MooseFS's default caching (attr 1 s,
  entry 0, negative 0, direntry 1 s, data cache kept while unchanged).
- The environment is the real one: this checkout's .venv (torch 2.9.1 with its CUDA
  libraries, torchaudio, f5-tts, runpod; 8.5 GB, 69,500 files), published once on the
  backing directory as bootstrap publishes an environment (under the key a boot with the
  F5 extra as its requirements computes, with its marker and its packed form), its
  libraries hard-linked from .venv so that preparing it costs no 8 GB copy. Building
  it with the install stage instead would download and byte-compile torch: not what is
  measured here. The tiny random F5-TTS model (f5worker/handler/tiny_model.py) is on the volume.
- Each boot is `bootstrap run` in volume mode, CPU allowed, with one test job, after
  `echo 3 > /proc/sys/vm/drop_caches` (a cold boot: nothing in the page cache, no
  dentries). Time-to-ready is the `boot.ready` event's `ready_ms`.
- Per latency, three variants, interleaved (local, today, new, local, ...):
    local  the volume is the backing directory itself, on the local disk (the baked
           image's case: everything local, same files)
    today  through the slow volume, BOOTSTRAP_HYDRATE=never: the worker runs from the
           volume, as before this change
    first  as new, but without the records an earlier boot leaves: the first boot on a
           volume, which copies the whole pack without reading ahead (and records)
    full   as new, but BOOTSTRAP_HYDRATE_USED=0: the whole pack unpacked, with the
           read-ahead (the second round's default)
    new    through the slow volume with the default (hydrate auto), an empty copy
           directory each run (a new container); before the first one, one unmeasured
           boot records the large files' pages a boot reads (bootstrap/environment/
           readahead.py) and packs the part of the environment it used (used_part.py), as
           the first boot on a real volume does for every later one

Usage: python bench/cold_start.py [--latencies 0.1 0.5 1 2] [--mb-s 500] [--runs 1]
                                   [--only local today first full new] [--today-runs N]

Root only (FUSE mounts, drop_caches). About 10-15 minutes for one run of the four
latencies on the 2-core development machine, most of it the 'today' boots.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # a script: the repository's tests package is not installed
from bootstrap.coldstart import packs, readahead, used_part  # noqa: E402
from bootstrap.environment import envkey, envstore, installer, requirements  # noqa: E402
from bootstrap.kernel.config import Config  # noqa: E402
from tests.environment import slowfs  # noqa: E402  (the tests' slow volume)

CACHE = REPO / ".cache" / "bench-cold-start"
VARIANTS = ("local", "today", "first", "full", "new")
JOB = json.dumps({"text": "Hello there.", "voice": "default"})
WORKER_STAGES = ("cuda", "audio", "model", "warmup")


def f5_requirements() -> str:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return "\n".join(pyproject["project"]["optional-dependencies"]["f5"]) + "\n"


def config_for(volume: Path) -> Config:
    from f5worker.handler import tiny_model

    # The app the boots serve: its overrides are part of the environment's key.
    return Config(mode="volume", volume=volume, requirements_text=f5_requirements(),
                  app=tiny_model.APP)


def env_key(volume: Path) -> tuple[str, dict[str, Any], str]:
    config = config_for(volume)
    label = installer.find(config.installer).label
    inputs = envkey.inputs(config, requirements.load(config), label)
    return envkey.key(inputs), inputs, label


def closure(wanted: tuple[str, ...]) -> list[str]:
    """The files (relative to site-packages) of the distributions ``wanted`` needs, with
    their dependencies, as installed in this interpreter: the environment the install
    stage would build from the same requirements, without .venv's dev tools."""
    from packaging.requirements import Requirement

    from f5worker.app import OVERRIDES

    # The app's overrides replace what the packages ask for (gradio: never installed).
    dropped = set()
    for line in OVERRIDES:
        override = Requirement(line)
        if override.marker is not None and not override.marker.evaluate():
            dropped.add(override.name.lower())
    seen: set[str] = set()
    files: set[str] = set()
    todo = [(Requirement(text), frozenset[str]()) for text in wanted]
    while todo:
        req, _ = todo.pop()
        name = req.name.lower().replace("_", "-")
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen or name in dropped:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(name)
        files.update(str(f) for f in dist.files or [] if not str(f).startswith(".."))
        for text in dist.requires or []:
            dep = Requirement(text)
            extras = req.extras or {""}
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
                todo.append((dep, frozenset()))
    return sorted(f for f in files if "__editable__" not in f)


def publish(source: Path, volume: Path) -> Path:
    """``source`` (a virtualenv) published on ``volume`` as the install stage would."""
    key, inputs, label = env_key(volume)
    store = envstore.Store(volume)
    final = store.path(key)
    packed = packs.find(final, envstore.read_marker(final) or {})
    if (envstore.health(final) is None and packed is not None and packed.path.exists()
            and packed.compressed == (packs.zstd() is not None)):
        return final  # published before, in the form a build here would pack it
    staging = store.staging(key, "bench")
    shutil.rmtree(staging, ignore_errors=True)
    store.discard(final)
    staging.mkdir(parents=True)
    print(f"publishing {source} as {final} ...", file=sys.stderr)
    for entry in source.iterdir():
        if entry.name != "lib":  # bin/ is rewritten (scripts retargeted): real copies
            subprocess.run(["cp", "-a", str(entry), str(staging / entry.name)], check=True)
    site = next(source.glob("lib/python3*/site-packages"))
    wanted = requirements.Requirements(tuple(f5_requirements().splitlines()), "f5")
    files = closure(wanted.all_lines)
    for rel in files:  # the 8 GB: hard links, never written to by a boot
        target = staging / site.relative_to(source) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(site / rel, target)
    envstore.retarget_scripts(staging / "bin", source, final)
    # The install stage byte-compiles (uv --compile-bytecode); uv's own .venv install does
    # not. Without .pyc files every boot compiles what it imports and measures that instead.
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                    str(staging / site.relative_to(source))], stdout=subprocess.DEVNULL)
    print(f"byte-compiled in {time.monotonic() - started:.0f} s", file=sys.stderr)
    started = time.monotonic()
    pack = packs.write(staging, timeout_s=3600)
    print(f"packed in {time.monotonic() - started:.0f} s: {pack.to_dict()}", file=sys.stderr)
    envstore.write_marker(staging, {
        "key": key, "inputs": inputs, "python": platform.python_version(),
        "base_python": os.path.realpath(sys.executable), "created": time.time(),
        "built_by": "bench/cold_start.py", "installer": label, "versions": {},
        "imports": {}, "install_s": 0, "reason": "missing", packs.RECORD: pack.to_dict()})
    return store.publish(staging, key)


def prepare(source: Path) -> Path:
    backing = CACHE / "volume"
    backing.mkdir(parents=True, exist_ok=True)
    publish(source, backing)
    if not (backing / "models" / "tiny" / "model.safetensors").exists():
        subprocess.run([sys.executable, "-m", "f5worker.handler.tiny_model", str(backing)],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return backing


def boot(volume: Path, hydrate: str, hydrate_dir: Path, used: bool = True) -> dict[str, Any]:
    from f5worker.handler import tiny_model

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOTSTRAP_", "UV_"))}
    env.update({f"BOOTSTRAP_{k.upper()}": v for k, v in tiny_model.settings(volume).items()})
    env.update({
        "BOOTSTRAP_MODE": "volume", "BOOTSTRAP_VOLUME": str(volume),
        "BOOTSTRAP_REQUIREMENTS_TEXT": f5_requirements(), "BOOTSTRAP_ALLOW_CPU": "1",
        "BOOTSTRAP_LOG_FORMAT": "json", "BOOTSTRAP_TEST_INPUT": JOB,
        "BOOTSTRAP_MIN_FREE_VOLUME_MB": "1", "BOOTSTRAP_HYDRATE": hydrate,
        "BOOTSTRAP_HYDRATE_DIR": str(hydrate_dir), "PYTHONPATH": str(REPO),
        "BOOTSTRAP_HYDRATE_USED": "1" if used else "0",
        "BOOTSTRAP_FALLBACK_REPORTS": str(CACHE / "fallback-reports"),
    })
    # no deadlines: importing torch from the slowest volume takes longer than cuda's 120 s
    env.update({f"BOOTSTRAP_DEADLINE_{stage.upper()}": "0" for stage in WORKER_STAGES})
    slowfs.drop_caches()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bootstrap", "run"], capture_output=True,
                          text=True, env=env, cwd=CACHE, timeout=1800)
    wall = time.monotonic() - started
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    ready = [e for e in events if e["event"] == "boot.ready"]
    hydrated = [e for e in events if e["event"] == "stage" and e.get("stage") == "hydrate"
                and e.get("status") != "start"]
    if not ready or proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-5:]) + proc.stderr[-2000:]
        raise RuntimeError(f"boot failed (exit {proc.returncode}):\n{tail}")
    facts = hydrated[0].get("facts", {}) if hydrated else {}
    later = [e for e in events if e["event"] == "hydrate.later"]
    return {"ready_s": ready[0]["ready_ms"] / 1000, "wall_s": wall,
            "later_s": later[0].get("s") if later else None,
            "stages": ready[0]["stages"], "from": facts.get("from"), "form": facts.get("form"),
            "files": facts.get("used_files", facts.get("files")),
            "lookup_ms": facts.get("lookup_ms"), "prefetch_mb": facts.get("prefetch_mb")}


@contextlib.contextmanager
def no_record(backing: Path, hide: bool) -> Iterator[None]:
    """The environment without the records an earlier boot leaves (the pages it read, the
    part it used), while the block runs; the boot records new ones, and the measured ones
    are put back after."""
    env = envstore.Store(backing).path(env_key(backing)[0])
    records = [env / readahead.RECORD, env / used_part.RECORD]
    if hide:
        for record in records:
            os.replace(record, record.with_name(f"{record.name}.aside"))
    try:
        yield
    finally:
        if hide:
            for record in records:
                os.replace(record.with_name(f"{record.name}.aside"), record)


def record_touched(backing: Path, mount: Path, copies: Path) -> None:
    """One boot from a full copy, not measured, when the environment lacks the records of
    the large files' pages a boot reads and of the part of it a boot used: every later
    'new' boot reads the first ahead and unpacks only the second, as every boot after the
    first one on a volume does."""
    env = envstore.Store(backing).path(env_key(backing)[0])
    if readahead.load(env) is not None and (env / used_part.RECORD).exists():
        return
    shutil.rmtree(copies, ignore_errors=True)
    result = boot(mount, "auto", copies, used=True)
    touched = readahead.load(env)
    print(f"recording boot: ready {result['ready_s']:.1f} s; recorded "
          f"{touched.bytes >> 20 if touched else 0} MB in "
          f"{len(touched.files) if touched else 0} files; used part: "
          f"{(env / used_part.RECORD).read_text() if (env / used_part.RECORD).exists() else None}",
          flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0])
    parser.add_argument("--mb-s", type=float, default=500.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--today-runs", type=int, default=None,
                        help="'today' boots in the first N runs only (at 1 ms one takes "
                             "~15 minutes here); default: every run")
    parser.add_argument("--source-env", type=Path, default=REPO / ".venv")
    parser.add_argument("--only", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/cold_start.py needs root (FUSE mounts, drop_caches)")
    backing = prepare(args.source_env.resolve())
    mount = CACHE / "mnt"
    copies = CACHE / "copies"
    results: dict[tuple[float, str], list[dict[str, Any]]] = {}
    print(f"load average before: {loadavg()}; bandwidth {args.mb_s:g} MB/s; "
          f"{args.runs} run(s)", flush=True)
    for latency in args.latencies:
        with slowfs.mounted(backing, mount, latency_ms=latency, mb_s=args.mb_s):
            if {"first", "full", "new"} & set(args.only):
                record_touched(backing, mount, copies)
            for run in range(args.runs):
                for variant in args.only:
                    if variant == "today" and run >= (args.today_runs or args.runs):
                        continue
                    shutil.rmtree(copies, ignore_errors=True)
                    volume = backing if variant == "local" else mount
                    hydrate = "auto" if variant in ("first", "full", "new") else "never"
                    with no_record(backing, variant == "first"):
                        result = boot(volume, hydrate, copies, used=variant != "full")
                    results.setdefault((latency, variant), []).append(result)
                    stages = " ".join(f"{k}={v / 1000:.1f}" for k, v in result["stages"].items())
                    print(f"{latency:g} ms run {run + 1} {variant:5}: ready "
                          f"{result['ready_s']:.1f} s (from {result['from']} "
                          f"{result['form']}, {result['files']} files, lookup "
                          f"{result['lookup_ms']}, prefetch {result['prefetch_mb']} MB, "
                          f"later {result['later_s']} s) | "
                          f"{stages}", flush=True)
    shutil.rmtree(copies, ignore_errors=True)
    print(f"load average after: {loadavg()}")
    report(args.latencies, args.only, results)


def report(latencies: list[float], variants: list[str],
           results: dict[tuple[float, str], list[dict[str, Any]]]) -> None:
    print("\ntime-to-ready, median s (ratio to local):")
    print("| latency | " + " | ".join(variants) + " |")
    print("| --- |" + " --- |" * len(variants))
    for latency in latencies:
        medians = {v: statistics.median(r["ready_s"] for r in results[(latency, v)])
                   for v in variants}
        cells = []
        for v in variants:
            ratio = f" ({medians[v] / medians['local']:.2f}x)" if "local" in medians else ""
            cells.append(f"{medians[v]:.1f}{ratio}")
        print(f"| {latency:g} ms | " + " | ".join(cells) + " |")
    print("\nstage medians, s:")
    for latency in latencies:
        for v in variants:
            runs = results[(latency, v)]
            parts = [f"{n} {statistics.median(r['stages'].get(n, 0) for r in runs) / 1000:.1f}"
                     for n in runs[0]["stages"]]
            print(f"  {latency:g} ms {v:5}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
