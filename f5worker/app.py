"""The F5-TTS app as the framework loads it: ``BOOTSTRAP_APP=f5worker.app:APP``.

Read top to bottom, the worker's boot order after the framework's supervisor stages:
the GPU, the audio stack, the model (with the aligner and the transcriber when they are
on), a warm-up synthesis, the bucket for stored outputs; then serve hands the warm model
to the handler. Stays light: the supervisor imports this module.
"""

from __future__ import annotations

from bootstrap.kernel.app import CUDA, STORAGE, App
from f5worker import settings, state

# F5-TTS requires gradio for its web UI, which the worker never imports; gradio pins
# tomlkit<0.15 and every runpod from 1.10.1 needs tomlkit>=0.15, so with gradio the SDK
# resolves to 1.10.0. A marker never true drops it. image/overrides.txt holds the same
# lines for .venv and the image (a test keeps them equal).
OVERRIDES = ('gradio; python_version < "3"',)

APP = App(
    name="f5-tts",
    handler="f5worker.handler.f5tts:make_handler",
    http_app="f5worker.handler.http:make_http_app",  # a load-balancing endpoint's server
    stages=(
        CUDA,
        "f5worker.stages.audio:STAGE",
        "f5worker.stages.model:STAGE",
        "f5worker.stages.warmup:STAGE",
        STORAGE,
    ),
    settings=settings.F5Settings,
    state=state.F5State,
    validate=settings.problems,
    overrides=OVERRIDES,
)
