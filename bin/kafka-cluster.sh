#!/usr/bin/env bash
# Kafka's kafka-cluster.sh command line, run by Silt (no JVM):
#   bin/kafka-cluster.sh cluster-id --bootstrap-server HOST:PORT[,...]
#   bin/kafka-cluster.sh unregister --bootstrap-server HOST:PORT[,...] --id BROKER_ID
# becomes `silt kafka-cluster <the same arguments>`. Scale in: stop the node with SIGTERM
# (controlled shutdown moves its partitions to the other brokers), then unregister it.
# The silt binary: $REPO/.build/release/silt, else $SILT_BIN, else silt on PATH.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$script_dir")"

tool=kafka-cluster.sh
# shellcheck source=bin/find-silt.sh
. "$script_dir/find-silt.sh"

exec "$silt" kafka-cluster ${1+"$@"}
