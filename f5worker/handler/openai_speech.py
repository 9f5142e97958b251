"""OpenAI's speech API on a load-balancing endpoint: ``POST /v1/audio/speech`` answered
with audio streamed in chunked transfer as each chunk of the text is spoken, and
``GET /v1/audio/voices`` listing the voice library. What the OpenAI client libraries and
most voice front-ends speak.

A request is a job like any other: the same validation (f5worker/handler/inputs), voice
library and budget (deadline, audio bound) as a queue job, the first chunk cut short as a
stream's is (f5worker/handler/streaming). ``model`` is accepted and ignored (one model is
loaded); ``voice`` is a library voice. ``response_format`` mp3, opus (Ogg), aac (ADTS)
and flac are encoded by FFmpeg as the audio comes; wav (a header of unknown length, as
OpenAI's own) and pcm (raw 16-bit little-endian mono at 24 kHz) are written directly.

Requests wait for the model in a bounded queue (``api_queue`` waiting beside the one
running); one past it is answered 429. With ``api_key`` set, a request must carry
``Authorization: Bearer <key>`` (401 otherwise); the key is never logged. Errors take
OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import struct
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bootstrap.kernel import events
from f5worker import f5
from f5worker.handler import f5tts, speech, streaming
from f5worker.handler.budget import Budget
from f5worker.handler.inputs import InputError
from f5worker.handler.speech import Services

MEDIA = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
         "wav": "audio/wav", "pcm": "audio/pcm"}
FFMPEG = {"mp3": ["-f", "mp3", "-c:a", "libmp3lame", "-b:a", "64k"],
          "opus": ["-f", "ogg", "-c:a", "libopus", "-b:a", "32k"],
          "aac": ["-f", "adts", "-c:a", "aac", "-b:a", "64k"],
          "flac": ["-f", "flac", "-c:a", "flac"]}
FIELDS = ("model", "input", "voice", "response_format", "speed", "instructions",
          "stream_format")
# Our fields by OpenAI's names, so a refusal names what the client sent.
PARAM = {"text": "input", "voice": "voice", "speed": "speed"}


def error(status: int, message: str, param: str | None = None,
          kind: str = "invalid_request_error", code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param,
                                   "code": code}}, status_code=status)


class Queue:
    """Admits ``size`` waiting requests beside the running one; the rest are refused."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.admitted = 0

    def enter(self) -> bool:
        if self.admitted > self.size:
            return False
        self.admitted += 1
        return True

    def leave(self) -> None:
        self.admitted -= 1


def wav_header(rate: int) -> bytes:
    """A 16-bit mono WAV header whose sizes say "unknown" (0xFFFFFFFF), for a stream."""
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", 0xFFFFFFFF))


def pcm_pieces(waves: Iterator[Any], rate: int) -> Generator[bytes, None, None]:
    """The joined audio as PCM16 bytes, each piece once no later chunk changes it."""
    for piece in streaming.audio_parts(waves, rate, []):
        yield streaming.encoded(piece, rate, "pcm16")


async def encoded(pieces: AsyncIterator[bytes], fmt: str, rate: int) -> AsyncIterator[bytes]:
    """``pieces`` of PCM16 in ``fmt``: through an FFmpeg process for the compressed ones,
    its output read while the synthesis still feeds it."""
    if fmt in ("wav", "pcm"):
        if fmt == "wav":
            yield wav_header(rate)
        async for piece in pieces:
            yield piece
        return
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate),
        "-ac", "1", "-i", "pipe:0", *FFMPEG[fmt], "pipe:1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            async for piece in pieces:
                proc.stdin.write(piece)
                await proc.stdin.drain()
        finally:
            proc.stdin.close()

    feeding = asyncio.create_task(feed())
    try:
        while out := await proc.stdout.read(1 << 16):
            yield out
        await feeding
    finally:
        feeding.cancel()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()


