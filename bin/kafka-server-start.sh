#!/usr/bin/env bash
# Kafka's / AutoMQ's start script command line, run by Silt:
#   bin/kafka-server-start.sh [-daemon] [server.properties | --config server.properties] \
#       [--s3-url="s3://..."] [--override key=value]...
# becomes `silt server [server.properties] [--s3-url=...] [--override key=value]...`.
# -daemon runs the node in the background (nohup), output to $LOG_DIR/kafkaServer.out
# (LOG_DIR defaults to $REPO/logs), as Kafka's script does. -name NAME and -loggc are
# accepted and ignored. Foreground runs exec silt, so `... > /dev/null 2>&1 &` works.
# The silt binary: $REPO/.build/release/silt, else $SILT_BIN, else silt on PATH.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$script_dir")"

tool=kafka-server-start.sh
# shellcheck source=bin/find-silt.sh
. "$script_dir/find-silt.sh"

daemon=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -daemon) daemon=1 ;;
        -loggc) ;;
        -name)
            shift
            [ $# -gt 0 ] || { echo "kafka-server-start.sh: -name needs a value" >&2; exit 1; }
            ;;
        --config)
            shift
            [ $# -gt 0 ] || { echo "kafka-server-start.sh: --config needs a file" >&2; exit 1; }
            args+=("$1")
            ;;
        --config=*) args+=("${1#--config=}") ;;
        *) args+=("$1") ;;
    esac
    shift
done

if [ "$daemon" -eq 1 ]; then
    log_dir="${LOG_DIR:-$repo/logs}"
    mkdir -p "$log_dir"
    nohup "$silt" server ${args[@]+"${args[@]}"} > "$log_dir/kafkaServer.out" 2>&1 < /dev/null &
    exit 0
fi

exec "$silt" server ${args[@]+"${args[@]}"}
