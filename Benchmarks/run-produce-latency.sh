#!/usr/bin/env bash
# On-demand produce latency benchmark for Silt (NOT run in CI). Run as root:
#
#   sudo Benchmarks/run-produce-latency.sh
#
# 1. makes a 4 GiB file under /var/tmp (not tmpfs) and attaches it as a loop device
#    (falls back to the plain file, and says so, if losetup is not possible);
# 2. runs fio on that device with the WAL's write pattern (io_uring, O_DIRECT, QD1,
#    sequential, write size = one WAL record of one produce batch) in two sync modes:
#    --fdatasync=1 (write + fdatasync) and --sync=dsync (O_DSYNC, what the WAL's RWF_DSYNC
#    writes do), at 4 KiB and at the WAL record size;
# 3. starts a release node with s3.wal.path=<device>, s3.wal.capacity=2 GiB;
# 4. runs silt-bench: the max rate (closed loop, acks=all, 1 KiB records), then a sweep of
#    fixed rates (open loop, % of the max);
# 5. prints the table, the side-by-side with fio and PASS/MISS against the targets;
# 6. stops the node (SIGTERM) and cleans up (trap).
#
# Everything listens on / connects to 127.0.0.1 only. Total runtime ~5 minutes.
#
# Knobs (environment): RECORD_BYTES=1024 RECORDS_PER_BATCH=15 PARTITIONS=6 CONNECTIONS=4
# PIPELINE=8 WARMUP_S=5 DURATION_S=20 MAX_DURATION_S=25 SWEEP="10 25 50 75 90"
# FIO_RUNTIME_S=10 SKIP_BUILD=0 KEEP=0 (keep the 4 GiB image) RESULTS=/var/tmp/silt-bench-results/<ts>
# LOG_DIR=<work dir> (parent of the node's log.dirs; a diagnostic run may point it at /dev/shm to
# take the segment files' periodic fdatasync off the disk the WAL uses)
# NODE_OVERRIDES="k=v k2=v2" (extra --override settings for the node, e.g. s3.wal.trim.interval.ms=5000)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORD_BYTES=${RECORD_BYTES:-1024}
RECORDS_PER_BATCH=${RECORDS_PER_BATCH:-15}
PARTITIONS=${PARTITIONS:-6}
CONNECTIONS=${CONNECTIONS:-4}
PIPELINE=${PIPELINE:-8}
WARMUP_S=${WARMUP_S:-5}
DURATION_S=${DURATION_S:-20}
MAX_DURATION_S=${MAX_DURATION_S:-25}
SWEEP=${SWEEP:-"10 25 50 75 90"}
FIO_RUNTIME_S=${FIO_RUNTIME_S:-10}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
TS=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-/var/tmp/silt-bench-results/$TS}
WORK=/var/tmp/silt-produce-latency.$$
IMG=$WORK/wal.img
SILT=$ROOT/.build/release/silt
BENCH=$ROOT/.build/release/silt-bench
TOPIC=bench-produce-latency
DATA_DIR=${LOG_DIR:-$WORK}/silt-data.$$
WAL_CAPACITY=$((2 << 30))

