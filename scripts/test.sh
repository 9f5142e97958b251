#!/usr/bin/env bash
# The whole test suite on a fresh machine (Python 3.11, root). Extra arguments go to pytest.
set -euo pipefail
# shellcheck source=scripts/venv.sh
source "$(dirname "$0")/venv.sh"
bash "$ROOT/scripts/system-packages.sh" ffmpeg chromium fusermount3:fuse3
ensure_venv dev,f5
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
