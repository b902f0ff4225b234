#!/usr/bin/env bash
# Issue 15's whole comparison, in one run on one device (NOT run in CI). Run as root:
#
#   sudo Benchmarks/compare.sh [DEVICE_OR_FILE]
#
# DEVICE_OR_FILE: a block device (used as is: fio and the WAL OVERWRITE it), or an image file
# (created at 4 GiB and written once when missing, then attached as a loop device). Without it,
# a 4 GiB image under /var/tmp is made, attached and deleted afterwards.
#
# 1. fio on the device, node stopped: io_uring, O_DIRECT, sequential writes, QD1, at 4 KiB (one
#    lone message's WAL write) and at the WAL record size of one silt-bench batch, each with
#    --fdatasync=1 (write + fdatasync) and --sync=dsync (what the WAL's RWF_DSYNC writes do):
#    latency p50/p99/p99.9 and MB/s (the throughput figure);
# 2. a release node with s3.wal.path=<device> (log.dirs on the same disk, as a user would have it);
# 3. silt-bench: the maximum (closed loop, acks=all), then 10/25/50/75/90 % of it (open loop,
#    coordinated omission counted), each with CPU seconds per GB produced;
# 4. tail fetch: the 50 % rate again with a consumer reading at the end of the topic
#    (Benchmarks/tail-fetch.py): fetch MB/s, record age at the consumer, produce p99 with vs
#    without it, CPU seconds per GB fetched;
# 5. confluent-kafka at 2000 msgs/s, 1 KiB, acks=all, linger.ms=0 (Benchmarks/produce-throughput.py)
#    with the node's per-stage breakdown (Benchmarks/latency-breakdown.py);
# 6. silt-bench wal, node stopped: the same batches at each run's rate through Silt's WAL code
#    alone, open loop (the device's floor, queueing behind a slow write counted, which fio's
#    closed-loop QD1 figures leave out);
#    Then, at the r50 rate, the same floor and fio once more with the node's r50 CPU use burned
#    beside them at SCHED_IDLE (on a VM the disk can slow down when the guest's CPUs are busy);
# 7. one table with fio beside Silt and PASS/MISS against the targets; the node is stopped and
#    everything it made is removed (trap).
#
# CPU: utime + stime from /proc/<pid>/stat of the supervisor and every role process (broker,
# wal, uploader, controller), read before and after each run; per GB = those seconds divided by
# the 10^9 bytes of record values produced (warmup included, as the CPU is) or fetched.
#
# Knobs (environment): HOST=127.0.0.1 (a loopback address to listen on) RECORD_BYTES=1024
# RECORDS_PER_BATCH=15 PARTITIONS=6 CONNECTIONS=4 PIPELINE=8 WARMUP_S=5 DURATION_S=20
# MAX_DURATION_S=25 SWEEP="10 25 50 75 90" FIO_RUNTIME_S=10 RATE_2000=2000 COUNT_2000=30000
# SKIP_BUILD=0 KEEP=0 (keep the image) RESULTS=/var/tmp/silt-bench-results/<ts>
# PYTHON=<repo>/.venv/bin/python (with confluent-kafka: tools/setup makes it)
# OBJECTS=shm|disk (the node's object store: in /dev/shm, standing in for S3, or the embedded
# file:// store under log.dirs on the image's disk; see below)
# LOG_DIR=<work dir> (parent of the node's log.dirs; /dev/shm is a diagnostic that takes the
# node's other files off the disk) NODE_OVERRIDES="k=v k2=v2" (extra --override settings)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${1:-}
HOST=${HOST:-127.0.0.1}
RATE_2000=${RATE_2000:-2000}
COUNT_2000=${COUNT_2000:-30000}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
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
# Where the node's objects go. A node with a raw-device WAL keeps its objects in S3, off the
# machine; the embedded file:// store under log.dirs would put every byte a second time on the
# disk the loop device's image lives on (and its fsyncs in the same ext4 journal), which no
# production node pays. shm: a file:// store in /dev/shm stands in for S3 (the default);
# disk: the embedded default under log.dirs, on the same disk.
OBJECTS=${OBJECTS:-shm}
case "$OBJECTS" in
    shm) OBJ_DIR=/dev/shm/silt-objects.$$ ;;
    disk) OBJ_DIR="" ;;
    *) echo "OBJECTS must be shm or disk" >&2; exit 2 ;;
