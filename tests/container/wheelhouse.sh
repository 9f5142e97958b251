#!/usr/bin/env bash
# A local wheelhouse of the F5-TTS worker's packages (bootstrap's dependencies plus the f5
# extra of pyproject.toml), so the slim image can build its environment on the volume with no
# network: the container mounts it read-only and boots with BOOTSTRAP_FIND_LINKS and
# BOOTSTRAP_NO_INDEX (tests/image/test_container.py, bench/image_boot.sh).
#
#   tests/container/wheelhouse.sh      # prints `export BOOTSTRAP_TEST_WHEELHOUSE=DIR`
#
# Resolved first by uv with image/overrides.txt, as every F5-TTS environment is (gradio
# dropped, so the RunPod SDK resolves to 1.12, not 1.10.0), then built with `pip wheel --no-deps`
# from those pins (wheels as published; the few source-only packages are built into wheels
# here, so nothing is compiled in the container) and kept under the cache dir, keyed by the
# requirement and override text, the interpreter and the machine: a rerun with the same
# requirements costs a hash. Only the current key is kept (the wheelhouse is ~4 GB: torch 2.9
# with its CUDA libraries). PYTHON names the interpreter whose pip builds it; it must be the
# container's Python minor (3.11), because torch's wheels are per CPython version.
set -Eeuo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${BOOTSTRAP_CACHE_DIR:-$repo/.cache}/container/wheelhouse"
python="${PYTHON:-python3}"
# uv beside the interpreter (scripts/venv.sh puts it in .venv), else on PATH.
uv="$(dirname "$python")/uv"
[[ -x "$uv" ]] || uv="$(command -v uv || true)"
overrides="$repo/image/overrides.txt"

log() { printf 'wheelhouse: %s\n' "$*" >&2; }

requirements="$("$python" "$repo/image/requirements.py" "$repo/pyproject.toml" f5)"
target="$("$python" -c 'import platform, sys; print(sys.implementation.cache_tag, platform.machine())')"
key="$(printf '%s\n%s\n%s\n' "$target" "$requirements" "$(cat "$overrides")" \
    | sha256sum | cut -c1-16)"
dir="$cache/$key"

if [[ ! -f "$dir/.complete" ]]; then
    mkdir -p "$cache"
    rm -rf "$dir.tmp"
    mkdir "$dir.tmp"
    printf '%s\n' "$requirements" >"$dir.tmp/requirements.txt"
    if [[ -z "$uv" ]]; then
        log "uv is needed to resolve with $overrides (scripts/venv.sh installs it in .venv)"
        exit 1
    fi
    log "building $dir with pip wheel (first run only: ~4 GB, a few minutes)"
    started=$SECONDS
    if ! "$uv" pip compile --quiet --native-tls --python "$python" --override "$overrides" \
        --no-header --no-annotate -o "$dir.tmp/pinned.txt" "$dir.tmp/requirements.txt" \
        >"$cache/build.log" 2>&1 \
        || ! "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
        -r "$dir.tmp/pinned.txt" -w "$dir.tmp" >>"$cache/build.log" 2>&1; then
        tail -n 30 "$cache/build.log" >&2
        log "pip wheel failed; the whole log is $cache/build.log"
        exit 1
    fi
    printf '%s\n' "$target" >"$dir.tmp/.complete"
    # Older keys are whole copies of torch; one wheelhouse is enough.
    find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key.tmp" -exec rm -rf {} +
    mv "$dir.tmp" "$dir"
    log "built in $((SECONDS - started)) s: $(find "$dir" -name '*.whl' | wc -l) wheels," \
        "$(du -sh "$dir" | cut -f1)"
fi
printf 'export BOOTSTRAP_TEST_WHEELHOUSE=%q\n' "$dir"
