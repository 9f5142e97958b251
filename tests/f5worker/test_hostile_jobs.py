"""Requests an attacker would send, over HTTP to the real RunPod SDK local server: each is
refused by field or served within bounds, and the worker serves the next job.

The worker's memory is read from /proc (VmHWM, its peak resident set): the bounds below are
what a job may add over the booted worker, far under what today's attacks cost (a 48001 Hz
clip asked F5-TTS's resampler for 9.2 GB; a 3001 Hz one grew the worker by 2.2 GB).
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from f5worker.handler import tiny_model

# What one job with an odd-rate reference may add to the worker's peak memory: decoding
# and resampling a 1 s clip is a few MB; the model's own working memory for a short
# synthesis is the rest. Measured here: about 20 MB. Today's code: +2,200 MB and +9,200 MB.
ODD_RATE_MB = 150
JOB_TIMEOUT_S = 3.0


def clip(rate: int, seconds: float, amplitude: float = 0.3, channels: int = 1,
         fmt: str = "WAV") -> bytes:
    """A voice-like tone at ``rate``, encoded as ``fmt`` (16-bit)."""
    t = np.arange(int(rate * seconds)) / rate
    tone = amplitude * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    data = np.repeat(tone[:, None], channels, axis=1).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def dripping(tls: tuple[Path, Path], https_server: Any) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 that sends its status line one byte every 0.3 s."""
    class Drip(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with contextlib.suppress(OSError):
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nRIFF":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.3)

    with https_server(Drip, tls) as port:
        yield f"https://localhost:{port}/voice.wav"


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, tls: tuple[Path, Path],
           serve: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    volume = tmp_path_factory.mktemp("hostile-volume")
    tiny_model.build(volume)
    settings = json.dumps({"job_timeout_s": JOB_TIMEOUT_S})
    # The worker fetches from loopback (only) trusting the test's certificate: see serve_f5.
    with serve(volume, tmp_path_factory.mktemp("hostile"), SERVE_F5_SETTINGS=settings,
               SERVE_F5_TRUST_CA=str(tls[0])) as w:
        yield w


def synth(worker: Any, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = worker.post({"input": {"nfe_step": 2, "seed": 1, **fields}})
    return answer


def still_serving(worker: Any) -> None:
    answer = synth(worker, text="Still serving.", voice="default")
    assert answer["status"] == "COMPLETED", answer


@pytest.mark.parametrize("rate", [48001, 44101, 8000])
def test_an_odd_sample_rate_is_resampled_once_at_decode_within_bounded_memory(
        worker: Any, rate: int) -> None:
    before = worker.peak_rss_mb()
    answer = synth(worker, text="An odd rate.", ref_audio=b64(clip(rate, 1.0)),
                   ref_text="A tone.")
    assert answer["status"] == "COMPLETED", answer
    samples, out_rate = soundfile.read(io.BytesIO(base64.b64decode(answer["output"]["audio"])))
    assert out_rate == 24000 and len(samples) > 0
    assert worker.peak_rss_mb() - before < ODD_RATE_MB


@pytest.mark.parametrize("rate", [3001, 7999, 192001])
def test_a_sample_rate_outside_the_range_is_refused_by_field(worker: Any, rate: int) -> None:
    before = worker.peak_rss_mb()
    # A 6 kB one-second WAV at 3001 Hz grew the worker by 2.2 GB.
    answer = synth(worker, text="An odd rate.", ref_audio=b64(clip(rate, 1.0)),
                   ref_text="A tone.")
    assert answer["status"] == "FAILED"
    assert answer["error"] == (f"ref_audio: has a sample rate of {rate} Hz; 8000-192000 Hz "
                               "is accepted")
    assert worker.peak_rss_mb() - before < ODD_RATE_MB
    still_serving(worker)


def test_a_voice_is_stored_mono_at_the_model_rate_as_flac(worker: Any, tmp_path: Path) -> None:
    # 96 kHz stereo: stored as it came, 2 s would be 768 kB; at 24 kHz mono FLAC, far less.
    added = worker.post({"input": {"action": "add_voice", "name": "hifi", "overwrite": True,
                                   "ref_audio": b64(clip(96000, 2.0, channels=2,
                                                         fmt="FLAC")),
                                   "ref_text": "A tone."}})
    assert added["status"] == "COMPLETED", added
    assert added["output"]["voice"]["sample_rate"] == 24000
    assert added["output"]["voice"]["source_sample_rate"] == 96000
    stored = next((worker.volume / "models" / "voices" / "hifi").glob("voice-*"))
    info = soundfile.info(str(stored))
    assert (stored.suffix, info.format, info.samplerate, info.channels) == (
        ".flac", "FLAC", 24000, 1)
    assert stored.stat().st_size < 2.0 * 24000 * 2  # under its 16-bit PCM size
    spoken = synth(worker, text="Speak like the stored voice.", voice="hifi")
    assert spoken["status"] == "COMPLETED", spoken


@pytest.mark.parametrize("level", [0.0, 1e-4])
def test_a_silent_or_near_silent_reference_is_refused_in_every_action(
        worker: Any, level: float) -> None:
    silent = b64(clip(24000, 3.0, amplitude=level))
    answers = [synth(worker, text="From silence.", ref_audio=silent, ref_text="Nothing."),
               worker.post({"input": {"action": "add_voice", "name": "quiet",
                                      "ref_audio": silent, "ref_text": "Nothing."}})]
    for answer in answers:
        assert answer["status"] == "FAILED", answer
        assert answer["error"].startswith("ref_audio: is silent or nearly so ("), answer
    still_serving(worker)


def test_a_short_transcript_over_a_long_reference_is_refused_before_any_compute(
        worker: Any) -> None:
    """``ref_text: "A."`` over 12 s made each byte of text last seconds and the text fall
    into chunks of a few bytes, each re-reading the whole reference: 165 characters made
    1,358 s of audio. (A reference over 10 s is now cut and transcribed; 9.5 s is not.)"""
    text = ("Go on. " * 24)[:165]  # sentences under 10 bytes: F5-TTS slows them to 0.3
    planned = len(worker.events("job.planned"))
    # 9.5 s: under the 10 s past which a reference is cut to its middle (and transcribed).
    answer = synth(worker, text=text, ref_audio=b64(clip(24000, 9.5)), ref_text="A.")
    assert answer["status"] == "FAILED"
    assert answer["error"].startswith("text: would make about "), answer
    assert "a job may make at most 600 s" in answer["error"]
    assert len(worker.events("job.planned")) == planned  # refused at the plan: no compute
    still_serving(worker)


def test_a_job_past_its_deadline_stops_between_chunks_and_the_next_one_runs(
        worker: Any) -> None:
    # At speed 0.3, six chunks of 15 s of audio each, seconds of compute each at nfe 32.
    text = " ".join(f"Sentence number {n} of a long text." for n in range(12))
    answer = synth(worker, text=text, voice="default", speed=0.3, nfe_step=32)
    assert answer["status"] == "FAILED", answer
    error = answer["error"]
    assert error.startswith(f"job.E001: the job ran past its {JOB_TIMEOUT_S:g} s budget ("), error
    done, total = (int(n) for n in error.split("(")[1].split(" chunks")[0].split(" of "))
    assert 0 < done < total, error
    still_serving(worker)


def test_lone_surrogates_are_refused_by_field_and_the_job_is_logged(worker: Any) -> None:
    # Raw JSON: json.dumps would escape them the same way, but spell out what travels.
    body = (b'{"input": {"text": "A lone \\ud800 surrogate", "voice": "default"}}')
    answer = worker.post(body)
    assert answer["status"] == "FAILED"
    assert answer["error"].startswith("text: holds a lone surrogate at character 7"), answer
    body = (b'{"input": {"text": "Hi.", "voice": "default", "x\\udc00": 1}}')
    answer = worker.post(body)  # was HTTP 500: the job's event could not be written
    assert answer.get("status") == "FAILED", answer
    assert answer["error"].startswith("x\\udc00: is not a field of synthesize"), answer
    assert any(e["field"] == "x\\udc00" for e in worker.events("job.refused"))
    still_serving(worker)


def test_base64_wrapped_in_lines_is_accepted(worker: Any) -> None:
    wrapped = base64.encodebytes(clip(24000, 1.5)).decode()  # 76 columns, like `base64`
    assert "\n" in wrapped
    answer = synth(worker, text="Wrapped.", ref_audio=wrapped, ref_text="A tone.")
    assert answer["status"] == "COMPLETED", answer


def test_the_clients_text_is_never_logged(worker: Any) -> None:
    marker = "Zanzibarquux"
    text = f"The secret word is {marker}. " * 12  # several chunks
    answer = synth(worker, text=text, voice="default", nfe_step=1)
    assert answer["status"] == "COMPLETED", answer
    assert marker not in worker.log
    planned = worker.events("job.planned")
    assert planned[-1]["text_chars"] == len(text.strip()) and planned[-1]["chunks"] > 1
    assert len(planned[-1]["text_sha256"]) == 16


def test_a_wav_of_many_chunks_is_joined_as_f5_tts_joins_them() -> None:
    from f5worker.f5 import CROSS_FADE_S, cross_fade

    rate = 24000
    waves = [np.full(10000, 1.0, np.float32), np.full(2000, 0.5, np.float32),
             np.full(100, 0.25, np.float32)]
    joined = cross_fade(waves, rate)
    fade = int(CROSS_FADE_S * rate)  # 3600: cut to the shorter side each time
    assert len(joined) == 10000 + 2000 + 100 - 2000 - 100
    expected = waves[0].copy()
    for nxt in waves[1:]:  # F5-TTS's own loop, which copies at every chunk
        n = min(fade, len(expected), len(nxt))
        mixed = expected[-n:] * np.linspace(1, 0, n) + nxt[:n] * np.linspace(0, 1, n)
        expected = np.concatenate([expected[:-n], mixed, nxt[n:]])
    assert np.allclose(joined, expected, atol=1e-6)


def test_a_reference_url_dripping_its_answer_ends_within_the_total_fetch_deadline(
        worker: Any, dripping: str) -> None:
    """The 10 s limit used to cover only the body: a dripped status line held a job 40-60 s."""
    started = time.monotonic()
    answer = synth(worker, text="From a slow host.", ref_audio=dripping, ref_text="A tone.")
    elapsed = time.monotonic() - started
    assert answer["status"] == "FAILED"
    # The fetch gets what the job's budget has left (under 3 s here), not its own 10 s.
    assert re.fullmatch(r"ref_audio: took over 2\.\d s to fetch \(from localhost, while "
                        r"waiting for the answer\)", answer["error"]), answer
    assert elapsed < JOB_TIMEOUT_S + 5  # the job's deadline, plus HTTP and slack
    still_serving(worker)


def test_a_url_port_out_of_range_is_refused_by_field(worker: Any) -> None:
    """It ended as "synthesis failed: ValueError". (Mapped and NAT64 addresses are refused
    by the production address rule, tested in tests/f5worker/test_refaudio.py: this worker's fetch
    trusts loopback only, so it could not tell that rule's answer from its own.)"""
    answer = synth(worker, text="Hi.", ref_audio="https://example.com:99999/voice.wav",
                   ref_text="A tone.")
    assert answer["status"] == "FAILED"
    assert answer["error"].startswith("ref_audio: "), answer
    assert "synthesis failed" not in answer["error"]
    still_serving(worker)