esac
CLK_TCK=$(getconf CLK_TCK)

say() { printf '%s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (losetup, O_DIRECT on a block device)"
for t in fio jq awk; do command -v $t >/dev/null || die "$t not found"; done
case "$HOST" in 127.*) ;; *) die "HOST must be a loopback address (127.x.y.z)";; esac
"$PYTHON" -c 'import confluent_kafka' 2>/dev/null \
    || die "$PYTHON cannot import confluent_kafka (run tools/setup, or set PYTHON=)"

DEV=""
LOOP=""
NODE_PID=""
MADE_IMG=""
cleanup() {
    local rc=$?
    set +e
    [ -n "${BURNERS:-}" ] && kill $BURNERS 2>/dev/null
    if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID"
        for _ in $(seq 1 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$NODE_PID" 2>/dev/null && { say "node did not stop on SIGTERM; SIGKILL"; kill -KILL "$NODE_PID"; }
        wait "$NODE_PID" 2>/dev/null
    fi
    [ -n "$LOOP" ] && losetup -d "$LOOP" && say "detached $LOOP"
    [ -n "$MADE_IMG" ] && [ "$KEEP" != 1 ] && rm -f "$MADE_IMG"
    rm -rf "$DATA_DIR"
    [ -n "$OBJ_DIR" ] && rm -rf "$OBJ_DIR"
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
if [ -n "$TARGET" ] && [ -b "$TARGET" ]; then
    IMG=""
elif [ -n "$TARGET" ]; then
    IMG=$TARGET
    mkdir -p "$(dirname "$IMG")"
fi
IMGDIR=$(dirname "${IMG:-$WORK/x}")
FSTYPE=$(findmnt -no FSTYPE -T "$IMGDIR" 2>/dev/null || stat -f -c %T "$IMGDIR")
[ -n "$IMG" ] && [ "$FSTYPE" = tmpfs ] && die "$IMGDIR is on tmpfs; the benchmark needs a real disk"

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

say "== silt vs fio on one device (Benchmarks/compare.sh)  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "host: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), kernel $(uname -r), $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "background: loadavg $LOAD_START; busiest other processes: $(ps -eo pcpu=,comm= --sort=-pcpu | head -4 | awk '{printf "%s %s%%; ", $2, $1}')"
say "load: ${RECORDS_PER_BATCH} x ${RECORD_BYTES} B records per request (batch ${BATCH_BYTES} B -> WAL record ${WAL_WRITE} B alone), acks=all, ${PARTITIONS} partitions, ${CONNECTIONS} connections x ${PIPELINE} pipeline"

# ---------------------------------------------------------------- device
if [ -z "$IMG" ]; then
    findmnt -rno TARGET -S "$TARGET" >/dev/null 2>&1 && die "$TARGET is mounted; give an unused device"
    DEV=$TARGET; DEVKIND="block device $TARGET ($(blockdev --getsize64 "$TARGET") bytes, given)"
    say "== device: $DEVKIND; fio and the WAL overwrite it"
else
    if [ ! -e "$IMG" ]; then
        say "== device: 4 GiB image $IMG ($FSTYPE on $(df --output=source "$IMGDIR" | tail -1)), made for this run"
        fallocate -l 4G "$IMG"
        [ "$IMG" = "$WORK/wal.img" ] || MADE_IMG=$IMG
        # Written once so neither fio nor the WAL pays for unwritten-extent conversion on first touch.
        dd if=/dev/zero of="$IMG" bs=4M count=1024 oflag=direct conv=fsync,notrunc status=none
    else
        say "== device: image $IMG ($(stat -c %s "$IMG") bytes, given; $FSTYPE on $(df --output=source "$IMGDIR" | tail -1))"
    fi
    if LOOP=$(losetup -f --show --direct-io=on "$IMG" 2>/dev/null); then
        DEV=$LOOP; DEVKIND="loop device $LOOP (direct-io=on) backed by $IMG"
    elif LOOP=$(losetup -f --show "$IMG" 2>/dev/null); then
        DEV=$LOOP; DEVKIND="loop device $LOOP (buffered backing file) backed by $IMG"
    else
        LOOP=""; DEV=$IMG
        DEVKIND="PLAIN FILE $IMG (losetup failed: no loop device; fio and the WAL use the file directly)"
        say "WARNING: losetup failed; falling back to a plain file. Figures are for O_DIRECT on $FSTYPE, not a block device."
    fi
fi
say "device: $DEVKIND"
if [ -n "$OBJ_DIR" ]; then say "objects: file://$OBJ_DIR (in memory, standing in for S3; OBJECTS=disk puts them under log.dirs)"
else say "objects: the embedded file:// store under log.dirs, on the same disk as the device (OBJECTS=disk)"; fi

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
        printf -v "FIO_${mode}_${bs}_S50" '%s' "$s50"
        printf -v "FIO_${mode}_${bs}_S99" '%s' "$s99"
        printf -v "FIO_${mode}_${bs}_S999" '%s' "$s999"
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
        if ! (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    die "no free port near $1"
}
PORT=$(free_port 29092)
CPORT=$(free_port $((PORT + 1)))
MPORT=$(free_port $((CPORT + 1)))
METRICS=http://$HOST:$MPORT/metrics
NODE_CMD=("$SILT" server
    --override node.id=0
    --override "log.dirs=$DATA_DIR"
    --override "listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT"
    --override "advertised.listeners=PLAINTEXT://$HOST:$PORT"
    --override "s3.telemetry.metrics.exporter.uri=prometheus://?host=$HOST&port=$MPORT"
    --override "s3.wal.path=$DEV"
    --override "num.partitions=$PARTITIONS")
[ -n "$OBJ_DIR" ] && NODE_CMD+=(--override "s3.data.buckets=0@file://$OBJ_DIR")
for kv in ${NODE_OVERRIDES:-}; do NODE_CMD+=(--override "$kv"); done
say "== node: ${NODE_CMD[*]}"
"${NODE_CMD[@]}" >"$WORK/node.log" 2>&1 </dev/null &
NODE_PID=$!
for i in $(seq 1 150); do
    kill -0 "$NODE_PID" 2>/dev/null || { tail -40 "$WORK/node.log" >&2; die "node exited during startup"; }
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null && break
    [ "$i" = 150 ] && { tail -40 "$WORK/node.log" >&2; die "node did not listen on $PORT within 30s"; }
    sleep 0.2
done
say "node pid $NODE_PID listening on $HOST:$PORT"

# CPU of the node: utime + stime (clock ticks) of the supervisor and its role processes.
# cpu_ticks -> "TICKS PIDS" (the pid list shows whether a role restarted between two samples)
cpu_ticks() {
    local t=0 pids p f
    pids="$NODE_PID $(pgrep -P "$NODE_PID" | tr '\n' ' ')"
    for p in $pids; do
        # fields after "(comm) ": state=1 ... utime=12 stime=13
        f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + $(echo "$f" | awk '{print $12 + $13}')))
    done
    echo "$t ${pids// /,}"
}
# cpu_mark NAME: before a run; cpu_done NAME: after it -> CPU_<NAME> (seconds), CPUWALL_<NAME>
cpu_mark() { read -r t p < <(cpu_ticks); printf -v "CPU0_$1" '%s' "$t"; printf -v "CPUP_$1" '%s' "$p"; printf -v "CPUT_$1" '%s' "$(date +%s.%N)"; }
cpu_done() {
    local t p n0="CPU0_$1" np="CPUP_$1" nt="CPUT_$1"
    read -r t p < <(cpu_ticks)
    [ "$p" = "${!np}" ] || say "   WARNING: the node's processes changed during $1 (${!np} -> $p): its CPU figure is low"
    printf -v "CPU_$1" '%s' "$(awk -v a="${!n0}" -v b="$t" -v h="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/h}')"
    printf -v "CPUWALL_$1" '%s' "$(awk -v a="${!nt}" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
}
getv() { local n="$1"; echo "${!n:-nan}"; }

