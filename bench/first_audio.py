"""Time to first audio beside the whole job's time, for both streamed paths, in one run.

Method (docs/performance.md, "Time to first audio"): the tiny random F5-TTS model is built
on a temporary volume and booted through the real cuda, audio, model and warmup stages on
the CPU (``--allow-cpu``; on a GPU the same code runs on it). For a text of four sentences
(``FOUR``), each repeat measures, side by side:

- queue: the plain handler's whole job (``f5tts.answering``), then the streaming handler
  (``f5worker/handler/streaming``) for the same job: the time to its first audio part and
  to its final message;
- http: the app's ASGI server (``f5worker/handler/http``) under uvicorn on 127.0.0.1, called
  by the official OpenAI client (``with_streaming_response``, ``response_format="pcm"``):
  the time to the first byte of audio and to the last.

Printed as JSON: medians over the repeats and the ratio first/whole per path (the goal:
at most 1/3), with the load average before and after.

Usage: python bench/first_audio.py [--repeats 3] [--nfe 16] [--allow-cpu] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bootstrap.kernel import events  # noqa: E402
from bootstrap.kernel.config import from_settings  # noqa: E402
from bootstrap.kernel.context import Context  # noqa: E402
from bootstrap.kernel.runner import run_stage  # noqa: E402
from bootstrap.stages import cuda  # noqa: E402
from f5worker.stages import audio, model, warmup  # noqa: E402

FOUR = ("The first audio should come early. A listener does not want to wait for the whole "
        "paragraph before hearing a word of it. So the worker speaks the text a chunk at a "
        "time and sends each one on. The last sentence closes the paragraph and the job.")


def queue_path(ctx: Context, text: str, nfe: int, voice: str) -> dict[str, float]:
    """One repeat of the queue path: the whole plain job, then the streamed one."""
    from f5worker.handler import f5tts, streaming

    svc = f5tts.services(ctx)
    job = {"id": "bench", "input": {"text": text, "voice": voice, "nfe_step": nfe,
                                    "seed": 1}}
    started = time.perf_counter()
    plain = f5tts.answering(svc)(job)
    whole = time.perf_counter() - started
    assert "error" not in plain, plain
    streamed = {**job, "input": {**job["input"], "stream": True}}
    started = time.perf_counter()
    first = None
    for part in streaming.handler(svc, f5tts.answering(svc))(streamed):
        assert "error" not in part, part
        if first is None and part.get("type") == "audio":
            first = time.perf_counter() - started
    assert first is not None
    return {"plain_whole_s": whole, "stream_first_s": first,
            "stream_whole_s": time.perf_counter() - started}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_server(ctx: Context) -> tuple[Any, int]:
    """The app's HTTP server under uvicorn in a thread; the server and its port."""
    import uvicorn

    from f5worker.handler.http import make_http_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(make_http_app(ctx), host="127.0.0.1", port=port,
                                           log_config=None, access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start in 30 s")
        time.sleep(0.05)
    return server, port


def http_path(port: int, text: str, voice: str) -> dict[str, float]:
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench",
                           max_retries=0, timeout=600)
    started = time.perf_counter()
    first = None
    size = 0
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice=voice, input=text, response_format="pcm") as response:
        for chunk in response.iter_bytes():
            if first is None and chunk:
                first = time.perf_counter() - started
            size += len(chunk)
    assert first is not None and size > 0
    return {"http_first_s": first, "http_whole_s": time.perf_counter() - started}


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    median = {name: round(statistics.median(run[name] for run in runs), 3)
              for name in runs[0]}
    out: dict[str, Any] = {"median_s": median, "runs": len(runs)}
    if "stream_first_s" in median:
        out["queue_first_over_whole"] = round(median["stream_first_s"]
                                              / median["stream_whole_s"], 3)
        out["queue_first_over_plain_whole"] = round(median["stream_first_s"]
                                                    / median["plain_whole_s"], 3)
    if "http_first_s" in median:
        out["http_first_over_whole"] = round(median["http_first_s"] / median["http_whole_s"],
                                             3)
    return out


def measure(ctx: Context, text: str, nfe: int, repeats: int, voice: str,
            http: bool = True) -> dict[str, Any]:
    """Both paths, ``repeats`` times, each repeat running them one after the other."""
    server, port = http_server(ctx) if http else (None, 0)
    runs = []
    try:
        for _ in range(repeats):
            run = queue_path(ctx, text, nfe, voice)
            if http:
                run.update(http_path(port, text, voice))
            runs.append(run)
    finally:
        if server is not None:
            server.should_exit = True
    return {"text_chars": len(text), "nfe_step": nfe, **summary(runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nfe", type=int, default=16)
    parser.add_argument("--allow-cpu", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    events.configure("json", stream=open(os.devnull, "w"))  # noqa: SIM115 (the whole run)
    from f5worker.handler import tiny_model

    result: dict[str, Any] = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-first-audio-") as tmp:
        volume = Path(tmp)
        settings = dict(tiny_model.build(volume))
        config = from_settings({"app": "f5worker.app:APP", **settings, "volume": volume,
                                "mode": "local", "allow_cpu": args.allow_cpu,
                                "transcribe": False})
        ctx = Context(config, run_id="bench", worker_id="bench")
        for stage in (cuda, audio, model, warmup):
            if run_stage(stage.STAGE, ctx).failure:
                print(json.dumps({"failed": stage.STAGE.name}))
                return 1
        result.update(measure(ctx, FOUR, args.nfe, args.repeats, "default"))
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
