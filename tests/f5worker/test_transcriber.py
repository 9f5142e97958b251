"""Transcription of a reference sent without its text: the model stage proves, fetches and
loads the recognition model only when transcription is on, and the recognizer turns a
real clip into text. The model is a tiny random Whisper built on the volume by
f5worker/handler/tiny_model.py (transformers' own classes, nothing downloaded): its transcripts are
gibberish, so these tests prove the path, never the accuracy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from bootstrap.kernel.stage import StageFailed
from f5worker import settings, state, transcriber
from f5worker.handler import tiny_model
from f5worker.stages import model, warmup
from tests.boots import REPO, snapshot
from tests.hubserver import COMMIT


def folder(volume: Path) -> Path:
    return volume / tiny_model.ASR


def run(ctx: Context) -> Any:
    ctx.device = "cpu"
    return model.run(ctx)


def run_fails(ctx: Context) -> StageFailed:
    with pytest.raises(StageFailed) as failed:
        run(ctx)
    assert state.of(ctx).transcriber is None
    return failed.value


def clip(tmp_path: Path, seconds: float = 2.0) -> tuple[Any, int]:
    """The tiny model's voice-like clip, read back as float32 mono at 24 kHz."""
    path = tiny_model.write_voice(tmp_path / "clip", seconds=seconds)
    with wave.open(str(path), "rb") as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return data.astype(np.float32) / 32768, wav.getframerate()


@pytest.fixture(scope="module")
def recognizer(tiny_volume: Path) -> transcriber.Transcriber:
    os.environ["HF_HUB_OFFLINE"] = "1"  # as the model stage sets it: nothing may be fetched
    return transcriber.load(folder(tiny_volume), "cpu")


# -- the model stage ---------------------------------------------------------------------


def test_the_boot_loads_the_transcriber(booted: Context) -> None:
    loaded = booted.app_state.transcriber
    assert isinstance(loaded, transcriber.Transcriber)
    assert (loaded.device, loaded.dtype, loaded.rate) == ("cpu", "float32", 16000)