# ---------------------------------------------------------------- silt-bench
BENCH_ARGS=(produce --bootstrap "$HOST:$PORT" --topic "$TOPIC" --partitions "$PARTITIONS"
    --connections "$CONNECTIONS" --pipeline "$PIPELINE" --record-bytes "$RECORD_BYTES"
    --records-per-batch "$RECORDS_PER_BATCH" --acks -1 --warmup-s "$WARMUP_S" --progress-interval-s 1 --json)
# bench NAME RATE DURATION -> writes $RESULTS/bench-NAME.json; returns silt-bench's status
bench() {
    local rc=0
    say "-- silt-bench ${BENCH_ARGS[*]} --rate $2 --duration-s $3"
    "$PYTHON" "$ROOT/Benchmarks/latency-breakdown.py" --metrics "$METRICS" --save "$RESULTS/stages-before-$1.json" \
        || say "   (no stage histograms: $METRICS did not answer)"
    cpu_mark "$1"
    timeout $(( $3 + WARMUP_S + 120 )) "$BENCH" "${BENCH_ARGS[@]}" --rate "$2" --duration-s "$3" \
        >"$RESULTS/bench-$1.json" 2>"$RESULTS/bench-$1.err" || rc=$?
    cpu_done "$1"
    "$PYTHON" "$ROOT/Benchmarks/latency-breakdown.py" --metrics "$METRICS" --since "$RESULTS/stages-before-$1.json" \
        --json "$RESULTS/stages-$1.json" >"$RESULTS/stages-$1.txt" 2>&1 || true
    grep '^p99 held by' "$RESULTS/stages-$1.txt" | sed 's/^/   /' || true
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

# ---------------------------------------------------------------- tail fetch
HALF_RATE=$(awk -v m="$MAX_MSGS" 'BEGIN{printf "%d", m*50/100}')
say "== tail fetch: 50% of max = $HALF_RATE msgs/s (open loop) with a consumer at the end of the topic"
"$PYTHON" "$ROOT/Benchmarks/tail-fetch.py" --bootstrap "$HOST:$PORT" --topic "$TOPIC" \
    --warmup-s "$((WARMUP_S + 1))" --duration-s "$((DURATION_S - 2))" \
    >"$RESULTS/tail-fetch.json" 2>"$RESULTS/tail-fetch.err" &
FETCH_PID=$!
sleep 1   # the consumer has its partitions assigned at their ends before the producer starts
bench t50 "$HALF_RATE" "$DURATION_S" || say "   (run t50 reported errors)"
wait "$FETCH_PID" || { sed 's/^/   /' "$RESULTS/tail-fetch.err" >&2; say "   tail fetch failed"; }
tget() { jq -r ".$1" "$RESULTS/tail-fetch.json" 2>/dev/null || echo nan; }

# ---------------------------------------------------------------- confluent-kafka 2000 msgs/s
say "== confluent-kafka: $RATE_2000 msgs/s of $RECORD_BYTES B, acks=all, linger.ms=0, $PARTITIONS partitions, $COUNT_2000 messages"
cpu_mark ck
"$PYTHON" "$ROOT/Benchmarks/latency-breakdown.py" --metrics "$METRICS" --json "$RESULTS/stages-ck.json" -- \
    "$PYTHON" "$ROOT/Benchmarks/produce-throughput.py" --bootstrap "$HOST:$PORT" --rate "$RATE_2000" \
    --count "$COUNT_2000" --linger-ms 0 --partitions "$PARTITIONS" --size "$RECORD_BYTES" \
    >"$RESULTS/ck.txt" 2>&1 || say "   (the confluent-kafka run reported errors: $RESULTS/ck.txt)"
cpu_done ck
grep -E '^(throughput|latency|p99 held by)' "$RESULTS/ck.txt" | head -3 | sed 's/^/   /'
# ckget p50|p99|p99.9|max -> ms from the "latency" line
ckget() { awk -v k="$1" '/^latency/{for(i=2;i<NF;i++) if($i==k){print $(i+1); exit}}' "$RESULTS/ck.txt"; }
CK_MSGS=$(awk '/^throughput/{gsub(",","",$2); print $2; exit}' "$RESULTS/ck.txt")
CK_DELIVERED=$(awk '/^delivered/{print $2; exit}' "$RESULTS/ck.txt")

# ---------------------------------------------------------------- stop node
say "== stopping node (SIGTERM)"
kill -TERM "$NODE_PID"
NODE_RC=0
for _ in $(seq 1 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$NODE_PID" 2>/dev/null; then say "node did not exit within 20s of SIGTERM; SIGKILL"; kill -KILL "$NODE_PID"; fi
wait "$NODE_PID" || NODE_RC=$?
NODE_PID=""
say "node exit status $NODE_RC; loadavg now $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- the device alone, open loop
# silt-bench wal: the same batches at the same rates through Silt's WAL code alone (no node):
# group commit into RWF_DSYNC io_uring writes, up to 8 in flight, latency from each batch's due
# time to durable. fio's QD1 figures above are closed loop: a write issued late after a stall
# is measured from its late issue. This is the floor the node's latency stands on.
CK_BATCH_BYTES=$(( 61 + REC_BODY + $(varint_len $REC_BODY) ))
# floor NAME BATCHES_PER_S BATCH_BYTES -> $RESULTS/wal-NAME.json
floor() {
    say "-- silt-bench wal --rate $2 --batch-bytes $3 (${DURATION_S}s after ${WARMUP_S}s warmup)"
    "$BENCH" wal --path "$DEV" --format --rate "$2" --batch-bytes "$3" --duration-s "$DURATION_S" \
        --warmup-s "$WARMUP_S" --json >"$RESULTS/wal-$1.json" 2>"$RESULTS/wal-$1.err" \
        || { tail -5 "$RESULTS/wal-$1.err" >&2; say "   (silt-bench wal $1 failed)"; }
}
FLOORS=""
say "== the device alone: silt-bench wal (Silt's WAL code, no node), open loop at the runs' batch rates"
for r in $RUNS; do
    [ "$r" = max ] && continue
    floor "$r" "$(awk -v m="$(jget "$r" targetMsgsPerS)" -v b="$RECORDS_PER_BATCH" 'BEGIN{printf "%.1f", m/b}')" "$BATCH_BYTES"
    FLOORS="$FLOORS $r"
done
floor ck "$RATE_2000" "$CK_BATCH_BYTES"
walget() { jq -r ".$2" "$RESULTS/wal-$1.json" 2>/dev/null || echo nan; }

# ---------------------------------------------------------------- the device beside busy CPUs
# On a VM the device can depend on the guest's CPU use: the host emulates the disk with threads
# that may share the VM's CPU allowance. Burn, beside fio and the WAL alone, as much CPU as the
# node used during r50 (split over two burners), at SCHED_IDLE: inside the guest a SCHED_IDLE
# task gives way to any other task at once, so whatever the device loses here it loses outside
# the guest, not to Silt's scheduling.
BURN_FRACTION=$(awk -v c="$(getv CPU_r50)" -v w="$(getv CPUWALL_r50)" 'BEGIN{ if (c=="nan" || w+0<=0) print 0; else { f=c/w/2; if (f>1) f=1; printf "%.2f", f } }')
BURNERS=""
burn_start() {
    local i
    for i in 1 2; do
        chrt -i 0 "$PYTHON" -c '
import sys, time
f = float(sys.argv[1]); period = 0.004
while True:
    t = time.perf_counter() + f * period
    while time.perf_counter() < t: pass
    if f < 1: time.sleep((1 - f) * period)' "$BURN_FRACTION" &
        BURNERS="$BURNERS $!"
    done
}
burn_stop() { [ -n "$BURNERS" ] && kill $BURNERS 2>/dev/null; wait $BURNERS 2>/dev/null || true; BURNERS=""; }
if awk -v f="$BURN_FRACTION" 'BEGIN{exit !(f > 0)}' && [ -s "$RESULTS/wal-r50.json" ]; then
    say "== the device beside the node's CPU use: 2 x $BURN_FRACTION CPU burned at SCHED_IDLE (what the node used during r50)"
    burn_start
    fio_run dsync-busy "$WAL_BS" --sync=dsync
    floor r50busy "$(walget r50 targetBatchesPerS)" "$BATCH_BYTES"
    burn_stop
    BUSY_FIO_P99=$(ns2ms "$(fio_get dsync-busy 'write.clat_ns.percentile["99.000000"]')")
    BUSY_FIO_P999=$(ns2ms "$(fio_get dsync-busy 'write.clat_ns.percentile["99.900000"]')")
else
    say "== (no r50 CPU figure or floor: the busy-CPU device run is skipped)"
    BUSY_FIO_P99=nan; BUSY_FIO_P999=nan
fi
# The WAL formats only a blank device; leave it as fio found it for a rerun.
dd if=/dev/zero of="$DEV" bs=1M count=1 oflag=direct conv=notrunc status=none

# ---------------------------------------------------------------- report
# cpu_per_gb SECONDS MSGS_PER_S WALL_S -> CPU seconds per 10^9 value bytes (n/a when nothing moved)
cpu_per_gb() { awk -v c="$1" -v m="$2" -v w="$3" -v b="$RECORD_BYTES" 'BEGIN{g=m*w*b/1e9; if (g>0) printf "%.1f", c/g; else printf "n/a"}'; }
# the stage holding the most of a run's p99 (from latency-breakdown's JSON): "stage p99ms"
top_stage() {
    jq -r '.produce | to_entries | map(select(.key != "total" and .value.p99 != null)) | max_by(.value.p99)
           | "\(.key) \(.value.p99 * 1000 * 1000 | round / 1000)"' "$RESULTS/stages-$1.json" 2>/dev/null || echo "-"
}
say ""
say "== results ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, kernel $(uname -r), $DEVKIND)"
say "   loadavg at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
say ""
say "fio on the same device (node stopped), QD1 sequential io_uring O_DIRECT writes:"
printf '%-30s %9s %9s %9s %9s %9s\n' job "p50 ms" "p99 ms" "p99.9 ms" "IOPS" "MB/s"
for bs in $FIO_SIZES; do
    for mode in fdatasync dsync; do
        if [ $mode = fdatasync ]; then
            label="$bs write+fdatasync"
            wps() { awk -v a="$(vget $mode "$bs" "C$1")" -v b="$(vget $mode "$bs" "S$1")" 'BEGIN{printf "%.3f", a+b}'; }
            p50=$(wps 50); p99=$(wps 99); p999=$(wps 999)
        else
            label="$bs O_DSYNC write"; p50=$(vget $mode "$bs" C50); p99=$(vget $mode "$bs" C99); p999=$(vget $mode "$bs" C999)
        fi
        printf '%-30s %9s %9s %9s %9.0f %9s\n' "$label" "$p50" "$p99" "$p999" "$(vget $mode "$bs" IOPS)" "$(vget $mode "$bs" MBS)"
    done
done
say "(write+fdatasync: write percentile + fdatasync percentile, an upper bound; O_DSYNC is what the WAL's RWF_DSYNC writes do)"
say ""
say "Silt on that device (acks=all, ${RECORD_BYTES} B records; silt-bench: ${RECORDS_PER_BATCH} per request, coordinated omission counted):"
printf '%-22s %10s %10s %8s %8s %8s %8s %8s %7s %9s  %s\n' run "target/s" "achieved/s" "MB/s" "p50 ms" "p99 ms" "p99.9 ms" "max ms" "CPU s" "CPU s/GB" "p99 held most by (stage ms)"
for r in $RUNS t50; do
    f="$RESULTS/bench-$r.json"
    label=$r; [ $r = t50 ] && label="r50 + tail fetch"
    if [ ! -s "$f" ]; then printf '%-22s %s\n' "$label" "FAILED (no result; see $RESULTS/bench-$r.err)"; continue; fi
    tgt=$(jget "$r" targetMsgsPerS); [ "$r" = max ] && tgt=max
    wall=$(awk -v a="$(jget "$r" measuredS)" -v w="$WARMUP_S" 'BEGIN{print a+w}')
    notes=""; [ "$(jget "$r" saturated)" = true ] && notes=" SATURATED"
    errs=$(jq -r '[.errors[]] | add // 0' "$f"); [ "$errs" != 0 ] && notes="$notes errors=$errs"
    printf '%-22s %10s %10.0f %8.2f %8.3f %8.3f %8.3f %8.3f %7s %9s  %s%s\n' "$label" "${tgt%.*}" \
        "$(jget "$r" achievedMsgsPerS)" "$(jget "$r" mbPerS)" "$(jget "$r" p50Ms)" "$(jget "$r" p99Ms)" \
        "$(jget "$r" p999Ms)" "$(jget "$r" maxMs)" "$(getv CPU_$r)" \
        "$(cpu_per_gb "$(getv CPU_$r)" "$(jget "$r" achievedMsgsPerS)" "$wall")" "$(top_stage "$r")" "$notes"
done
CK_P50=$(ckget p50); CK_P99=$(ckget p99); CK_P999=$(ckget p99.9); CK_MAX=$(ckget max)
printf '%-22s %10s %10s %8.2f %8s %8s %8s %8s %7s %9s  %s\n' "confluent-kafka" "$RATE_2000" "${CK_MSGS:-nan}" \
    "$(awk -v m="${CK_MSGS:-0}" -v b="$RECORD_BYTES" 'BEGIN{print m*b/1e6}')" "$CK_P50" "$CK_P99" "$CK_P999" "$CK_MAX" \
    "$(getv CPU_ck)" "$(cpu_per_gb "$(getv CPU_ck)" "${CK_DELIVERED:-0}" 1)" "$(top_stage ck)"
say ""
FETCH_MBS=$(printf '%.2f' "$(tget mbPerS)"); FETCH_MSGS=$(printf '%.0f' "$(tget msgsPerS)")
CPU_FETCH_GB=$(awk -v a="$(getv CPU_t50)" -v b="$(getv CPU_r50)" -v m="$FETCH_MSGS" -v w="$((WARMUP_S + DURATION_S))" -v rb="$RECORD_BYTES" \
    'BEGIN{g=m*w*rb/1e9; if (g>0 && a!="nan" && b!="nan") printf "%.1f", (a-b)/g; else printf "n/a"}')
say "The device alone, open loop (silt-bench wal: the runs' batches at their rates through Silt's WAL code, no node; latency due -> durable):"
printf '%-22s %10s %10s %8s %8s %8s %8s %8s %9s   %s\n' run "batches/s" "writes/s" "MB/s" "p50 ms" "p99 ms" "p99.9 ms" "max ms" "node p99" "node p99 - floor p99"
for r in $FLOORS ck r50busy; do
    f="$RESULTS/wal-$r.json"
    [ $r = r50busy ] && [ ! -e "$f" ] && continue
    if [ ! -s "$f" ]; then printf '%-22s %s\n' "$r" "FAILED (see $RESULTS/wal-$r.err)"; continue; fi
    case $r in
        ck) np=$(ckget p99); label="confluent-kafka rate" ;;
        r50busy) np=$(jget r50 p99Ms); label="r50, CPUs busy" ;;
        *) np=$(jget "$r" p99Ms); label=$r ;;
    esac
    printf '%-22s %10.0f %10.0f %8.2f %8.3f %8.3f %8.3f %8.3f %9s   %s\n' "$label" "$(walget $r targetBatchesPerS)" \
        "$(walget $r writesPerS)" "$(walget $r mbPerS)" "$(walget $r p50Ms)" "$(walget $r p99Ms)" "$(walget $r p999Ms)" \
        "$(walget $r maxMs)" "$np" "$(awk -v a="$np" -v b="$(walget $r p99Ms)" 'BEGIN{printf "%.3f", a-b}')"
