"""The model stage and the aligner: with word timings enabled its file is proven (present,
readable, the architecture's shapes), fetched when missing, and loaded; disabled, it is
never looked at."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel.context import Context
from bootstrap.kernel.stage import StageFailed
from f5worker import aligner, state
from f5worker.handler import tiny_model
from f5worker.stages import model


def weights(volume: Path) -> Path:
    return volume / tiny_model.ALIGNER / "model.pt"


def run_fails(ctx: Context) -> StageFailed:
    ctx.device = "cpu"
    with pytest.raises(StageFailed) as failed:
        model.run(ctx)
    assert state.of(ctx).aligner is None
    return failed.value


def test_enabled_and_present_loads_the_aligner(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    ctx = ctx_for(volume, timings=True)
    assert model.check(ctx) == []
    ctx.device = "cpu"
    outcome = model.run(ctx)
    loaded = state.of(ctx).aligner
    assert isinstance(loaded, aligner.Aligner) and loaded.device == "cpu"
    assert outcome.facts["aligner"]["path"] == str(weights(volume))  # type: ignore[index]
    words = loaded.align([0.1, -0.1] * 24000, 24000, "two words")
    assert [w.text for w in words] == ["two", "words"]


def test_enabled_and_missing_is_named(volume: Path, ctx_for: Callable[..., Context]) -> None:
    weights(volume).unlink()
    ctx = ctx_for(volume, timings=True)
    assert model.check(ctx) == [model.E014.at(weights(volume))]
    failed = run_fails(ctx)
    assert failed.message == model.E014.at(weights(volume))
    assert str(weights(volume)) in failed.message.msg


def test_disabled_nothing_is_checked_or_loaded(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    weights(volume).write_bytes(b"not a checkpoint")
    (volume / tiny_model.ALIGNER / "aligner.json").unlink()
    ctx = ctx_for(volume, timings=False)
    assert model.check(ctx) == []
    ctx.device = "cpu"
    outcome = model.run(ctx)
    assert state.of(ctx).aligner is None and state.of(ctx).model is not None
    assert outcome.facts["aligner"] == "off (timings disabled)"


def test_weights_of_another_shape_are_named(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    """The tiny weights against MMS_FA's architecture: readable, but the wrong model."""
    ctx = ctx_for(volume, timings=True, aligner_arch="MMS_FA")
    assert model.check(ctx) == []  # shapes need torchaudio: the run compares them
    failed = run_fails(ctx)
    assert failed.message == model.E016.at(weights(volume))
    assert "expected [512]" in failed.message.msg


def test_an_unreadable_aligner_file_is_named(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    data = weights(volume).read_bytes()
    weights(volume).write_bytes(data[: len(data) // 2])
    ctx = ctx_for(volume, timings=True)
    assert model.check(ctx) == [model.E015.at(weights(volume))]
    assert run_fails(ctx).message == model.E015.at(weights(volume))


def test_a_bad_architecture_file_is_named(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    arch = volume / tiny_model.ALIGNER / "aligner.json"
    arch.write_text('{"aux_num_out": 32}')
    ctx = ctx_for(volume, timings=True)
    assert model.check(ctx) == [model.E017.at(arch)]
    assert run_fails(ctx).message == model.E017.at(arch)


def test_a_missing_aligner_is_downloaded_from_its_url_then_loaded(
        volume: Path, ctx_for: Callable[..., Context], local_hub: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    local_hub["files"]["/mms/model.pt"] = weights(volume).read_bytes()
    weights(volume).unlink()
    url = f"{os.environ['HF_ENDPOINT']}/mms/model.pt"  # the stand-in hub serves any path
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a plain URL ignores it
    ctx = ctx_for(volume, timings=True, aligner_url=url)
    assert model.check(ctx) == [model.I002.at(weights(volume))]
    ctx.device = "cpu"
    outcome = model.run(ctx)
    assert outcome.facts["aligner_fetched_bytes"] == weights(volume).stat().st_size
    assert isinstance(state.of(ctx).aligner, aligner.Aligner)


def test_a_failed_aligner_download_is_named(
        volume: Path, ctx_for: Callable[..., Context], local_hub: dict[str, Any]) -> None:
    weights(volume).unlink()
    url = f"{os.environ['HF_ENDPOINT']}/mms/model.pt"  # not served: 404
    failed = run_fails(ctx_for(volume, timings=True, aligner_url=url))
    assert failed.message == model.E019.at(url)
    assert "404" in failed.message.msg and not weights(volume).exists()


def test_an_aligner_that_cannot_go_onto_its_device_is_named(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    # No machine this runs on has a 100th GPU: torch's own refusal, for real.
    ctx = ctx_for(volume, timings=True)
    with pytest.raises(StageFailed) as failed:
        model._load_aligner(ctx, "cuda:99")
    assert failed.value.message.id == "model.E018"
    assert "cuda:99" in failed.value.message.msg and failed.value.cause
    assert state.of(ctx).aligner is None
