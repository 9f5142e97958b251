from __future__ import annotations

import pytest

from bootstrap.kernel.message import Level, Message, error, warning


def test_messages_compare_by_id_and_obj_not_wording() -> None:
    e001 = error("volume.E001", "volume {path} is missing", "mount it at {path}")
    assert e001.at("/v", path="/v") == Message("volume.E001", Level.ERROR, "other words",
                                               obj="/v")
    assert e001.at("/v", path="/v") != e001.at("/w", path="/w")
    assert e001.at("/v", path="/v").msg == "volume /v is missing"


def test_an_id_must_match_its_level() -> None:
    with pytest.raises(ValueError, match="does not match level"):
        warning("volume.E001", "x")
    with pytest.raises(ValueError):
        error("volumeE001", "x")
