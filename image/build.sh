#!/usr/bin/env bash
# Build the worker image with its version and revision labels filled in.
#
#   image/build.sh [--variant baked|slim] [--tag NAME] [--context DIR] [-- extra build args...]
#
# The variant is the Dockerfile's VARIANT argument; baked is its default, the image a plain
# build (and the RunPod Hub) makes. It is always passed: buildah (podman build) follows a base
# named by an argument only when the argument is given, and skips the stage otherwise.
#
# --context builds from another copy of this tree (the tests use one with planted secrets);
# the version and revision still come from this checkout.
# The engine is podman when present, else docker (BOOTSTRAP_ENGINE overrides). Extra
# arguments go to the engine, e.g. `-- --build-arg BASE_IMAGE=localhost/bootstrap-base:bookworm`.
set -Eeuo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
variant=baked
tag=""
context="$repo"
while (($#)); do
    case "$1" in
        --variant) variant="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        --context) context="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "build.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case "$variant" in
    slim | baked) ;;
    *) echo "build.sh: --variant is slim or baked, not $variant" >&2; exit 2 ;;
esac

engine="${BOOTSTRAP_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
version="$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$repo/pyproject.toml")"
revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
# A revision with uncommitted changes is not that revision; say so in the label.
if [[ "$revision" != unknown ]] && ! git -C "$repo" diff --quiet HEAD -- 2>/dev/null; then
    revision="$revision-dirty"
fi
tag="${tag:-bootstrap-worker:$version-$variant}"

args=(build --file "$context/Dockerfile" --tag "$tag" --build-arg "VARIANT=$variant"
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision")
if [[ "$engine" == podman ]]; then
    # No registry lookups for an image that is already local; host networking, because
    # podman's default bridge rewrites the host's firewall tables (and fails on some hosts).
    args+=(--pull=never --network=host)
fi
exec "$engine" "${args[@]}" "$@" "$context"
