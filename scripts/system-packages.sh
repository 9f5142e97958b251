#!/usr/bin/env bash
# Installs the Debian packages named as arguments when their program is missing
# (root on a fresh machine). An argument is a package named after the program it provides,
# or PROGRAM:PACKAGE where the names differ:
#   ffmpeg    FFmpeg's shared libraries for torchcodec, and the programs pydub calls
#   chromium  the tests open the HTML boot report headless and screenshot it
#   fusermount3:fuse3  libfuse 3 and its mount helper: the slow-volume test bed
#             (tests/environment/slowfs.py, through the mfusepy binding of the dev extra)
set -euo pipefail
needed=()
for argument in "$@"; do
    program="${argument%%:*}"
    package="${argument#*:}"
    command -v "$program" >/dev/null || needed+=("$package")
done
[ "${#needed[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: ${needed[*]} missing; run as root or install them" >&2
    exit 1
fi
echo "installing ${needed[*]} ..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}" \
    >/dev/null
