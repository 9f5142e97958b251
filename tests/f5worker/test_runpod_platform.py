"""The F5-TTS worker with the tiny model, booted by ``bootstrap run`` and served by the real
RunPod SDK's production loop through the stand-in of RunPod's worker API
(tests/runpod_standin.py); and the same boot failing in the app's model stage, which fails
one queued job instead of leaving it queued."""

from __future__ import annotations

import base64
import shutil
import signal
from pathlib import Path

from f5worker.handler import tiny_model
from f5worker.stages import model
from tests.boots import finish_boot, start_boot
from tests.runpod_standin import failed_one_job, standin

NO_INTERNET = {"RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true", "RUNPOD_SKIP_GPU_CHECK": "true"}


def start(volume: Path, workdir: Path, env: dict[str, str]):  # type: ignore[no-untyped-def]
    settings = {**tiny_model.settings(volume), "skip": "", "handler": ""}
    return start_boot(volume, env={**env, **NO_INTERNET}, cwd=workdir, **settings)


def test_the_tiny_model_answers_a_queued_job_through_the_production_loop(
        volume: Path, tmp_path: Path) -> None:
    shutil.rmtree(volume / ".bootstrap" / "reports", ignore_errors=True)  # the copy's, not ours
    with standin() as api:
        job = api.add_job({"text": "Hello from the platform.", "voice": "default", "seed": 1,
                           "nfe_step": 2})
        proc = start(volume, tmp_path, api.env())
        done = api.result(job, timeout=240)
        proc.send_signal(signal.SIGTERM)
        result = finish_boot(proc, [], volume)
    assert not done.failed, done.body
    assert base64.b64decode(done.body["output"]["audio"])[:4] == b"RIFF"
    assert result.last["status"] == "stopped" and result.report()["ready_ms"] is not None


def test_a_boot_failing_in_the_model_stage_fails_one_queued_job(
        volume: Path, tmp_path: Path) -> None:
    (volume / tiny_model.ROOT / "model.safetensors").unlink()
    with standin() as api:
        first, second = api.add_job({"text": "a"}), api.add_job({"text": "b"})
        proc = start(volume, tmp_path, api.env())
        result = finish_boot(proc, [], volume, timeout=240)
        assert result.returncode == 16, result.stdout[-3000:]
        failed_one_job(api, result.events, "model", model.E001.id, model.E001.hint[:20],
                       first)
        assert [j["id"] for j in api.queue] == [second]
