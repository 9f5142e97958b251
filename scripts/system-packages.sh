#!/usr/bin/env bash
# Debian packages the tests need, installed when missing (root on a fresh machine).
#   chromium  the HTML boot report is opened and screenshotted headless
set -euo pipefail
needed=()
command -v chromium >/dev/null || needed+=(chromium)
if [ "${#needed[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: tests need ${needed[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "installing ${needed[*]} ..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
fi
