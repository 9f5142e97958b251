"""The F5-TTS worker: an app on the bootstrap framework (declared in ``f5worker/app.py``).

Its settings (``settings.py``), its stages (``stages/``: the audio stack, the model's
assets and warm load, the warm-up), what those stages hand the handler (``state.py``), its
voice library, and its request handler (``handler/``).
"""
