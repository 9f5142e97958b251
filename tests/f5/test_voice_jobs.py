"""The voice library through the F5-TTS handler with the warm tiny model: add a voice
(base64, and a URL from a local HTTPS server), list it, speak with it, delete it; and the
refusals: bad names, oversized, overlong and silent audio, private addresses."""

from __future__ import annotations

import base64
import dataclasses
import functools
import http.server
import io
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.kernel.context import Context
from f5worker import settings
from f5worker.handler import f5tts, refaudio, tiny_model
from f5worker.handler.inputs import Limits


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def job(**input: Any) -> dict[str, Any]:
    return {"id": "voice-job", "input": input}


@pytest.fixture
def https(tls: tuple[Path, Path], tmp_path: Path,
          https_server: Any) -> Iterator[tuple[str, ssl.SSLContext]]:
    """Files under ``tmp_path/www`` over real HTTPS on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with https_server(handler, tls) as port:
        yield f"https://localhost:{port}", ssl.create_default_context(cafile=str(tls[0]))


@pytest.fixture
def library_ctx(booted: Context, tmp_path: Path) -> Context:
    """The warm model with a voice library of its own: an empty voices directory on the
    volume and one bundled voice, as the image ships them."""
    bundled = tmp_path / "bundled"
    tiny_model.write_voice(bundled, "narrator", seconds=2.0)
    (bundled / "narrator.txt").write_text("I come with the image.")
    config = booted.config.replace(model_voices=tmp_path / "voices", voices_bundled=bundled)
    return dataclasses.replace(booted, config=config)


@pytest.fixture
def handler(library_ctx: Context, https: tuple[str, ssl.SSLContext]) -> Any:
    # The real fetch, trusting the test's certificate and allowing loopback only.
    fetch = functools.partial(refaudio.fetch, allowed=lambda a: a.is_loopback,
                              context=https[1])
    return f5tts.make_handler(library_ctx, fetch=fetch)


def test_add_list_speak_with_and_delete_a_voice(handler: Any, tmp_path: Path) -> None:
    wav = tiny_model.write_voice(tmp_path / "in", "anna", seconds=3.0)
    added = handler(job(action="add_voice", name="anna", ref_audio=b64(wav),
                        ref_text="Hello, I am Anna."))
    assert added["replaced"] is False
    assert added["voice"]["name"] == "anna" and added["voice"]["duration_s"] == 3.0
    assert added["voice"]["sample_rate"] == tiny_model.SAMPLE_RATE
    listed = handler(job(action="list_voices"))["voices"]
    assert [(v["name"], v["source"], v["deletable"], v["duration_s"]) for v in listed] == [
        ("anna", "added", True, 3.0), ("narrator", "bundled", False, 2.0)]
    assert listed[0]["ref_text"] == "Hello, I am Anna."

    spoken = handler(job(text="Now in Anna's voice.", voice="anna", nfe_step=2, seed=3))
    assert spoken["reference"] == {"voice": "anna"}
    import soundfile
    samples, _ = soundfile.read(io.BytesIO(base64.b64decode(spoken["audio"])))
    assert len(samples) > 0

    assert handler(job(action="delete_voice", name="anna")) == {"deleted": "anna"}
    assert [v["name"] for v in handler(job(action="list_voices"))["voices"]] == ["narrator"]
    gone = handler(job(text="Anna?", voice="anna", nfe_step=2))
    assert gone["error"] == "voice: unknown voice 'anna' (available: narrator)"


def test_add_a_voice_from_an_https_url(handler: Any, https: tuple[str, ssl.SSLContext],
                                       tmp_path: Path) -> None:
    tiny_model.write_voice(tmp_path / "www", "remote", seconds=2.5)
    added = handler(job(action="add_voice", name="remote",
                        ref_audio=f"{https[0]}/remote.wav", ref_text="From far away."))
    assert added["voice"]["duration_s"] == 2.5


def test_a_private_address_url_is_refused(library_ctx: Context,
                                          https: tuple[str, ssl.SSLContext]) -> None:
    production = f5tts.make_handler(library_ctx)  # the production address rule
    for url in (f"{https[0]}/x.wav", "https://169.254.169.254/latest/meta-data",
                "https://10.0.0.8/voice.wav"):
        result = production(job(action="add_voice", name="sneaky", ref_audio=url,
                                ref_text="Let me in."))
        assert "non-public address" in result["error"] and result["error"].startswith(
            "ref_audio: ")


def test_replacing_needs_overwrite_and_bundled_voices_are_protected(
        handler: Any, tmp_path: Path) -> None:
    first = tiny_model.write_voice(tmp_path / "in", "one", seconds=2.0)
    second = tiny_model.write_voice(tmp_path / "in", "two", seconds=4.0)
    handler(job(action="add_voice", name="anna", ref_audio=b64(first), ref_text="One."))
    again = handler(job(action="add_voice", name="anna", ref_audio=b64(second),
                        ref_text="Two."))
    assert again["error"] == "name: 'anna' exists; set overwrite to true to replace it"
    replaced = handler(job(action="add_voice", name="anna", ref_audio=b64(second),
                           ref_text="Two.", overwrite=True))
    assert replaced["replaced"] is True and replaced["voice"]["duration_s"] == 4.0
    for action in ("delete_voice", "add_voice"):
        fields = {"ref_audio": b64(first), "ref_text": "Mine.", "overwrite": True}
        result = handler(job(action=action, name="narrator",
                             **(fields if action == "add_voice" else {})))
        assert "is a bundled voice and cannot be" in result["error"]
    assert (tmp_path / "bundled" / "narrator.wav").is_file()


def silent_wav(folder: Path, seconds: float) -> Path:
    import numpy as np
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "quiet.wav"
    noise = np.random.default_rng(0).normal(0, 1e-4, int(seconds * 24000))  # -80 dBFS
    soundfile.write(path, noise, 24000, subtype="PCM_16")
    return path


def test_bad_voices_are_refused_and_nothing_is_stored(handler: Any, library_ctx: Context,
                                                      tmp_path: Path) -> None:
    long_wav = tiny_model.write_voice(tmp_path / "in", "long", seconds=13.0)
    short_wav = tiny_model.write_voice(tmp_path / "in", "short", seconds=0.2)
    cases = {
        "ref_audio: is 13.0 s; the model uses at most 12 s": b64(long_wav),
        "ref_audio: is 0.20 s; at least 0.5 s is needed": b64(short_wav),
        "ref_audio: is silent or nearly so": b64(silent_wav(tmp_path / "in", 3.0)),
        "ref_audio: is not decodable audio": base64.b64encode(b"RIFF" + bytes(900)).decode(),
    }
    for message, audio in cases.items():
        result = handler(job(action="add_voice", name="bad", ref_audio=audio, ref_text="x"))
        assert result["error"].startswith(message), result
    for name in ("../../etc/passwd", ".hidden", "a/b"):
        result = handler(job(action="add_voice", name=name, ref_audio=b64(short_wav),
                             ref_text="x"))
        assert result["error"].startswith("name: must be a voice name")
    voices = settings.of(library_ctx.config).model_voices
    assert not voices.exists() or not [p for p in voices.iterdir() if p.name != ".staging"]


def test_oversized_audio_is_refused_before_decoding(library_ctx: Context,
                                                    tmp_path: Path) -> None:
    small = f5tts.make_handler(library_ctx, Limits(max_ref_bytes=50_000))
    wav = tiny_model.write_voice(tmp_path / "in", "big", seconds=3.0)  # 144 kB
    result = small(job(action="add_voice", name="big", ref_audio=b64(wav), ref_text="Big."))
    assert result["error"] == "ref_audio: is over 0.0477 MB"


def test_unknown_actions_and_fields_are_named(handler: Any) -> None:
    assert handler(job(action="clone"))["error"].startswith("action: unknown action 'clone'")
    assert handler(job(action="list_voices", text="x"))["error"].startswith(
        "text: is not a field of list_voices")
    assert handler(job(action="delete_voice", name="nobody"))["error"] == (
        "name: no voice 'nobody'")


def test_the_library_is_bounded_but_a_voice_can_still_be_replaced(library_ctx: Context,
                                                                  tmp_path: Path) -> None:
    two = f5tts.make_handler(library_ctx, Limits(max_voices=2))
    wav = b64(tiny_model.write_voice(tmp_path / "in", "v", seconds=1.0))
    for name in ("one", "two"):
        assert "voice" in two(job(action="add_voice", name=name, ref_audio=wav, ref_text="Hi."))
    full = two(job(action="add_voice", name="three", ref_audio=wav, ref_text="Hi."))
    assert full["error"].startswith("name: the library holds 2 added voices")
    again = two(job(action="add_voice", name="two", ref_audio=wav, ref_text="Hi again.",
                    overwrite=True))
    assert again["replaced"] is True


def test_an_hour_of_compressed_silence_is_refused_without_decoding_it(
        handler: Any, tmp_path: Path) -> None:
    """600 kB of FLAC that declares an hour of 48 kHz stereo: 1.4 GB as float32."""
    import resource
    import shutil
    import subprocess

    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is part of the audio stack (scripts/system-packages.sh)"
    bomb = tmp_path / "hour.flac"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i",
                    "anullsrc=r=48000:cl=stereo", "-t", "3600", "-c:a", "flac", str(bomb)],
                   check=True)
    assert bomb.stat().st_size < 2 << 20
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB
    # add_voice refuses it by its header; a synthesis cuts it to its middle 8 s (the
    # replaced worker's rule), decoding only those, which are silence.
    for fields, refusal in (
            ({"action": "add_voice", "name": "bomb", "ref_text": "Nothing."},
             "ref_audio: is 3600.0 s; the model uses at most"),
            ({"text": "Hi.", "ref_text": "Nothing."}, "ref_audio: is silent or nearly so")):
        result = handler(job(ref_audio=b64(bomb), **fields))
        assert result["error"].startswith(refusal), result
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 300, f"the peak memory grew by {grown_mb:.0f} MB"