def _parsed(body: Any, svc: Services) -> tuple[Any, str]:
    """Our synthesis request from OpenAI's fields, and the response format."""
    if not isinstance(body, dict):
        raise InputError("input", "the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InputError(unknown[0], f"is not a parameter of this API (known: "
                         f"{', '.join(FIELDS)})")
    fmt = body.get("response_format", "mp3")
    if fmt not in MEDIA:
        raise InputError("response_format", f"must be one of {', '.join(MEDIA)}")
    if "input" not in body:
        raise InputError("text", "is required")
    if not isinstance(body.get("voice"), str):
        raise InputError("voice", "is required: the name of a voice (GET /v1/audio/voices)")
    job_input = {"text": body["input"], "voice": body["voice"],
                 **({"speed": body["speed"]} if "speed" in body else {})}
    return f5tts.checked(job_input, svc), str(fmt)


class KeyRequired:
    """ASGI middleware: the worker's JSON routes (``paths``) behind the same key."""

    def __init__(self, app: Any, api_key: str, paths: tuple[str, ...]) -> None:
        self.app, self.api_key, self.paths = app, api_key, paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.api_key and scope["type"] == "http" and scope["path"] in self.paths:
            headers = dict(scope.get("headers") or [])
            if not authorized(headers.get(b"authorization", b"").decode("latin-1"),
                              self.api_key):
                await unauthorized()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def authorized(header: str, api_key: str) -> bool:
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              api_key.encode())


def unauthorized() -> JSONResponse:
    return error(401, "Incorrect API key provided: send Authorization: Bearer <key> "
                 "(the worker's BOOTSTRAP_API_KEY)", code="invalid_api_key")


def routes(svc: Services, api_key: str, queue_size: int) -> list[Route]:
    queue = Queue(queue_size)

    def refused_key(request: Request) -> Response | None:
        if not api_key or authorized(request.headers.get("authorization", ""), api_key):
            return None
        return unauthorized()

    async def speech_route(request: Request) -> Response:
        refused = refused_key(request)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        if not queue.enter():
            events.emit("info", "http.speech_refused", reason="queue full",
                        waiting=queue.admitted)
            return error(429, f"the worker is busy: {queue.size} requests already wait "
                         "for the model; retry later", kind="rate_limit_error",
                         code="rate_limit_exceeded")
        try:
            return await _speak(body, request)
        except BaseException:
            queue.leave()
            raise

    async def _speak(body: Any, request: Request) -> Response:
        budget = Budget(svc.limits)
        try:
            parsed, fmt = _parsed(body, svc)
            ready = await run_in_threadpool(speech.prepare, parsed, svc, budget,
                                            speech.Fields(voice="voice"), True)
        except InputError as exc:
            queue.leave()
            events.emit("info", "http.speech_refused", field=exc.field, error=str(exc))
            param = PARAM.get(exc.field, exc.field)
            return error(400, f"{param}: {exc.problem}", param=param)
        except Exception as exc:
            queue.leave()
            answer = f5tts.failure(exc, "http", "synthesize")
            return error(400 if "job.E" in answer["error"] else 500, answer["error"],
                         kind="invalid_request_error" if "job.E" in answer["error"]
                         else "server_error")
        rate = svc.model.sample_rate
        waves = svc.model.waves(ready.clip.samples, ready.ref_text, ready.plan,
                                parsed.seed if parsed.seed is not None else f5.random_seed(),
                                nfe_step=parsed.nfe_step, cfg_strength=parsed.cfg_strength,
                                speed=parsed.speed,
                                between=speech.chunk_guard(ready, parsed, svc, budget))
        pieces = pcm_pieces(waves, rate)

        async def body_chunks() -> AsyncIterator[bytes]:
            try:
                async for out in encoded(iterate_in_threadpool(pieces), fmt, rate):
                    yield out
            except Exception as exc:  # the status is sent: the stream can only end early
                events.emit("error", "http.speech_failed",
                            error=f"{type(exc).__name__}: {exc}"[:2000])
            finally:
                with contextlib.suppress(ValueError):  # running in a thread right now
                    await run_in_threadpool(pieces.close)
                    await run_in_threadpool(waves.close)
                queue.leave()

        return StreamingResponse(body_chunks(), media_type=MEDIA[fmt])

    async def voices_route(request: Request) -> Response:
        refused = refused_key(request)
        if refused is not None:
            return refused
        found = [{"voice_id": voice.name, "name": voice.name, "source": voice.source}
                 for voice in svc.library.all().values()]
        return JSONResponse({"object": "list", "data": found})

    return [Route("/v1/audio/speech", speech_route, methods=["POST"]),
            Route("/v1/audio/voices", voices_route, methods=["GET"])]
