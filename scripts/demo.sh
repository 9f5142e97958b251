#!/usr/bin/env bash
# Boots the demo worker locally, end to end: local mode, a temporary directory as the
# volume holding a tiny random F5-TTS model, every stage (the GPU is optional here), then
# the F5-TTS handler answers one sample job and its WAV is written to the volume.
# The first run installs torch and F5-TTS into .venv (~8 GB, ~5 minutes).
set -euo pipefail
# shellcheck source=scripts/venv.sh
source "$(dirname "$0")/venv.sh"
bash "$ROOT/scripts/system-packages.sh" ffmpeg
ensure_venv f5
VOLUME=${VOLUME:-$(mktemp -d -t bootstrap-demo-XXXXXX)}
echo "volume: $VOLUME" >&2
cd "$ROOT"
"$VENV/bin/python" -m f5worker.handler.tiny_model "$VOLUME" > "$VOLUME/bootstrap.toml"
"$VENV/bin/bootstrap" run --config "$VOLUME/bootstrap.toml" --mode local --volume "$VOLUME" \
    --test-input '{"text": "Hello from a warm worker.", "voice": "default"}' "$@"
echo "boot report:" >&2
"$VENV/bin/bootstrap" report --volume "$VOLUME" >&2
echo "the answer: $(ls "$VOLUME"/outputs/*.wav)" >&2
