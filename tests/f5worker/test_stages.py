"""The worker's stages on the real stack and the tiny model: the happy boot on the CPU,
and each broken asset or library ending in a named failure that names the file or version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel.context import Context
from bootstrap.kernel.message import Message
from bootstrap.kernel.stage import StageFailed
from bootstrap.stages import cuda
from f5worker import state, voices
from f5worker.stages import audio, model, warmup
from tests import hubserver

REPO = Path(__file__).resolve().parents[2]


def about(message: Message, obj: object) -> Message:
    return replace(message, obj=str(obj))


def fail(stage_run: object, ctx: Context) -> StageFailed:
    with pytest.raises(StageFailed) as failed:
        stage_run(ctx)  # type: ignore[operator]
    return failed.value


def test_boot_on_cpu_passes_every_stage_and_warns_about_the_cpu(booted: Context) -> None:
    assert booted.device == "cpu"
    assert cuda.check(booted) == [about(cuda.W001, "cpu")]
    assert booted.app_state.model.device == "cpu"
    assert "default" in voices.library(booted.config).all()


def test_no_gpu_without_allow_cpu_is_a_named_failure(
    tiny_volume: Path, ctx_for: Callable[..., Context]
) -> None:
    failed = fail(cuda.run, ctx_for(tiny_volume, allow_cpu=False))
    assert failed.message == about(cuda.E004, "cuda")


def test_model_refuses_to_load_without_a_chosen_device(
    tiny_volume: Path, ctx_for: Callable[..., Context]
) -> None:
    assert fail(model.run, ctx_for(tiny_volume)).message == about(model.E013, "device")


def test_missing_checkpoint_is_named(volume: Path, ctx_for: Callable[..., Context]) -> None:
    ctx = ctx_for(volume)
    ckpt = volume / "models/tiny/model.safetensors"
    ckpt.unlink()
    assert model.check(ctx) == [about(model.E001, ckpt)]
    ctx.device = "cpu"
    failed = fail(model.run, ctx)
    assert failed.message == about(model.E001, ckpt) and str(ckpt) in failed.message.msg


def test_truncated_checkpoint_is_named_with_its_size(
    volume: Path, ctx_for: Callable[..., Context]
) -> None:
    ckpt = volume / "models/tiny/model.safetensors"
    size = ckpt.stat().st_size
    with ckpt.open("r+b") as handle:
        handle.truncate(size // 2)
    ctx = ctx_for(volume)
    ctx.device = "cpu"
    failed = fail(model.run, ctx)
    assert failed.message == about(model.E002, ckpt)
    assert f"{size // 2} of {size} bytes" in failed.message.msg


def test_truncated_pt_checkpoint_is_named(volume: Path, ctx_for: Callable[..., Context]) -> None:
    import torch
    from safetensors.torch import load_file

    src = volume / "models/tiny/model.safetensors"
    pt = volume / "models/tiny/model.pt"
    torch.save({"ema_model_state_dict": load_file(str(src))}, pt)
    data = pt.read_bytes()
    pt.write_bytes(data[: len(data) // 3])
    ctx = ctx_for(volume, model_ckpt=pt)
    ctx.device = "cpu"
    assert fail(model.run, ctx).message == about(model.E002, pt)


def test_vocab_of_the_wrong_size_is_named_with_both_sizes(
    volume: Path, ctx_for: Callable[..., Context]
) -> None:
    vocab = volume / "models/tiny/vocab.txt"
    vocab.write_text(vocab.read_text() + "é\nü\n")
    ctx = ctx_for(volume)
    assert model.check(ctx) == [about(model.E004, vocab)]
    ctx.device = "cpu"
    failed = fail(model.run, ctx)
    assert failed.message == about(model.E004, vocab)
    assert "76 tokens" in failed.message.msg and "expects 74" in failed.message.msg


def test_vocab_without_a_space_first_is_named(
    volume: Path, ctx_for: Callable[..., Context]
) -> None:
    vocab = volume / "models/tiny/vocab.txt"
    vocab.write_text("".join(reversed(vocab.read_text().splitlines(keepends=True))))
    assert model.check(ctx_for(volume)) == [about(model.E003, vocab)]


def test_vocoder_directory_without_its_config_is_named(
    volume: Path, ctx_for: Callable[..., Context]
) -> None:
    config = volume / "models/tiny/vocoder/config.yaml"
    config.unlink()
    ctx = ctx_for(volume)
    ctx.device = "cpu"
    failed = fail(model.run, ctx)
    assert failed.message == about(model.E005, config)
    assert "config.yaml" in failed.message.msg


def test_checkpoint_for_another_architecture_is_named_before_loading(
    volume: Path, ctx_for: Callable[..., Context]
) -> None:
    arch = volume / "models/tiny/tiny.yaml"
    arch.write_text(arch.read_text().replace("depth: 2", "depth: 3"))
    ctx = ctx_for(volume)
    ctx.device = "cpu"
    failed = fail(model.run, ctx)
    assert failed.message == about(model.E006, volume / "models/tiny/model.safetensors")
    assert "transformer.transformer_blocks.2" in failed.message.msg


def test_unknown_architecture_is_named(volume: Path, ctx_for: Callable[..., Context]) -> None:
    ctx = ctx_for(volume, model_arch="F5TTS_v9_Huge")
    assert [m.id for m in model.check(ctx)] == ["model.E007"]


def test_assets_complete_means_the_hub_is_off(booted: Context) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_warmup_reports_a_real_time_factor(booted: Context) -> None:
    outcome = warmup.run(booted)
    assert outcome.facts["audio_s"] > 0 and outcome.facts["rtf"] > 0
    assert outcome.facts["device"] == "cpu"


@pytest.mark.parametrize(("bias", "expected"), [(-60.0, warmup.E004), (float("nan"), warmup.E003)])
def test_warmup_output_that_is_silent_or_not_finite_is_named(
    volume: Path, ctx_for: Callable[..., Context], bias: float, expected: Message
) -> None:
    """A vocoder whose magnitudes are exp(-60) speaks silence; NaN ones speak NaN."""
    import torch

    vocoder = volume / "models/tiny/vocoder/pytorch_model.bin"
    state = torch.load(vocoder, weights_only=True)
    state["head.out.weight"].zero_()
    state["head.out.bias"].fill_(bias)
    torch.save(state, vocoder)
    ctx = ctx_for(volume)
    ctx.device = "cpu"
    model.run(ctx)
    assert fail(warmup.run, ctx).message == about(expected, "cpu")


def test_warmup_speaks_with_an_added_voice(booted: Context, tmp_path: Path) -> None:
    from f5worker.handler import tiny_model

    wav = tiny_model.write_voice(tmp_path / "in", "added", seconds=2.0)
    config = booted.config.replace(model_voices=tmp_path / "voices", warmup_voice="added")
    voices.library(config).add("added", wav.read_bytes(), "An added voice.", {})
    outcome = warmup.run(replace(booted, config=config))
    assert outcome.facts["voice"] == "added"


def test_warmup_without_its_voice_is_named(booted: Context) -> None:
    ctx = replace(booted, config=booted.config.replace(warmup_voice="nobody"))
    assert fail(warmup.run, ctx).message == about(warmup.E001, "nobody")


def run_audio_stage(pythonpath: Path) -> dict[str, str]:
    """The audio stage in a fresh interpreter whose import path starts at ``pythonpath``."""
    code = (
        "import json\nfrom bootstrap.kernel.stage import StageFailed\n"
        "from bootstrap.kernel.context import Context\nfrom bootstrap.kernel.config import Config\n"
        "from f5worker.stages import audio\n"
        "try:\n    audio.run(Context(Config(), 'r', 'w')); print(json.dumps({}))\n"
        "except StageFailed as e:\n"
        "    print(json.dumps({'id': e.message.id, 'msg': e.message.msg, 'cause': e.cause}))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{pythonpath}{os.pathsep}{REPO}"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def shadow_torchcodec(tmp_path: Path) -> Path:
    """A copy of the installed torchcodec, placed first on the import path."""
    import torchcodec

    site = tmp_path / "site"
    shutil.copytree(Path(torchcodec.__file__).parent, site / "torchcodec")
    return site


def test_audio_stage_passes_on_this_stack(tmp_path: Path) -> None:
    assert run_audio_stage(tmp_path) == {}


def test_torchcodec_without_its_ffmpeg_libraries_is_named(tmp_path: Path) -> None:
    site = shadow_torchcodec(tmp_path)
    for lib in (site / "torchcodec").glob("libtorchcodec_core*.so"):
        lib.unlink()  # what a machine without FFmpeg's shared libraries sees
    result = run_audio_stage(site)
    assert result["id"] == audio.E002.id
    assert "torchcodec 0." in result["msg"] and "libtorchcodec" in result["cause"]


def test_torchcodec_that_does_not_match_torch_is_named(tmp_path: Path) -> None:
    import importlib.metadata

    site = shadow_torchcodec(tmp_path)
    dist = importlib.metadata.distribution("torchcodec")
    info = site / "torchcodec-0.17.0.dist-info"
    info.mkdir()
    metadata = dist.read_text("METADATA") or ""
    (info / "METADATA").write_text(metadata.replace(f"Version: {dist.version}", "Version: 0.17.0"))
    result = run_audio_stage(site)
    assert result["id"] == audio.E001.id
    assert "torchcodec 0.17.0" in result["msg"] and "torch 2.9" in result["msg"]


def test_missing_vocoder_is_downloaded_from_the_hub_then_loaded(
        volume: Path, ctx_for: Callable[..., Context], local_hub: dict[str, Any]) -> None:
    vocoder = volume / "models/tiny/vocoder"
    for name in ("config.yaml", "pytorch_model.bin"):
        local_hub["files"][f"/org/vocos/resolve/main/{name}"] = (vocoder / name).read_bytes()
    shutil.rmtree(vocoder)
    ctx = ctx_for(volume, model_repo="org/f5", vocoder_repo="org/vocos")
    # missing but fetchable is not an error: the check says what run would download
    assert model.check(ctx) == [model.I001.at(vocoder / "config.yaml"),
                                model.I001.at(vocoder / "pytorch_model.bin")]
    assert local_hub["requests"] == [], "the check asks the hub nothing"
    ctx.device = "cpu"
    outcome = model.run(ctx)
    assert sorted(outcome.facts["fetched_bytes"]) == ["config.yaml", "pytorch_model.bin"]
    assert {got["source"] for got in outcome.facts["sources"].values()} == {"downloaded"}
    # huggingface_hub's own layout in the volume's cache: what `hf download` finds
    snapshot = (volume / ".cache/huggingface/hub/models--org--vocos/snapshots"
                / hubserver.COMMIT)
    assert (snapshot / "pytorch_model.bin").is_symlink()
    assert state.of(ctx).model is not None
    assert not list((volume / ".bootstrap" / "locks").iterdir())

    local_hub["requests"].clear()
    warm = ctx_for(volume, model_repo="org/f5", vocoder_repo="org/vocos")
    assert [m.id for m in model.check(warm)] == [model.I004.id, model.I004.id]
    warm.device = "cpu"
    again = model.run(warm)
    assert {got["source"] for got in again.facts["sources"].values()} == {"volume-cache"}
    assert local_hub["requests"] == [], "a warm boot asks the hub nothing"


@pytest.mark.parametrize(("status", "expected"), [(401, model.E008), (403, model.E008),
                                                  (429, model.E009), (500, model.E010)])
def test_hub_refusals_are_named(volume: Path, ctx_for: Callable[..., Context],
                                local_hub: dict[str, Any], status: int,
                                expected: Message) -> None:
    shutil.rmtree(volume / "models/tiny/vocoder")
    local_hub["files"]["/org/vocos/resolve/main/config.yaml"] = status
    ctx = ctx_for(volume, model_repo="org/f5", vocoder_repo="org/vocos")
    ctx.device = "cpu"
    from bootstrap import hub

    fast = hub.Policy(retries=0, backoff_s=0.01)
    original = hub.resolve
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub, "resolve", lambda *a, **k: original(*a, policy=fast))
        failed = fail(model.run, ctx)
    assert failed.message.id == expected.id
    assert "config.yaml" in failed.message.msg
    assert failed.transient == (status in (429, 500))
    assert not list((volume / ".cache/huggingface/hub").glob("models--org--vocos/snapshots/*/*"))


def test_warmup_refuses_a_model_on_another_device_than_chosen(booted: Context) -> None:
    ctx = replace(booted, outputs={**booted.outputs, "device": "cuda:0"})
    failed = fail(warmup.run, ctx)
    assert failed.message == about(warmup.E005, "cpu")
    assert "cuda:0" in failed.message.msg


def test_warmup_without_a_model_says_which_stage_is_missing(booted: Context) -> None:
    assert fail(warmup.run, Context(booted.config, "r", "w")).message == about(
        warmup.E006, "model")
