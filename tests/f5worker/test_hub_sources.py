"""Where a whole boot finds the model's hub files (bootstrap/hub.py), with huggingface_hub's
own tools writing the caches, the stand-in Hub (tests/hubserver.py) on 127.0.0.1 counting
every request, and the tiny model's vocoder as the hub's file:

- RunPod's cached models (the endpoint's "Model" setting, laid out by the host before the
  worker starts): the boot downloads nothing and says the source;
- a volume cache filled by the real ``hf download`` command: found, nothing asked;
- an empty cache with four workers starting at once: one download, three waiters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from f5worker.handler import tiny_model
from tests import hubserver

REPO = Path(__file__).resolve().parents[2]
VOCODER_REPO = "org/vocos"
VOCODER_FILES = ("config.yaml", "pytorch_model.bin")


def serve_vocoder(hub: dict[str, Any], volume: Path) -> None:
    """The stand-in serves the tiny model's vocoder as ``org/vocos``; the volume loses it."""
    vocoder = volume / tiny_model.ROOT / "vocoder"
    for name in VOCODER_FILES:
        hub["files"][f"/{VOCODER_REPO}/resolve/main/{name}"] = (vocoder / name).read_bytes()
    shutil.rmtree(vocoder)


def hf_download(endpoint: str, **where: str) -> None:
    """huggingface_hub's own command line, as a user or RunPod's host runs it."""
    hf = Path(sys.executable).parent / "hf"
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", **where}
    env.pop("HF_HUB_OFFLINE", None)
    for name in VOCODER_FILES:  # one file a call: several would ask the stand-in's absent API
        subprocess.run([str(hf), "download", VOCODER_REPO, name], env=env, check=True,
                       capture_output=True, timeout=120)


def boot_env(volume: Path, endpoint: str, **over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOTSTRAP_", "HF_"))}
    env.update({f"BOOTSTRAP_{k.upper()}": v for k, v in tiny_model.settings(volume).items()})
    env.update({
        "BOOTSTRAP_MODE": "local", "BOOTSTRAP_VOLUME": str(volume), "BOOTSTRAP_LOG_FORMAT": "json",
        "BOOTSTRAP_MODEL_VOCODER": str(volume / "nowhere"),  # not at its configured path
        "BOOTSTRAP_MODEL_REPO": "org/f5", "BOOTSTRAP_VOCODER_REPO": VOCODER_REPO,
        "BOOTSTRAP_TEST_INPUT": json.dumps({"text": "From the cache.", "voice": "default",
                                            "seed": 1, "nfe_step": 2}),
        "HF_ENDPOINT": endpoint,
    })
    env.update({f"BOOTSTRAP_{k.upper()}": v for k, v in over.items()})
    return env


def model_stage(stdout: str) -> dict[str, Any]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["status"] == "ok", stdout[-3000:]
    (stage,) = [e for e in events if e["event"] == "stage" and e.get("stage") == "model"
                and e["status"] != "start"]
    assert [e for e in events if e["event"] == "job.written"], stdout[-3000:]
    return stage


def run_boot(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "bootstrap", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


def test_a_boot_with_runpods_cached_models_downloads_nothing_and_says_so(
        volume: Path, tmp_path: Path) -> None:
    hub = hubserver.new_state()
    serve_vocoder(hub, volume)
    runpod_cache = tmp_path / "huggingface-cache" / "hub"  # /runpod-volume/huggingface-cache/hub
    with hubserver.running(hub) as endpoint:
        hf_download(endpoint, HF_HUB_CACHE=str(runpod_cache))
        assert len(hub["requests"]) >= 2  # the placement itself went through the stand-in
        hub["requests"].clear()
        stdout = run_boot(boot_env(volume, endpoint, model_cache=str(runpod_cache)))
        assert hub["requests"] == [], "the boot asked the hub"
    stage = model_stage(stdout)
    sources = stage["facts"]["sources"]
    assert sorted(sources) == sorted(VOCODER_FILES)
    assert {got["source"] for got in sources.values()} == {"runpod-cache"}
    assert all(Path(got["path"]).is_relative_to(runpod_cache) for got in sources.values())
    assert not (volume / ".cache" / "huggingface").exists()  # nothing copied to the volume


def test_files_the_hf_download_command_put_in_the_volumes_cache_are_found(
        volume: Path, tmp_path: Path) -> None:
    hub = hubserver.new_state()
    serve_vocoder(hub, volume)
    with hubserver.running(hub) as endpoint:
        # what docs/handler.md (model_cache) tells a user to run to fill the volume by hand
        hf_download(endpoint, HF_HOME=str(volume / ".cache" / "huggingface"))
        hub["requests"].clear()
        stdout = run_boot(boot_env(volume, endpoint, model_cache=str(tmp_path / "none")))
        assert hub["requests"] == [], "the boot asked the hub"
    stage = model_stage(stdout)
    assert {got["source"] for got in stage["facts"]["sources"].values()} == {"volume-cache"}


RESOLVE = """
import json, sys
from pathlib import Path
from bootstrap import hub
cache, locks, worker = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
found = hub.resolve(hub.HubFile("org/vocos", "pytorch_model.bin"), hub.caches(cache, cache / "x"),
                    cache, locks, worker)
print(json.dumps(found.describe()))
"""


def test_four_workers_on_an_empty_volume_download_once_while_three_wait(
        tiny_volume: Path, tmp_path: Path) -> None:
    hub = hubserver.new_state()
    data = (tiny_volume / tiny_model.ROOT / "vocoder" / "pytorch_model.bin").read_bytes()
    hub["files"]["/org/vocos/resolve/main/pytorch_model.bin"] = data
    hub["delay_s"] = 2.0  # the download outlasts the others' start: they find the lease held
    cache, locks = tmp_path / "volume" / "hub", tmp_path / "volume" / "locks"
    with hubserver.running(hub) as endpoint:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")},
               "HF_ENDPOINT": endpoint, "PYTHONPATH": str(REPO)}
        procs = [subprocess.Popen([sys.executable, "-c", RESOLVE, str(cache), str(locks),
                                   f"worker-{i}"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(4)]
        outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    found = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(f["source"] for f in found) == ["downloaded", "waited", "waited", "waited"]
    assert len({f["path"] for f in found}) == 1
    # (huggingface_hub may also fetch its agent registry, /api/agent-harnesses: not a file)
    assert [r for r in hub["requests"] if r[0] == "GET" and "/resolve/" in r[1]] == [
        ("GET", "/org/vocos/resolve/main/pytorch_model.bin", "")]
    assert Path(found[0]["path"]).read_bytes() == data
    assert not list(locks.iterdir())
