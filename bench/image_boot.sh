#!/usr/bin/env bash
# Boot times of the image, for docs/deploy-runpod.md ("Slim or baked"). Not a test: it prints
# each boot's summary (total and per-stage milliseconds); nothing is asserted.
#
#   bench/image_boot.sh slim     # volume mode, echo handler: first boot builds the env, then warm
#   bench/image_boot.sh baked    # local mode, the F5-TTS handler on the tiny random model (CPU)
#
# Uses the podman set up by tests/container/setup-podman.sh and its stand-in base image. The
# baked build downloads torch 2.9 with its CUDA libraries: about 13 minutes and 9.6 GB the
# first time. The volume is a fresh temporary directory, removed at the end.
set -Eeuo pipefail

variant="${1:?usage: bench/image_boot.sh slim|baked}"
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
if [[ "$variant" == baked ]]; then
    podman run --rm -v "$volume:/runpod-volume" --entrypoint python3 "$image" \
        -m handler.tiny_model /runpod-volume >"$volume/bootstrap.toml"
    args+=(-e BOOTSTRAP_MODE=local -e BOOTSTRAP_CONFIG=/runpod-volume/bootstrap.toml
           -e BOOTSTRAP_HANDLER=handler.f5tts:make_handler
           -e 'BOOTSTRAP_TEST_INPUT={"text": "Hello there.", "voice": "default"}')
    # Until the pipeline lists the F5 stages itself (docs/handler.md).
    stages=bootstrap.stages.cuda:STAGE,bootstrap.stages.audio:STAGE
    stages+=,bootstrap.stages.model:STAGE,bootstrap.stages.warmup:STAGE
    args+=(-e "BOOTSTRAP_EXTRA_STAGES=$stages")
else
    args+=(-e BOOTSTRAP_HANDLER=handler.echo:make_handler -e "BOOTSTRAP_SKIP=cuda,audio,model,warmup"
           -e 'BOOTSTRAP_REQUIREMENTS_TEXT=runpod>=1.10,<1.13' -e 'BOOTSTRAP_TEST_INPUT={"text": "hi"}')
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
