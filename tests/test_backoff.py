"""The one rule for waits between attempts (install, downloads, storage)."""

from __future__ import annotations

import pytest

from bootstrap.kernel import backoff


def test_waits_double_from_the_base() -> None:
    assert [backoff.wait_s(0.5, retry, 60) for retry in (1, 2, 3, 4)] == [0.5, 1, 2, 4]


def test_no_wait_is_over_the_cap_however_many_retries() -> None:
    assert backoff.wait_s(5, 9, 120) == 120  # uncapped it would be 1280 s
    assert backoff.wait_s(5, 5000, 120) == 120  # no overflow on absurd settings


def test_retries_count_from_one() -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        backoff.wait_s(1, 0, 10)