done
[ -e "$RESULTS/wal-r50busy.json" ] && say "(r50, CPUs busy: the r50 floor again with the node's r50 CPU use burned beside it at SCHED_IDLE; fio ${WAL_BS} O_DSYNC QD1 the same way: p99 $BUSY_FIO_P99 / p99.9 $BUSY_FIO_P999 ms, idle $(vget dsync "$WAL_BS" C99) / $(vget dsync "$WAL_BS" C999))"
say ""
say "tail fetch during r50 + tail fetch: $FETCH_MSGS msgs/s = $FETCH_MBS MB/s fetched; record age at the consumer p50 $(tget ageP50Ms) / p99 $(tget ageP99Ms) / p99.9 $(tget ageP999Ms) / max $(tget ageMaxMs) ms"
say "CPU s per GB fetched (node CPU of r50 + tail fetch minus r50 alone, over the bytes fetched): $CPU_FETCH_GB"
say "CPU during r50 + tail fetch: node $(getv CPU_t50) s, the tail consumer (Python + librdkafka) $(tget clientCpuS) s, of $(nproc) CPUs x $(getv CPUWALL_t50) s"

say ""
say "== targets"
verdict() { if awk "BEGIN{exit !($1)}" 2>/dev/null; then echo PASS; else echo MISS; fi; }
FIO_WAL_DSYNC_P99=$(vget dsync "$WAL_BS" C99)
FIO_WAL_FDS_P99=$(awk -v a="$(vget fdatasync "$WAL_BS" C99)" -v b="$(vget fdatasync "$WAL_BS" S99)" 'BEGIN{printf "%.3f", a+b}')
FIO_4K_DSYNC_P99=$(vget dsync 4k C99)
FIO_4K_FDS_P99=$(awk -v a="$(vget fdatasync 4k C99)" -v b="$(vget fdatasync 4k S99)" 'BEGIN{printf "%.3f", a+b}')
P99=$(jget r50 p99Ms); P999=$(jget r50 p999Ms); T99=$(jget t50 p99Ms)
line() { printf '%-52s %-44s %s\n' "$1" "$2" "$3"; }
line "target" "measured" "verdict"
line "p99 @50% <= fio $WAL_BS O_DSYNC p99 + 1 ms" "$P99 vs $FIO_WAL_DSYNC_P99 + 1" "$(verdict "$P99 <= $FIO_WAL_DSYNC_P99 + 1")"
line "p99 @50% <= fio $WAL_BS write+fdatasync p99 + 1 ms" "$P99 vs $FIO_WAL_FDS_P99 + 1" "$(verdict "$P99 <= $FIO_WAL_FDS_P99 + 1")"
line "p99.9 @50% <= 2 x p99" "$P999 vs 2 x $P99" "$(verdict "$P999 <= 2 * $P99")"
line "p99 @$RATE_2000/s (confluent) <= fio 4k O_DSYNC p99 + 1" "$CK_P99 vs $FIO_4K_DSYNC_P99 + 1" "$(verdict "$CK_P99 <= $FIO_4K_DSYNC_P99 + 1")"
line "p99 @$RATE_2000/s (confluent) <= fio 4k w+fdatasync + 1" "$CK_P99 vs $FIO_4K_FDS_P99 + 1" "$(verdict "$CK_P99 <= $FIO_4K_FDS_P99 + 1")"
line "p99.9 @$RATE_2000/s (confluent) <= 2 x p99" "$CK_P999 vs 2 x $CK_P99" "$(verdict "$CK_P999 <= 2 * $CK_P99")"
W99=$(walget r50 p99Ms); WCK99=$(walget ck p99Ms)
line "(floor) p99 @50% <= device open loop p99 + 1 ms" "$P99 vs $W99 + 1" "$(verdict "$P99 <= $W99 + 1")"
line "(floor) p99 @$RATE_2000/s <= device open loop p99 + 1" "$CK_P99 vs $WCK99 + 1" "$(verdict "$CK_P99 <= $WCK99 + 1")"
if [ -s "$RESULTS/wal-r50busy.json" ]; then
    # Information, not targets: how far the device itself moves with the node's CPU use.
    line "(info) device open loop p99 @50%, CPUs busy vs idle" "$(walget r50busy p99Ms) vs $W99" "-"
    line "(info) fio $WAL_BS O_DSYNC p99, CPUs busy vs idle" "$BUSY_FIO_P99 vs $FIO_WAL_DSYNC_P99" "-"
