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

tool=automq-kafka-admin.sh
# shellcheck source=bin/find-silt.sh
. "$script_dir/find-silt.sh"

if [ $# -eq 0 ]; then
    exec "$silt" admin --help
fi

exec "$silt" admin "$@"
