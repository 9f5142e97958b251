"""The aligner is loaded with the replaced worker's settings alone, so its clients' word
timings need no setting of ours; an explicit BOOTSTRAP_TIMINGS still decides."""

from __future__ import annotations

from pathlib import Path

from f5worker.timings_default import timings_on
from tests.f5worker.conftest import config_for

OLD = {"S3_BUCKET": "voices", "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s"}


def test_the_old_settings_turn_timings_on(tmp_path: Path) -> None:
    assert timings_on(config_for(tmp_path), OLD)


def test_without_them_timings_stay_off_by_default(tmp_path: Path) -> None:
    assert not timings_on(config_for(tmp_path), {})
    assert not timings_on(config_for(tmp_path), {"S3_BUCKET": "voices"})  # half: storage.E010


def test_the_new_bucket_names_and_an_explicit_setting_are_the_operators_choice(
        tmp_path: Path) -> None:
    assert not timings_on(config_for(tmp_path), {**OLD, "BUCKET_NAME": "b"})
    assert not timings_on(config_for(tmp_path), {**OLD, "BOOTSTRAP_TIMINGS": "0"})
    assert timings_on(config_for(tmp_path, timings=True), {})
