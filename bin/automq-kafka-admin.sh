#!/usr/bin/env bash
# AutoMQ's admin tool command line, run by Silt:
#   bin/automq-kafka-admin.sh generate-s3-url --s3-access-key=... --s3-secret-key=... \
#       --s3-region=... --s3-endpoint=... --s3-data-bucket=... [--s3-ops-bucket=...] [--s3-path-style=true]
#   bin/automq-kafka-admin.sh generate-start-command --s3-url="..." \
#       --controller-list="ip:port;..." --broker-list="ip:port;..." [--controller-only-mode=true]
# becomes `silt admin <same arguments>`.
# The silt binary: $REPO/.build/release/silt, else $SILT_BIN, else silt on PATH.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$script_dir")"

find_silt() {
    if [ -x "$repo/.build/release/silt" ]; then
        echo "$repo/.build/release/silt"
    elif [ -n "${SILT_BIN:-}" ] && [ -x "$SILT_BIN" ]; then
        echo "$SILT_BIN"
    elif command -v silt >/dev/null 2>&1; then
        command -v silt
    else
        echo "automq-kafka-admin.sh: cannot find the silt binary; run 'swift build -c release --product silt' in $repo, set SILT_BIN, or put silt on PATH" >&2
        return 1
    fi
}

silt="$(find_silt)"

if [ $# -eq 0 ]; then
    exec "$silt" admin --help
fi

exec "$silt" admin "$@"