fi
line "max MB/s >= 0.8 x fio $WAL_BS write+fdatasync MB/s" "$MAX_MBS vs 0.8 x $FIO_FDS_MBS" "$(verdict "$MAX_MBS >= 0.8 * $FIO_FDS_MBS")"
line "(info) max MB/s vs fio $WAL_BS O_DSYNC MB/s" "$MAX_MBS vs $FIO_DSYNC_MBS" "$(verdict "$MAX_MBS >= 0.8 * $FIO_DSYNC_MBS")"
line "tail fetch MB/s >= produce MB/s (r50 + tail fetch)" "$FETCH_MBS vs $(jget t50 mbPerS)" "$(verdict "$FETCH_MBS >= 0.99 * $(jget t50 mbPerS)")"
line "produce p99 with tail fetch <= without + 1 ms" "$T99 vs $P99 + 1" "$(verdict "$T99 <= $P99 + 1")"
say ""
say "MB/s = 10^6 bytes of record values per second (Silt) or written bytes per second (fio)."
say "CPU = utime + stime of the supervisor and all role processes during the run (warmup included);"
say "per GB = over the record-value bytes produced in it (msgs/s x (warmup + measured) x record size)."
say "Per-stage breakdowns: $RESULTS/stages-*.txt (Benchmarks/latency-breakdown.py)."
