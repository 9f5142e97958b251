# shellcheck shell=bash
# Sourced by the other scripts: makes .venv with the project and the given extras installed.
# uv (from the package index, into .venv itself) resolves and installs: it downloads in
# parallel and links from its cache, where pip fetched ~8 GB one file at a time.
# Re-running is cheap: uv skips what is already there, and its cache stays warm.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
VENV="$ROOT/.venv"
UV_VERSION=${UV_VERSION:-0.9.13}  # the image's (Dockerfile)

ensure_venv() {  # ensure_venv EXTRAS  (e.g. "dev" or "serve")
    if ! command -v "$PYTHON" >/dev/null; then
        echo "bootstrap: $PYTHON not found; install Python 3.11 or set PYTHON=..." >&2
        exit 127
    fi
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    if ! [ -x "$VENV/bin/uv" ]; then
        echo "installing uv into $VENV ..." >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    fi
    echo "installing bootstrap[$1] into $VENV ..." >&2
    "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" \
        --override "$ROOT/image/overrides.txt" -e "${ROOT}[$1]"
}
