#!/usr/bin/env bash
# Kafka's kafka-metadata-quorum.sh command line, run by Silt (no JVM):
#   bin/kafka-metadata-quorum.sh (--bootstrap-server HOST:PORT[,...] | --bootstrap-controller HOST:PORT[,...]) \
#       [--command-config FILE] describe (--status | --replication [--human-readable])
# becomes `silt metadata-quorum <the same arguments>`. Output is Kafka 3.9's (docs/tools.md).
# add-controller and remove-controller are refused: Silt's voter set is fixed for now.
# The silt binary: $REPO/.build/release/silt, else $SILT_BIN, else silt on PATH.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$script_dir")"

tool=kafka-metadata-quorum.sh
# shellcheck source=bin/find-silt.sh
. "$script_dir/find-silt.sh"

exec "$silt" metadata-quorum ${1+"$@"}
