# shellcheck shell=bash
# Sourced by the other scripts: makes .venv with the project and the given extras installed.
# Re-running is cheap: pip skips what is already there, and its cache stays warm.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
VENV="$ROOT/.venv"

ensure_venv() {  # ensure_venv EXTRAS  (e.g. "dev" or "serve")
    if ! command -v "$PYTHON" >/dev/null; then
        echo "bootstrap: $PYTHON not found; install Python 3.11 or set PYTHON=..." >&2
        exit 127
    fi
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    echo "installing bootstrap[$1] into $VENV ..." >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "${ROOT}[$1]"
}