def test_enabled_and_present_is_proven_and_loaded_fast(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    ctx = ctx_for(volume)
    assert settings.of(ctx.config).transcribe and not settings.of(ctx.config).asr_model
    assert model.check(ctx) == []
    outcome = run(ctx)
    facts = outcome.facts["transcriber"]
    assert facts["path"] == str(folder(volume)) and facts["dtype"] == "float32"
    assert facts["load_s"] < 1.5, facts  # the tiny Whisper loads in a fraction of a second
    assert isinstance(state.of(ctx).transcriber, transcriber.Transcriber)
    assert "asr_fetched_bytes" not in outcome.facts  # no repo: nothing to fetch from


def test_disabled_nothing_is_checked_or_loaded(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    shutil.rmtree(folder(volume))
    ctx = ctx_for(volume, transcribe=False, asr_model="org/whisper")
    assert model.check(ctx) == []
    outcome = run(ctx)
    assert state.of(ctx).transcriber is None and state.of(ctx).model is not None
    assert outcome.facts["transcriber"] == "off (transcription disabled)"
    assert "asr_fetched_bytes" not in outcome.facts
    assert not folder(volume).exists()


def test_missing_with_no_repo_is_named_by_check_and_run(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    (folder(volume) / "model.safetensors").unlink()
    (folder(volume) / "tokenizer.json").unlink()
    ctx = ctx_for(volume, asr_model="")
    assert model.check(ctx) == [model.E020.at(folder(volume))]
    failed = run_fails(ctx)
    assert failed.message == model.E020.at(folder(volume))
    assert "model.safetensors, tokenizer.json" in failed.message.msg
    assert "BOOTSTRAP_TRANSCRIBE=0" in failed.message.hint


def test_bootstrap_check_predicts_the_failure_bootstrap_run_ends_with(volume: Path) -> None:
    """Both commands as a user runs them, on a volume whose recognizer lacks its weights."""
    (folder(volume) / "model.safetensors").unlink()
    env = {**os.environ, "BOOTSTRAP_MODE": "local", "BOOTSTRAP_VOLUME": str(volume),
           "BOOTSTRAP_LOG_FORMAT": "json", "BOOTSTRAP_SKIP": "serve"}
    env.update({f"BOOTSTRAP_{k.upper()}": v for k, v in tiny_model.settings(volume).items()})

    def bootstrap(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "bootstrap", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300).stdout

    before = snapshot(volume)
    checked = json.loads(bootstrap("check", "--output", "json"))["messages"]
    assert [m["id"] for m in checked if m["id"].startswith("model.")] == [model.E020.id]
    assert snapshot(volume) == before, "the check changed the volume"
    summary = json.loads(bootstrap("run").splitlines()[-1])
    assert summary["code"] == model.E020.id


def serve_whisper(hub: dict[str, Any], volume: Path, repo: str = "org/whisper") -> int:
    """The tiny Whisper's files on the stand-in hub; their total size."""
    total = 0
    for path in folder(volume).iterdir():
        hub["files"][f"/{repo}/resolve/main/{path.name}"] = path.read_bytes()
        total += path.stat().st_size
    return total


def test_a_missing_recognizer_is_fetched_onto_the_volume_then_loaded(
        volume: Path, ctx_for: Callable[..., Context], local_hub: dict[str, Any]) -> None:
    originals = {p.name: p.read_bytes() for p in folder(volume).iterdir()}
    total = serve_whisper(local_hub, volume)
    shutil.rmtree(folder(volume))
    ctx = ctx_for(volume, asr_model="org/whisper")
    checked = model.check(ctx)
    assert checked == [model.I003.at(folder(volume))]
    assert ", ".join(transcriber.REQUIRED) in checked[0].msg
    assert not folder(volume).exists(), "the check fetched nothing"

    outcome = run(ctx)
    assert outcome.facts["asr_fetched_bytes"] == total
    # huggingface_hub's layout in the volume's cache, one snapshot holding every file
    snapshot = volume / ".cache/huggingface/hub/models--org--whisper/snapshots" / COMMIT
    assert {p.name: p.read_bytes() for p in snapshot.iterdir()} == originals
    assert model.asr_folder(ctx.config) == snapshot
    assert isinstance(state.of(ctx).transcriber, transcriber.Transcriber)
    # The repo has none of the optional files: each was asked for once, and 404 is fine.
    asked = [p.rsplit("/", 1)[1] for p in local_hub["asked"]]
    assert sorted(asked) == sorted((*transcriber.REQUIRED, *transcriber.OPTIONAL))
    # Each under the lease, in the folder the other assets' leases use.
    assert (volume / ".bootstrap" / "locks").is_dir()

    local_hub["asked"].clear()
    warm = ctx_for(volume, asr_model="org/whisper")
    assert [m.id for m in model.check(warm)] == [model.I004.id]
    assert run(warm).facts["asr_fetched_bytes"] == 0
    assert local_hub["asked"] == [], "a complete folder asks the hub nothing"


def test_a_folder_lacking_one_file_is_replaced_by_one_whole_snapshot(
        volume: Path, ctx_for: Callable[..., Context], local_hub: dict[str, Any]) -> None:
    serve_whisper(local_hub, volume)
    (folder(volume) / "generation_config.json").unlink()
    ctx = ctx_for(volume, asr_model="org/whisper")
    assert model.check(ctx) == [model.I003.at(folder(volume))]
    run(ctx)
    # The model loads from one folder: every file comes into one snapshot of the cache.
    asked = {p.rsplit("/", 1)[1] for p in local_hub["asked"]}
    assert asked == {*transcriber.REQUIRED, *transcriber.OPTIONAL}
    assert model.asr_folder(ctx.config).name == COMMIT


@pytest.mark.parametrize("status", [404, 401])
def test_a_failed_download_is_named(
        volume: Path, ctx_for: Callable[..., Context], local_hub: dict[str, Any],
        status: int) -> None:
    serve_whisper(local_hub, volume)
    local_hub["files"]["/org/whisper/resolve/main/model.safetensors"] = status
    shutil.rmtree(folder(volume))
    failed = run_fails(ctx_for(volume, asr_model="org/whisper"))
    url = f"{os.environ['HF_ENDPOINT']}/org/whisper/resolve/main/model.safetensors"
    assert failed.message == model.E023.at(url)
    assert str(status) in failed.message.msg and "org/whisper" in failed.message.msg
    assert not failed.transient
    assert not (folder(volume) / "model.safetensors").exists()
    assert not list((volume / ".cache/huggingface/hub").glob("*/snapshots/*/model.safetensors"))


def _truncate(path: Path) -> None:
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])


def _edit(name: str, **change: object) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        data = json.loads((path / name).read_text())
        (path / name).write_text(json.dumps({**data, **change}))
    return edit


@pytest.mark.parametrize(("breaks", "named"), [
    (_truncate, "model.safetensors: truncated"),
    (_edit("config.json", model_type="wav2vec2"), "model_type is 'wav2vec2'"),
    (_edit("config.json", vocab_size=51866), "config.json says vocab_size 51866"),
    (_edit("preprocessor_config.json", feature_size=128), "makes 128 mel bins"),
    (lambda path: (path / "config.json").write_text("{"), "config.json: JSONDecodeError"),
], ids=["truncated", "not-whisper", "other-vocab", "other-mels", "bad-json"])
def test_unusable_files_are_named_by_check_and_run(
        volume: Path, ctx_for: Callable[..., Context], breaks: Callable[[Path], None],
        named: str) -> None:
    breaks(folder(volume))
    ctx = ctx_for(volume)
    assert model.check(ctx) == [model.E021.at(folder(volume))]
    failed = run_fails(ctx)
    assert failed.message == model.E021.at(folder(volume))
    assert named in failed.message.msg


def test_a_recognizer_that_cannot_go_onto_its_device_is_named(
        tiny_volume: Path, ctx_for: Callable[..., Context]) -> None:
    # No machine this runs on has a 100th GPU: torch's own refusal, for real.
    ctx = ctx_for(tiny_volume)
    with pytest.raises(StageFailed) as failed:
        model._load_transcriber(ctx, "cuda:99")
    assert failed.value.message == model.E022.at("cuda:99")
    assert failed.value.cause and state.of(ctx).transcriber is None


# -- the recognizer ----------------------------------------------------------------------


def test_a_real_clip_is_transcribed_counted_and_only_its_length_logged(
        recognizer: transcriber.Transcriber, tmp_path: Path) -> None:
    samples, rate = clip(tmp_path)
    assert rate == 24000
    before = recognizer.transcriptions
    with events.capture() as seen:
        text = recognizer.transcribe(samples, rate)
    assert isinstance(text, str) and text and text == text.strip()
    assert recognizer.transcriptions == before + 1
    (done,) = [e for e in seen if e["event"] == "transcribe.done"]
    assert done["chars"] == len(text) and done["audio_s"] == 2.0
    assert text not in json.dumps(seen), "the transcript itself is never logged"

    # Jobs run on threads: two at once take turns on the model, and both are counted.
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        recognizer.transcribe(samples, rate))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [text, text]  # deterministic: the same clip, the same gibberish
    assert recognizer.transcriptions == before + 3


