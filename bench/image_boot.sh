#!/usr/bin/env bash
# Boot times of the image, for docs/deploy-runpod.md ("Slim or baked"). Not a test: it prints
# each boot's summary (total and per-stage milliseconds); nothing is asserted.
#
#   bench/image_boot.sh slim     # volume mode, echo handler: first boot builds the env, then warm
#   bench/image_boot.sh slim-f5  # local mode, the F5-TTS handler on the tiny random model (CPU):
#                                # the first boot installs torch and f5-tts on the volume from
#                                # the local wheelhouse (tests/container/wheelhouse.sh), offline
#   bench/image_boot.sh baked    # local mode, the F5-TTS handler on the tiny random model (CPU)
#
# BENCH_UV_CACHE_DIR=/tmp/uv-cache puts uv's cache there inside the container (the container
# disk): the layout before uv's cache moved into the environment being built, for comparison.
#
# Uses the podman set up by tests/container/setup-podman.sh and its stand-in base image. The
# baked build downloads torch 2.9 with its CUDA libraries: about 13 minutes and 9.6 GB the
# first time. The volume is a fresh temporary directory, removed at the end.
set -Eeuo pipefail

bench="${1:?usage: bench/image_boot.sh slim|slim-f5|baked}"
variant="${bench%-f5}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$repo/tests/container/setup-podman.sh")"
image="localhost/bootstrap-worker:bench-$variant"
"$repo/image/build.sh" --variant "$variant" --tag "$image" -- \
    --build-arg "BASE_IMAGE=$BOOTSTRAP_TEST_BASE" >/dev/null

volume="$(mktemp -d)"
trap 'rm -rf "$volume"' EXIT
store=/etc/ssl/certs/ca-certificates.crt  # this host's TLS proxy CA is in the image's store
args=(run --rm --network=host -v "$volume:/runpod-volume" -e BOOTSTRAP_LOG_FORMAT=json
      -e "PIP_CERT=$store" -e "SSL_CERT_FILE=$store")
if [[ "$bench" == slim-f5 ]]; then
    # The slim image has no torch: the host's .venv (the f5 extra) builds the tiny model.
    python="$repo/.venv/bin/python"
    eval "$(PYTHON="$python" "$repo/tests/container/wheelhouse.sh")"
    (cd "$repo" && "$python" -m f5worker.handler.tiny_model "$volume" >/dev/null)
    (cd "$repo" && "$python" -c 'from pathlib import Path; from handler import tiny_model
for k, v in tiny_model.settings(Path("/runpod-volume")).items(): print(f"{k} = {v!r}")') \
        | tr "'" '"' >"$volume/bootstrap.toml"
    requirements="$("$python" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["f5"]))' \
        "$repo/pyproject.toml")"
    args=(run --rm --network=none -v "$volume:/runpod-volume" -e BOOTSTRAP_LOG_FORMAT=json
          -v "$BOOTSTRAP_TEST_WHEELHOUSE:/wheelhouse:ro" -e BOOTSTRAP_FIND_LINKS=/wheelhouse
          -e BOOTSTRAP_NO_INDEX=true -e "BOOTSTRAP_REQUIREMENTS_TEXT=$requirements"
          -e BOOTSTRAP_MODE=local -e BOOTSTRAP_CONFIG=/runpod-volume/bootstrap.toml
          -e 'BOOTSTRAP_TEST_INPUT={"text": "Hello there.", "voice": "default"}')
elif [[ "$variant" == baked ]]; then
    podman run --rm -v "$volume:/runpod-volume" --entrypoint python3 "$image" \
        -m f5worker.handler.tiny_model /runpod-volume >"$volume/bootstrap.toml"
    args+=(-e BOOTSTRAP_MODE=local -e BOOTSTRAP_CONFIG=/runpod-volume/bootstrap.toml
           -e BOOTSTRAP_HANDLER=f5worker.handler.f5tts:make_handler
           -e 'BOOTSTRAP_TEST_INPUT={"text": "Hello there.", "voice": "default"}')
    # Until the pipeline lists the F5 stages itself (docs/handler.md).
    stages=bootstrap.stages.cuda:STAGE,f5worker.stages.audio:STAGE
    stages+=,f5worker.stages.model:STAGE,f5worker.stages.warmup:STAGE
    args+=(-e "BOOTSTRAP_EXTRA_STAGES=$stages")
else
    args+=(-e BOOTSTRAP_HANDLER=bootstrap.echo:make_handler -e "BOOTSTRAP_SKIP=cuda,audio,model,warmup"
           -e 'BOOTSTRAP_REQUIREMENTS_TEXT=runpod>=1.10,<1.13' -e 'BOOTSTRAP_TEST_INPUT={"text": "hi"}')
fi

if [[ -n "${BENCH_UV_CACHE_DIR:-}" ]]; then
    args+=(-e "UV_CACHE_DIR=$BENCH_UV_CACHE_DIR")
fi

for boot in first warm; do
    started=$(date +%s%3N)
    # A failed boot is a result too: its summary is printed like any other.
    { podman "${args[@]}" "$image" || true; } | tail -n 1 | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
print(sys.argv[1], "boot:", s["status"], s["exit_code"], s["total_ms"], "ms", s["stages"])
' "$boot"
    echo "  container wall time: $(($(date +%s%3N) - started)) ms"
done
