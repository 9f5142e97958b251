#!/usr/bin/env bash
# Boots the demo worker locally, end to end: local mode, a temporary directory as the
# volume, every stage, then the handler answers one sample job and the worker exits.
set -euo pipefail
# shellcheck source=scripts/venv.sh
source "$(dirname "$0")/venv.sh"
ensure_venv serve
VOLUME=${VOLUME:-$(mktemp -d -t bootstrap-demo-XXXXXX)}
echo "volume: $VOLUME" >&2
cd "$ROOT"
"$VENV/bin/bootstrap" run --mode local --volume "$VOLUME" \
    --test-input '{"text": "Hello from a warm worker."}' "$@"
echo "boot report:" >&2
"$VENV/bin/bootstrap" report --volume "$VOLUME" >&2
