"""How long to wait before another attempt: doubling from a base, never over a cap.

The install stage, model downloads and storage uploads each decide for themselves which
failures are worth another attempt (their errors differ); how long to wait is the same
rule for all three, so that no setting can turn a retry into an hour of silence.
"""

from __future__ import annotations


def wait_s(base_s: float, retry: int, cap_s: float) -> float:
    """The wait before retry number ``retry`` (1 for the first): ``base_s`` doubled each
    time, at most ``cap_s``."""
    if retry < 1:
        raise ValueError(f"retry counts from 1, got {retry}")
    doublings = min(retry - 1, 64)  # 2.0 ** 1100 overflows; any cap is reached long before
    return min(base_s * 2.0 ** doublings, cap_s)
