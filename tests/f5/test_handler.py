"""The F5-TTS handler called directly with the warm tiny model: outputs, and refusals that
name the field."""

from __future__ import annotations

import base64
import io
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from f5worker.f5 import expected_samples
from f5worker.handler import f5tts, tiny_model
from f5worker.handler.inputs import Limits


def decode(result: dict[str, Any]) -> tuple[Any, int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(result["audio"])))
    return samples, rate


@pytest.fixture(scope="module")
def handler(booted: Context) -> Any:
    return f5tts.make_handler(booted)


def job(**input: Any) -> dict[str, Any]:
    return {"id": "job-1", "input": input}


VOICE_SAMPLES = int(tiny_model.VOICE_SECONDS * tiny_model.SAMPLE_RATE)


@pytest.mark.parametrize("text", ["Hello world, how are you today?",
                                  "A longer sentence, so that the audio is longer too."])
def test_voice_job_returns_a_wav_of_the_expected_length(handler: Any, text: str) -> None:
    result = handler(job(text=text, voice="default", seed=7, nfe_step=4))
    samples, rate = decode(result)
    assert rate == 24000 == result["sample_rate"]
    assert len(samples) == expected_samples(VOICE_SAMPLES, tiny_model.VOICE_TEXT, text)
    assert result["duration_s"] == round(len(samples) / 24000, 3)
    assert result["seed"] == 7 and result["format"] == "wav"


def test_same_seed_same_audio_and_a_seed_is_always_reported(handler: Any) -> None:
    first = handler(job(text="Deterministic, please.", voice="default", seed=11, nfe_step=4))
    again = handler(job(text="Deterministic, please.", voice="default", seed=11, nfe_step=4))
    assert first["audio"] == again["audio"]
    unseeded = handler(job(text="Any seed will do.", voice="default", nfe_step=4))
    assert isinstance(unseeded["seed"], int)


def test_base64_reference_with_its_text(handler: Any, tmp_path: Path) -> None:
    wav = tiny_model.write_voice(tmp_path, "mine", seconds=3.0)
    result = handler(job(text="Speak like me.", ref_audio=base64.b64encode(
        wav.read_bytes()).decode(), ref_text="My own voice.", nfe_step=4))
    assert result["reference"] == {"ref_audio_s": 3.0, "trimmed": False}
    assert len(decode(result)[0]) == expected_samples(72000, "My own voice.", "Speak like me.")


def test_flac_output_decodes(handler: Any) -> None:
    result = handler(job(text="In FLAC.", voice="default", format="flac", nfe_step=4))
    assert base64.b64decode(result["audio"])[:4] == b"fLaC"
    assert decode(result)[1] == 24000


def test_remove_silence_returns_audio(handler: Any) -> None:
    result = handler(job(text="Trim the quiet parts.", voice="default", nfe_step=4,
                         remove_silence=True))
    assert len(decode(result)[0]) > 0


def test_with_clipping_off_a_long_reference_is_rejected_not_trimmed(
        booted: Context, tmp_path: Path) -> None:
    """BOOTSTRAP_REF_CLIP_LONG=0 keeps the refusal for those who want it."""
    strict = f5tts.make_handler(booted, Limits(clip_long=False))
    wav = tiny_model.write_voice(tmp_path, "long", seconds=13.0)
    result = strict(job(text="Hi there.", ref_audio=base64.b64encode(
        wav.read_bytes()).decode(), ref_text="A long reference."))
    assert result["error"].startswith("ref_audio: is 13.0 s")
    assert "rejected, not trimmed" in result["error"]


def without_transcriber(booted: Context) -> Any:
    """The handler of a worker with transcription off (BOOTSTRAP_TRANSCRIBE=0)."""
    return f5tts.make_handler(
        replace(booted, app_state=replace(booted.app_state, transcriber=None)))


def test_a_clipped_reference_is_transcribed_and_the_answer_says_so(
        handler: Any, booted: Context, tmp_path: Path) -> None:
    """Cut to its middle 8 s, the clip no longer says its ref_text: the middle is
    transcribed, or, without a transcriber, the job is refused naming the field."""
    wav = tiny_model.write_voice(tmp_path, "long", seconds=13.0)
    fields = {"text": "Hi there.", "ref_audio": base64.b64encode(wav.read_bytes()).decode(),
              "ref_text": "A long reference.", "nfe_step": 2}
    transcriber = booted.app_state.transcriber
    before = transcriber.transcriptions
    result = handler(job(**fields))
    assert result["reference"] == {"ref_audio_s": pytest.approx(8.0, abs=1.0),
                                   "trimmed": True, "original_s": 13.0}, result
    assert transcriber.transcriptions == before + 1
    refused = without_transcriber(booted)(job(**fields))
    assert refused["error"].startswith("ref_text: is needed: this reference has no "
                                       "transcript, and transcription is off"), refused