def test_the_reference_is_resampled_to_the_models_rate(
        recognizer: transcriber.Transcriber) -> None:
    rate, seconds = 24000, 1.5
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = recognizer.resampled(tone, rate)
    assert out.dtype == np.float32 and out.shape == (int(16000 * seconds),)
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * 16000 / out.size == pytest.approx(440, abs=1)
    assert recognizer.resampled(out, 16000) is out  # at the model's rate: untouched
    with pytest.raises(ValueError, match="mono"):
        recognizer.resampled(np.zeros((2, 100), np.float32), rate)


def _mute(path: Path) -> None:
    """Every text token suppressed: the model may say nothing but special tokens."""
    end = json.loads((path / "generation_config.json").read_text())["eos_token_id"]
    _edit("generation_config.json", suppress_tokens=list(range(256)),
          begin_suppress_tokens=[end])(path)


def test_an_empty_transcript_is_a_clear_error(tiny_volume: Path, tmp_path: Path) -> None:
    """A Whisper that may say nothing but special tokens: its transcript is empty, for
    real."""
    mute = tmp_path / "mute"
    shutil.copytree(folder(tiny_volume), mute)
    _mute(mute)
    loaded = transcriber.load(mute, "cpu")
    samples, rate = clip(tmp_path)
    with pytest.raises(transcriber.TranscriptionError, match="heard no words") as failed:
        loaded.transcribe(samples, rate)
    assert failed.value.kind == "empty" and "send ref_text" in str(failed.value)
    assert loaded.transcriptions == 1


# -- the warm-up -------------------------------------------------------------------------


def test_the_warmup_transcribes_its_voice_once(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    ctx = ctx_for(volume)
    run(ctx)
    outcome = warmup.run(ctx)
    assert state.of(ctx).transcriber.transcriptions == 1
    assert 0 < outcome.facts["transcription"]["chars"] <= tiny_model.ASR_MAX_LENGTH


def test_a_recognizer_that_hears_nothing_fails_the_warmup(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    _mute(folder(volume))
    ctx = ctx_for(volume)
    run(ctx)
    with pytest.raises(StageFailed) as failed:
        warmup.run(ctx)
    assert failed.value.message == warmup.E007.at("default")
    assert "heard no words" in failed.value.message.msg


def test_without_transcription_the_warmup_transcribes_nothing(
        volume: Path, ctx_for: Callable[..., Context]) -> None:
    ctx = ctx_for(volume, transcribe=False)
    run(ctx)
    assert "transcription" not in warmup.run(ctx).facts
