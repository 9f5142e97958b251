"""A whole local-mode boot through the real supervisor and worker: cuda (CPU allowed),
audio, model and warmup with the tiny model, then serve answering one job with a WAV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from f5worker.f5 import expected_samples
from f5worker.handler import tiny_model

REPO = Path(__file__).resolve().parents[2]


def test_local_boot_with_the_tiny_model_serves_a_job_and_writes_the_wav(
        tiny_volume: Path) -> None:
    import soundfile

    text = "Hello from a local boot."
    env = {**os.environ, "BOOTSTRAP_MODE": "local", "BOOTSTRAP_VOLUME": str(tiny_volume),
           "BOOTSTRAP_LOG_FORMAT": "json",
           "BOOTSTRAP_HANDLER": "f5worker.handler.f5tts:make_handler",
           "BOOTSTRAP_TEST_INPUT": json.dumps({"text": text, "voice": "default", "seed": 5,
                                               "nfe_step": 4})}
    env.update({f"BOOTSTRAP_{k.upper()}": v
                for k, v in tiny_model.settings(tiny_volume).items()})
    env.pop("BOOTSTRAP_SKIP", None)
    done = subprocess.run([sys.executable, "-m", "bootstrap", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    summary = events[-1]
    assert done.returncode == 0 and summary["status"] == "ok", done.stdout[-3000:]
    assert list(summary["stages"]) == ["preflight", "volume", "venv", "install", "hydrate",
                                       "cuda", "audio", "model", "warmup", "storage", "serve"]
    codes = [e.get("code") for e in events if e["event"] == "message"]
    assert "cuda.W001" in codes  # the CPU is used, and said so
    written = [e for e in events if e["event"] == "job.written"]
    samples, rate = soundfile.read(written[0]["path"])
    ref = int(tiny_model.VOICE_SECONDS * tiny_model.SAMPLE_RATE)
    assert rate == 24000
    assert len(samples) == expected_samples(ref, tiny_model.VOICE_TEXT, text)