@pytest.mark.parametrize(("fields", "field"), [
    ({"voice": "default"}, "text"),
    ({"text": "", "voice": "default"}, "text"),
    ({"text": "x" * 5001, "voice": "default"}, "text"),
    ({"text": "hi", "voice": "nobody"}, "voice"),
    ({"text": "hi", "voice": "../etc/passwd"}, "voice"),
    ({"text": "hi", "ref_audio": "bm90IGF1ZGlv"}, "ref_audio"),
    ({"text": "hi", "ref_audio": "bm90IGF1ZGlv", "ref_text": "t"}, "ref_audio"),
    ({"text": "hi", "ref_audio": "%%%", "ref_text": "t"}, "ref_audio"),
    ({"text": "hi", "ref_audio": "http://example.com/a.wav", "ref_text": "t"}, "ref_audio"),
    ({"text": "hi", "ref_audio": "https://127.0.0.1/a.wav", "ref_text": "t"}, "ref_audio"),
    ({"text": "hi", "ref_audio": "https://localhost/a.wav", "ref_text": "t"}, "ref_audio"),
    ({"text": "hi", "ref_audio": "https://169.254.169.254/x", "ref_text": "t"}, "ref_audio"),
    ({"text": "hi", "ref_audio": "https://[::1]/a.wav", "ref_text": "t"}, "ref_audio"),
    ({"text": "hi", "ref_audio": "https://10.0.0.8/a.wav", "ref_text": "t"}, "ref_audio"),
    ({"text": "hi", "voice": "default", "speed": "fast"}, "speed"),
    ({"text": "hi", "voice": "default", "speed": 0}, "speed"),
    ({"text": "hi", "voice": "default", "seed": -1}, "seed"),
    ({"text": "hi", "voice": "default", "seed": True}, "seed"),
    ({"text": "hi", "voice": "default", "nfe_step": 1000}, "nfe_step"),
    ({"text": "hi", "voice": "default", "cfg_strength": float("nan")}, "cfg_strength"),
    ({"text": "hi", "voice": "default", "remove_silence": "yes"}, "remove_silence"),
    ({"text": "hi", "voice": "default", "format": "mp3"}, "format"),
    ({"text": "hi", "voice": "default", "colour": "blue"}, "colour"),
])
def test_bad_input_is_refused_naming_the_field(handler: Any, fields: dict[str, Any],
                                               field: str) -> None:
    result = handler(job(**fields))
    assert set(result) == {"error"}
    assert result["error"].startswith(f"{field}: ")


@pytest.mark.parametrize("bad_job", [{"id": "j"}, {"id": "j", "input": "text"},
                                     {"id": "j", "input": None}, {"id": "j", "input": []}])
def test_malformed_jobs_are_refused(handler: Any, bad_job: dict[str, Any]) -> None:
    assert handler(bad_job)["error"].startswith("input: ")


def test_result_over_the_payload_limit_is_refused_before_sending(booted: Context) -> None:
    small = f5tts.make_handler(booted, Limits(max_result_bytes=20_000))
    with events.capture() as logs:
        result = small(job(text="This answer will not fit in twenty kilobytes.",
                           voice="default", nfe_step=4))
    assert result["error"].startswith("text: the audio would be about 0.1")
    assert not [e for e in logs if e["event"] == "job.progress"]  # refused before compute


def test_long_text_is_chunked_and_progress_is_reported(handler: Any) -> None:
    text = " ".join(["This sentence is one of many in a long text to speak."] * 12)
    with events.capture() as logs:
        result = handler(job(text=text, voice="default", nfe_step=2))
    progress = [e for e in logs if e["event"] == "job.progress"]
    assert len(progress) > 1 and progress[-1]["chunks_done"] == progress[-1]["chunks"]
    assert result["duration_s"] > 10


def test_job_temp_files_are_removed(handler: Any, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    wav = tiny_model.write_voice(tmp_path / "in", "v")
    data = base64.b64encode(wav.read_bytes()).decode()
    handler(job(text="Clean up after me.", ref_audio=data, ref_text="Voice.", nfe_step=2))
    handler(job(text="x", ref_audio=base64.b64encode(b"junk").decode(), ref_text="Voice."))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_factory_without_a_model_says_which_stage_is_missing(booted: Context) -> None:
    with pytest.raises(RuntimeError, match="model stage"):
        f5tts.make_handler(Context(booted.config, "r", "w"))


def test_an_unexpected_failure_answers_without_paths_and_logs_the_detail(
        booted: Context, tmp_path: Path) -> None:
    """A volume whose voices directory is a file: adding a voice fails deep in the library
    with an OSError that names the path. The client gets the type and the job id only."""
    blocked = tmp_path / "voices-is-a-file"
    blocked.write_text("not a directory")
    handler = f5tts.make_handler(
        replace(booted, config=booted.config.replace(model_voices=blocked)))
    wav = tiny_model.write_voice(tmp_path, "clip", seconds=1.0)
    with events.capture() as logged:
        answer = handler({"id": "job-7", "input": {
            "action": "add_voice", "name": "anna", "ref_text": "A clip.",
            "ref_audio": base64.b64encode(wav.read_bytes()).decode()}})
    assert answer["error"].startswith("add_voice failed: an internal error (")
    assert answer["error"].endswith("the worker's log has the details (job job-7)")
    assert str(tmp_path) not in answer["error"]
    failed = [e for e in logged if e["event"] == "job.failed"]
    assert str(blocked) in failed[0]["error"]  # the detail stays in the event


def test_an_answer_passes_the_redactor(handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal quotes what the client sent; a worker secret never leaves in it."""
    from bootstrap.kernel import redaction

    monkeypatch.setenv("BUCKET_SECRET_ACCESS_KEY", "s3cr3t-Value-7Hq2")
    redaction.reset()
    answer = handler(job(action="s3cr3t-Value-7Hq2"))
    assert answer["error"].startswith("action: unknown action '[redacted]'"), answer


def test_a_reference_without_its_text_needs_the_transcriber(booted: Context,
                                                            tmp_path: Path) -> None:
    wav = tiny_model.write_voice(tmp_path, "clip", seconds=2.0)
    result = without_transcriber(booted)(job(
        text="Hi.", ref_audio=base64.b64encode(wav.read_bytes()).decode()))
    assert result["error"].startswith("ref_text: is needed: this reference has no "
                                      "transcript, and transcription is off"), result
