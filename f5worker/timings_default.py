"""Whether the model stage loads the word aligner: the ``timings`` setting, or, on an
endpoint configured with the replaced worker's settings alone (``S3_BUCKET``, ``AWS_*``
and no ``BUCKET_*``), yes unless ``BOOTSTRAP_TIMINGS`` says otherwise.

Word timings were that worker's main feature and its clients ask for them with no setting
of ours: the aligner is loaded at the boot there, not on the first job that asks, because
MMS_FA's first fetch (1.2 GB) would spend that job's budget; the boot's model stage has
its own, longer deadline (docs/migrating.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bootstrap.kernel.config import Config
from f5worker import settings

OLD_REQUIRED = ("S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
NEW_NAMES = ("BUCKET_NAME", "BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID",
             "BUCKET_SECRET_ACCESS_KEY")


def old_settings_in_use(env: Mapping[str, str]) -> bool:
    """The bucket comes from the replaced worker's names, as the storage stage maps them."""
    if any(env.get(name, "").strip() for name in NEW_NAMES):
        return False
    return all(env.get(name, "").strip() for name in OLD_REQUIRED)


def timings_on(config: Config, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if settings.of(config).timings:
        return True
    # An explicit BOOTSTRAP_TIMINGS (0, false) is the operator's choice, kept.
    return old_settings_in_use(env) and "BOOTSTRAP_TIMINGS" not in env
