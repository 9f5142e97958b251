#!/usr/bin/env bash
# The container's entrypoint: check that a usable Python is there, then become bootstrap.
#
#   entrypoint.sh [bootstrap arguments...]     (default: run)
#   entrypoint.sh PROGRAM [arguments...]       (a program on PATH runs as it is: bash, sleep)
#
# Why a shell at all: when the image's Python is missing, too old or broken, bootstrap cannot
# say so itself, and the platform shows nothing but "exit code 127". This script prints one
# JSON line in bootstrap's own event shape (a `summary`, like the last line of every boot)
# and exits with a documented code (docs/exit-codes.md):
#   10  the Python is missing or too old (the preflight stage's code)
#   70  a command in this script failed unexpectedly (a bug here; the ERR trap's line)
# Otherwise it ends in `exec`, so bootstrap replaces it: signals reach the supervisor directly
# and its exit status is the container's, with tini as PID 1 or without it (then the
# supervisor itself is PID 1 and reaps).
set -Eeuo pipefail

# The interpreter bootstrap runs on: the image's system Python. Overridable for tests and for
# base images that name it differently.
PYTHON="${BOOTSTRAP_PYTHON:-python3}"
MIN_MAJOR=3
MIN_MINOR=11

EXIT_PREFLIGHT=10
EXIT_INTERNAL=70

# The same identity bootstrap uses: RunPod's pod id, else the host name.
worker_id="${RUNPOD_POD_ID:-${HOSTNAME:-$(cat /proc/sys/kernel/hostname 2>/dev/null || echo unknown)}}"
run_id="$(tr -d '-' </proc/sys/kernel/random/uuid 2>/dev/null | cut -c1-12 || echo entrypoint)"

# A JSON string literal for $1: backslash, quote and control characters escaped.
json_str() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//$'\n'/\\n}"
    s="${s//$'\r'/\\r}"
    s="${s//$'\t'/\\t}"
    s="${s//[$'\001'-$'\037']/}"
    printf '"%s"' "$s"
}

# One summary event, in bootstrap's key order. Arguments: exit code, check id, msg, hint,
# cause, then extra "key" "json value" pairs.
fail_event() {
    local exit_code="$1" code="$2" msg="$3" hint="$4" cause="$5"
    shift 5
    local ts extra=""
    ts="$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ 2>/dev/null || echo unknown)"
    while (($# >= 2)); do
        extra+=",\"$1\":$2"
        shift 2
    done
    printf '{"ts":%s,"level":"error","event":"summary","run_id":%s,"worker_id":%s,' \
        "$(json_str "$ts")" "$(json_str "$run_id")" "$(json_str "$worker_id")"
    printf '"stage":"entrypoint","status":"fail","exit_code":%d,"code":%s,"msg":%s,' \
        "$exit_code" "$(json_str "$code")" "$(json_str "$msg")"
    printf '"hint":%s,"cause":%s,"process":"entrypoint"%s}\n' \
        "$(json_str "$hint")" "$(json_str "$cause")" "$extra"
}

on_error() {
    local status="$1" line="$2" command="$3"
    # Inside a command substitution the line would be captured, not printed: leave the
    # report to the outer shell, which sees this status and names the whole command.
    if ((BASH_SUBSHELL > 0)); then
        exit "$status"
    fi
    trap - ERR
    fail_event "$EXIT_INTERNAL" "entrypoint.E003" \
        "entrypoint.sh: a command failed unexpectedly (exit $status)" \
        "the command and line are in this event; rebuild the image or report a bug" \
        "exit $status" \
        line "$line" command "$(json_str "$command")" command_exit_code "$status"
    exit "$EXIT_INTERNAL"
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

python_path="$(command -v "$PYTHON" || true)"
if [[ -z "$python_path" ]]; then
    fail_event "$EXIT_PREFLIGHT" "entrypoint.E001" \
        "no Python interpreter: $PYTHON is not on PATH" \
        "use a base image with Python $MIN_MAJOR.$MIN_MINOR+, or set BOOTSTRAP_PYTHON" \
        "missing" python "$(json_str "$PYTHON")"
    exit "$EXIT_PREFLIGHT"
fi

# A Python that cannot even run this (wrong architecture, broken install) trips the ERR trap,
# which names the command and its exit status.
version="$("$python_path" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
IFS=. read -r major minor _ <<<"$version"
if ((major < MIN_MAJOR || (major == MIN_MAJOR && minor < MIN_MINOR))); then
    fail_event "$EXIT_PREFLIGHT" "entrypoint.E002" \
        "Python $version at $python_path is too old; bootstrap needs $MIN_MAJOR.$MIN_MINOR" \
        "use a base image with Python $MIN_MAJOR.$MIN_MINOR+, or set BOOTSTRAP_PYTHON" \
        "too old" python "$(json_str "$python_path")" version "$(json_str "$version")"
    exit "$EXIT_PREFLIGHT"
fi

if (($# == 0)); then
    set -- run
fi
# A program as the first argument runs as it is (a pod's start command `sleep infinity`, a
# debugging `bash`); anything else is bootstrap's command line (`run`, `check`, `--help`).
if [[ "$1" != -* ]] && command -v -- "$1" >/dev/null; then
    exec "$@"
fi
exec "$python_path" -m bootstrap "$@"