say() { printf '%s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (losetup, O_DIRECT on a block device)"
for t in fio jq awk; do command -v $t >/dev/null || die "$t not found"; done

DEV=""
LOOP=""
NODE_PID=""
cleanup() {
    local rc=$?
    set +e
    if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID"
        for _ in $(seq 1 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$NODE_PID" 2>/dev/null && { say "node did not stop on SIGTERM; SIGKILL"; kill -KILL "$NODE_PID"; }
        wait "$NODE_PID" 2>/dev/null
    fi
    [ -n "$LOOP" ] && losetup -d "$LOOP" && say "detached $LOOP"
    rm -rf "$DATA_DIR"
    if [ -d "$WORK" ]; then
        [ -f "$WORK/node.log" ] && cp "$WORK/node.log" "$RESULTS/" 2>/dev/null
        if [ "$KEEP" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    say "results: $RESULTS"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK" "$RESULTS"
FSTYPE=$(findmnt -no FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
[ "$FSTYPE" = tmpfs ] && die "$WORK is on tmpfs; the benchmark needs a real disk"

# ---------------------------------------------------------------- build
if [ "$SKIP_BUILD" != 1 ]; then
    say "== building (swift build -c release --product silt, then --product silt-bench)"
    # (one --product per invocation: SwiftPM keeps only the last one given)
    for product in silt silt-bench; do
        (cd "$ROOT" && swift build -c release --product "$product" 2>&1 | tail -1) \
            || die "swift build --product $product failed"
    done
fi
[ -x "$SILT" ] && [ -x "$BENCH" ] || die "missing $SILT or $BENCH (build first)"

# ---------------------------------------------------------------- sizes
# One produce batch = 61-byte batch header + per record (length varint, attributes,
# timestamp/offset deltas, null key, value length varint, value, header count).
varint_len() { local n=$(( ($1 << 1) ^ ($1 >> 63) )) l=1; while [ $n -ge 128 ]; do n=$((n >> 7)); l=$((l+1)); done; echo $l; }
REC_BODY=$(( 1 + 1 + $(varint_len $((RECORDS_PER_BATCH-1))) + 1 + $(varint_len $RECORD_BYTES) + RECORD_BYTES + 1 ))
BATCH_BYTES=$(( 61 + RECORDS_PER_BATCH * (REC_BODY + $(varint_len $REC_BODY)) ))
# WAL: log-ring frame (32-byte header, 8-byte aligned) inside a WAL record (64-byte header,
# padded to 4 KiB). With no other batch waiting, one batch = one WAL write of this size.
FRAME=$(( (32 + BATCH_BYTES + 7) / 8 * 8 ))
WAL_WRITE=$(( (64 + FRAME + 4095) / 4096 * 4096 ))
WAL_BS=$((WAL_WRITE / 1024))k

say "== silt produce latency benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "host: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), kernel $(uname -r), $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
say "background: loadavg $(cut -d' ' -f1-3 /proc/loadavg); busiest other processes: $(ps -eo pcpu=,comm= --sort=-pcpu | head -4 | awk '{printf "%s %s%%; ", $2, $1}')"
say "load: ${RECORDS_PER_BATCH} x ${RECORD_BYTES} B records per request (batch ${BATCH_BYTES} B -> WAL record ${WAL_WRITE} B alone), acks=all, ${PARTITIONS} partitions, ${CONNECTIONS} connections x ${PIPELINE} pipeline"

# ---------------------------------------------------------------- device
say "== device: 4 GiB image $IMG ($FSTYPE on $(df --output=source "$WORK" | tail -1))"
fallocate -l 4G "$IMG"
# Write it once so neither fio nor the WAL pays for unwritten-extent conversion on first touch.
dd if=/dev/zero of="$IMG" bs=4M count=1024 oflag=direct conv=fsync,notrunc status=none
if LOOP=$(losetup -f --show --direct-io=on "$IMG" 2>/dev/null); then
    DEV=$LOOP; DEVKIND="loop device $LOOP (direct-io=on) backed by $IMG"
elif LOOP=$(losetup -f --show "$IMG" 2>/dev/null); then
    DEV=$LOOP; DEVKIND="loop device $LOOP (buffered backing file) backed by $IMG"
else
    LOOP=""; DEV=$IMG
    DEVKIND="PLAIN FILE $IMG (losetup failed: no loop device; fio and the WAL use the file directly)"
    say "WARNING: losetup failed; falling back to a plain file. Figures are for O_DIRECT on $FSTYPE, not a block device."
fi
say "device: $DEVKIND"

# ---------------------------------------------------------------- fio
# fio_run NAME BS SYNCARGS...
fio_run() {
    local name=$1 bs=$2; shift 2
    fio --name="$name" --filename="$DEV" --ioengine=io_uring --direct=1 --rw=write --bs="$bs" \
        --iodepth=1 --size=1G --time_based --runtime="$FIO_RUNTIME_S" "$@" \
        --output-format=json >"$RESULTS/fio-$name.json" 2>"$RESULTS/fio-$name.err" \
        || { cat "$RESULTS/fio-$name.err" >&2; die "fio $name failed"; }
}
# fio_get NAME JQPATH -> number (ns values converted to ms by the caller)
fio_get() { jq -r ".jobs[0].$2 // 0" "$RESULTS/fio-$1.json"; }
ns2ms() { awk -v v="$1" 'BEGIN{printf "%.3f", v/1e6}'; }

FIO_SIZES="4k"
[ "$WAL_BS" != 4k ] && FIO_SIZES="4k $WAL_BS"
say "== fio (node not running; ${FIO_RUNTIME_S}s each; io_uring, O_DIRECT, sequential write, QD1)"
printf '%-16s %9s %9s | %-26s | %-26s\n' "job" "IOPS" "MB/s" "write clat p50/p99/p99.9 ms" "fdatasync p50/p99/p99.9 ms"
for bs in $FIO_SIZES; do
    for mode in fdatasync dsync; do
        name="$mode-$bs"
        if [ $mode = fdatasync ]; then fio_run "$name" "$bs" --fdatasync=1; else fio_run "$name" "$bs" --sync=dsync; fi
        iops=$(fio_get "$name" write.iops); bw=$(fio_get "$name" write.bw_bytes)
        c50=$(ns2ms "$(fio_get "$name" 'write.clat_ns.percentile["50.000000"]')")
        c99=$(ns2ms "$(fio_get "$name" 'write.clat_ns.percentile["99.000000"]')")
        c999=$(ns2ms "$(fio_get "$name" 'write.clat_ns.percentile["99.900000"]')")
        s50=$(ns2ms "$(fio_get "$name" 'sync.lat_ns.percentile["50.000000"]')")
        s99=$(ns2ms "$(fio_get "$name" 'sync.lat_ns.percentile["99.000000"]')")
        s999=$(ns2ms "$(fio_get "$name" 'sync.lat_ns.percentile["99.900000"]')")
        mbs=$(awk -v b="$bw" 'BEGIN{printf "%.2f", b/1e6}')
        printf -v "FIO_${mode}_${bs}_IOPS" '%s' "$iops"
        printf -v "FIO_${mode}_${bs}_MBS" '%s' "$mbs"
        printf -v "FIO_${mode}_${bs}_C50" '%s' "$c50"
        printf -v "FIO_${mode}_${bs}_C99" '%s' "$c99"
        printf -v "FIO_${mode}_${bs}_C999" '%s' "$c999"
        printf -v "FIO_${mode}_${bs}_S99" '%s' "$s99"
        if [ $mode = fdatasync ]; then sync="$s50 / $s99 / $s999"; else sync="(in clat: O_DSYNC)"; fi
        printf '%-16s %9.0f %9s | %-26s | %-26s\n' "$name" "$iops" "$mbs" "$c50 / $c99 / $c999" "$sync"
    done
done
vget() { local n="FIO_$1_$2_$3"; echo "${!n}"; }
FIO_DSYNC_P99=$(vget dsync "$WAL_BS" C99)
FIO_DSYNC_P999=$(vget dsync "$WAL_BS" C999)
FIO_FDS_P99_SUM=$(awk -v a="$(vget fdatasync "$WAL_BS" C99)" -v b="$(vget fdatasync "$WAL_BS" S99)" 'BEGIN{printf "%.3f", a+b}')
FIO_FDS_MBS=$(vget fdatasync "$WAL_BS" MBS)
FIO_DSYNC_MBS=$(vget dsync "$WAL_BS" MBS)

# The WAL formats only a blank device (both 4 KiB header slots zero); fio left data there.
dd if=/dev/zero of="$DEV" bs=1M count=1 oflag=direct conv=notrunc status=none

# ---------------------------------------------------------------- node
free_port() {
    local p
    for p in $(seq "$1" $(($1 + 200))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    die "no free port near $1"
}
PORT=$(free_port 29092)
CPORT=$(free_port $((PORT + 1)))
NODE_CMD=("$SILT" server
    --override node.id=0
    --override "log.dirs=$DATA_DIR"
    --override "listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT"
    --override "advertised.listeners=PLAINTEXT://127.0.0.1:$PORT"
    --override "s3.wal.path=$DEV"
    --override "s3.wal.capacity=$WAL_CAPACITY"
    --override "num.partitions=$PARTITIONS")
for kv in ${NODE_OVERRIDES:-}; do NODE_CMD+=(--override "$kv"); done
say "== node: ${NODE_CMD[*]}"
"${NODE_CMD[@]}" >"$WORK/node.log" 2>&1 </dev/null &
NODE_PID=$!
for i in $(seq 1 150); do
    kill -0 "$NODE_PID" 2>/dev/null || { tail -40 "$WORK/node.log" >&2; die "node exited during startup"; }
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    [ "$i" = 150 ] && { tail -40 "$WORK/node.log" >&2; die "node did not listen on $PORT within 30s"; }
    sleep 0.2
done
say "node pid $NODE_PID listening on 127.0.0.1:$PORT"

# ---------------------------------------------------------------- silt-bench
BENCH_ARGS=(produce --bootstrap "127.0.0.1:$PORT" --topic "$TOPIC" --partitions "$PARTITIONS"
    --connections "$CONNECTIONS" --pipeline "$PIPELINE" --record-bytes "$RECORD_BYTES"
    --records-per-batch "$RECORDS_PER_BATCH" --acks -1 --warmup-s "$WARMUP_S" --progress-interval-s 1 --json)
# bench NAME RATE DURATION -> writes $RESULTS/bench-NAME.json; returns silt-bench's status
bench() {
    local rc=0
    say "-- silt-bench ${BENCH_ARGS[*]} --rate $2 --duration-s $3"
    timeout $(( $3 + WARMUP_S + 120 )) "$BENCH" "${BENCH_ARGS[@]}" --rate "$2" --duration-s "$3" \
        >"$RESULTS/bench-$1.json" 2>"$RESULTS/bench-$1.err" || rc=$?
    # stderr holds one progress line per second (kept in the file) and any errors
    grep -v '^progress ' "$RESULTS/bench-$1.err" | sed 's/^/   /' >&2 || true
    worst=$(awk '/^progress /{for(i=1;i<=NF;i++) if($i ~ /^max=/){split($i,a,"="); if(a[2]+0>m){m=a[2]+0; t=$2}}} END{if(m) printf "%s %.1f ms", t, m}' "$RESULTS/bench-$1.err")
    [ -n "$worst" ] && say "   worst 1-second interval: $worst (per-second lines in $RESULTS/bench-$1.err)"
    if ! kill -0 "$NODE_PID" 2>/dev/null; then tail -60 "$WORK/node.log" >&2; die "the node died during run $1"; fi
    return $rc
}
jget() { jq -r ".$2" "$RESULTS/bench-$1.json" 2>/dev/null || echo "nan"; }

say "== max rate (closed loop), ${MAX_DURATION_S}s after ${WARMUP_S}s warmup"
bench max 0 "$MAX_DURATION_S" || die "max-rate run failed (see above)"
MAX_MSGS=$(jget max achievedMsgsPerS)
MAX_MBS=$(printf '%.2f' "$(jget max mbPerS)")
awk -v m="$MAX_MSGS" 'BEGIN{exit !(m > 0)}' || die "max-rate run achieved 0 msgs/s"

RUNS="max"
for pct in $SWEEP; do
    rate=$(awk -v m="$MAX_MSGS" -v p="$pct" 'BEGIN{printf "%d", m*p/100}')
    say "== fixed rate ${pct}% of max = $rate msgs/s (open loop), ${DURATION_S}s after ${WARMUP_S}s warmup"
    if bench "r$pct" "$rate" "$DURATION_S"; then RUNS="$RUNS r$pct"; else RUNS="$RUNS r$pct"; say "   (run r$pct reported errors)"; fi
done

# ---------------------------------------------------------------- stop node
say "== stopping node (SIGTERM)"
kill -TERM "$NODE_PID"
NODE_RC=0
for _ in $(seq 1 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$NODE_PID" 2>/dev/null; then say "node did not exit within 20s of SIGTERM; SIGKILL"; kill -KILL "$NODE_PID"; fi
wait "$NODE_PID" || NODE_RC=$?
NODE_PID=""
say "node exit status $NODE_RC; loadavg now $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report
say ""
say "== results ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, kernel $(uname -r), $DEVKIND)"
printf '%-6s %12s %12s %9s %9s %9s %9s %9s %7s %s\n' run "target/s" "achieved/s" "MB/s" "p50 ms" "p99 ms" "p99.9 ms" "max ms" errors notes
for r in $RUNS; do
    f="$RESULTS/bench-$r.json"
    if [ ! -s "$f" ]; then printf '%-6s %s\n' "$r" "FAILED (no result; see $RESULTS/bench-$r.err)"; continue; fi
    tgt=$(jget "$r" targetMsgsPerS); [ "$r" = max ] && tgt=max
    errs=$(jq -r '[.errors[]] | add // 0' "$f")
    notes=""; [ "$(jget "$r" saturated)" = true ] && notes="SATURATED"
    printf '%-6s %12s %12.0f %9.2f %9.3f %9.3f %9.3f %9.3f %7s %s\n' "$r" "${tgt%.*}" \
        "$(jget "$r" achievedMsgsPerS)" "$(jget "$r" mbPerS)" "$(jget "$r" p50Ms)" "$(jget "$r" p99Ms)" \
        "$(jget "$r" p999Ms)" "$(jget "$r" maxMs)" "$errs" "$notes"
done

HALF=r50
say ""
say "== side by side (produce at 50% of max vs fio at the WAL write size $WAL_BS)"
if [ -s "$RESULTS/bench-$HALF.json" ]; then
    P99=$(jget $HALF p99Ms); P999=$(jget $HALF p999Ms)
    verdict() { if awk "BEGIN{exit !($1)}"; then echo PASS; else echo MISS; fi; }
    say "produce p99 @50%: $P99 ms   p99.9: $P999 ms   (max rate $(printf '%.0f' "$MAX_MSGS") msgs/s = $MAX_MBS MB/s)"
    say "fio $WAL_BS O_DSYNC (= one RWF_DSYNC WAL write) p99: $FIO_DSYNC_P99 ms, p99.9: $FIO_DSYNC_P999 ms"
    say "fio $WAL_BS write+fdatasync p99 (write p99 + fdatasync p99, an upper bound): $FIO_FDS_P99_SUM ms"
    R1=$(awk -v a="$P99" -v b="$FIO_DSYNC_P99" 'BEGIN{printf "ratio %.2fx, difference %+.3f ms", a/b, a-b}')
    R1b=$(awk -v a="$P99" -v b="$FIO_FDS_P99_SUM" 'BEGIN{printf "ratio %.2fx, difference %+.3f ms", a/b, a-b}')
    R2=$(awk -v a="$P999" -v b="$P99" 'BEGIN{printf "%.2f", a/b}')
    T1=$(awk -v a="$MAX_MBS" -v b="$FIO_FDS_MBS" 'BEGIN{printf "%.2f", a/b}')
    T1b=$(awk -v a="$MAX_MBS" -v b="$FIO_DSYNC_MBS" 'BEGIN{printf "%.2f", a/b}')
    say ""
    say "target                                         measured                                   verdict"
    printf '%-46s %-42s %s\n' "p99 <= fio p99 + 1 ms (vs O_DSYNC)" "$P99 vs $FIO_DSYNC_P99 + 1 ($R1)" "$(verdict "$P99 <= $FIO_DSYNC_P99 + 1")"
    printf '%-46s %-42s %s\n' "p99 <= fio p99 + 1 ms (vs write+fdatasync)" "$P99 vs $FIO_FDS_P99_SUM + 1 ($R1b)" "$(verdict "$P99 <= $FIO_FDS_P99_SUM + 1")"
    printf '%-46s %-42s %s\n' "p99.9 <= 2 x p99" "$P999 / $P99 = ${R2}x" "$(verdict "$R2 <= 2")"
    printf '%-46s %-42s %s\n' "max MB/s >= 0.8 x fio write+fdatasync MB/s" "$MAX_MBS / $FIO_FDS_MBS = ${T1}x" "$(verdict "$T1 >= 0.8")"
    printf '%-46s %-42s %s\n' "(info) max MB/s vs fio O_DSYNC MB/s" "$MAX_MBS / $FIO_DSYNC_MBS = ${T1b}x" "$(verdict "$T1b >= 0.8")"
else
    say "no 50% run (SWEEP=\"$SWEEP\"); side-by-side skipped"
fi
say ""
say "MB/s = 10^6 bytes of record values per second (produce) or written bytes per second (fio)."
say "fio sync modes: --fdatasync=1 is the issue's reference (write, then fdatasync, QD1); --sync=dsync"
say "opens the device O_DSYNC, the same durability per write as the WAL's RWF_DSYNC."
