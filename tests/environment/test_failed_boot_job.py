"""A boot failing in install, before any worker or SDK exists, still fails one queued job
through the stand-in of RunPod's worker API (tests/runpod_standin.py): the supervisor posts
it itself, with urllib."""

from __future__ import annotations

from pathlib import Path

from bootstrap.stages import install
from tests.environment.envboot import BootFn
from tests.runpod_standin import failed_one_job, standin


def test_a_boot_failing_in_install_fails_one_queued_job_within_5_s(
        boot: BootFn, tmp_path: Path) -> None:
    with standin() as api:
        first, second = api.add_job({"n": 1}), api.add_job({"n": 2})
        result = boot(tmp_path / "vol", BOOTSTRAP_REQUIREMENTS_TEXT="bsdemo-nonexistent==1.0",
                      **api.env())
        assert result.returncode == 13, result.output
        assert not result.named("worker.start")  # no worker, so no SDK, ever ran
        error = failed_one_job(api, result.events, "install", install.E001.id,
                               result.summary["hint"], first)
        assert "bsdemo-nonexistent" in error["cause"]
        assert [j["id"] for j in api.queue] == [second]  # left for another worker
