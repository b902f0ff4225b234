#!/usr/bin/env bash
# Kafka's kafka-acls.sh command line, run by Silt (no JVM):
#   bin/kafka-acls.sh --bootstrap-server HOST:PORT[,...] <Kafka's arguments>
# becomes `silt kafka-acls <the same arguments>` (docs/tools.md lists the flags it takes).
# The silt binary: $SILT_BIN, else $REPO/.build/release/silt, else silt on PATH.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$script_dir")"

tool=kafka-acls.sh
# shellcheck source=bin/find-silt.sh
. "$script_dir/find-silt.sh"

exec "$silt" kafka-acls ${1+"$@"}
