#!/usr/bin/env bash
# The README's two commands on a "fresh machine": a clone in /tmp and empty package caches,
# so every wheel is downloaded again. Times the demo (scripts/demo.sh, end to end) and the
# test command's set-up (ensure_venv dev,f5; the suite itself is not run), each once at
# REV (default HEAD) and once at OLD (default 168a118, the pip way), with the load beside
# each figure. ~8 GB is downloaded per run.
#   bash bench/first_setup.sh [REV] [OLD]
#   ONLY="setup-new" bash bench/first_setup.sh     # some of the four runs (space-separated)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
REV=${1:-HEAD}
OLD=${2:-168a118}
WORK=$(mktemp -d -t first-setup-XXXXXX)

ONLY=${ONLY:-demo-new setup-new demo-old setup-old}

one() {  # one LABEL REV COMMAND
    local label=$1 rev=$2 cmd=$3 dir="$WORK/$1"
    [[ " $ONLY " == *" $label "* ]] || return 0
    git clone --quiet "$REPO" "$dir/repo" && git -C "$dir/repo" checkout --quiet "$rev"
    mkdir -p "$dir/uv-cache" "$dir/pip-cache"
    echo "== $label at $(git -C "$dir/repo" rev-parse --short HEAD): load before: $(uptime)"
    local start end
    start=$(date +%s.%N)
    (cd "$dir/repo" && UV_CACHE_DIR="$dir/uv-cache" PIP_CACHE_DIR="$dir/pip-cache" \
        bash -c "$cmd" >"$dir/log" 2>&1)
    local rc=$?
    end=$(date +%s.%N)
    echo "== $label: rc=$rc wall_s=$(echo "$end - $start" | bc) load after: $(uptime)"
    echo "   runpod: $("$dir/repo/.venv/bin/python" -c 'import runpod; print(runpod.__version__)' 2>&1 | tail -1)"
    echo "   gradio: $("$dir/repo/.venv/bin/python" -c 'import gradio' 2>&1 | tail -1)"
    tail -3 "$dir/log" | sed 's/^/   log: /'
    rm -rf "$dir"
}

one demo-new "$REV" 'bash scripts/demo.sh'
one setup-new "$REV" "bash -c 'source scripts/venv.sh; ensure_venv dev,f5'"
one demo-old "$OLD" 'bash scripts/demo.sh'
one setup-old "$OLD" "bash -c 'source scripts/venv.sh; ensure_venv dev,f5'"
rmdir "$WORK"
