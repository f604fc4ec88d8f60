#!/usr/bin/env bash
# collector.sh - the collector alone: how many events a second it takes in,
# and whether its memory grows with the length of the trace.
#
# usage: bash bench/collector.sh [-b BUILD_DIR] [-k "ROUNDS..."] [WORKLOAD...]
#   -b BUILD_DIR  where memtrace was built (default build)
#   -k ROUNDS     the stream is replayed this many times over, one row for
#                 each (default "1 4 16": a trace 1, 4 and 16 times as long)
#   WORKLOAD      churn, py_lists (needs /usr/bin/python3.11) or any of
#                 bench/run.sh's (default: churn py_lists)
#
# Each workload is recorded once with `memtrace -q` and
# MEMTRACE_RECORD_STREAM (every record the collector converted, in order),
# then replayed by build/bench/collector_replay into a fresh database: the
# collector's own CPU time (drain, convert, encode and write the pages; then
# finishing: stacks, symbols, indexes), not the program's.  Prints one
# Markdown table.  Workloads are built from ../shared/bench in a temporary
# directory (kept until the replays are done: the symbolizer reads the
# binaries); nothing is written to the shared directory.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/workloads.sh"
BUILD=$ROOT/build
ROUNDS="1 4 16"
while getopts "b:k:h" opt; do
    case $opt in
    b) BUILD=$(cd "$OPTARG" && pwd) ;;
    k) ROUNDS=$OPTARG ;;
    h) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bash bench/collector.sh [-b BUILD_DIR] [-k \"ROUNDS...\"] [WORKLOAD...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
WORKLOADS=("$@")
((${#WORKLOADS[@]})) || WORKLOADS=(churn py_lists)

MEMTRACE=$BUILD/memtrace
REPLAY=$BUILD/bench/collector_replay
[[ -x $MEMTRACE && -x $REPLAY ]] || { echo "collector.sh: $MEMTRACE or $REPLAY not built" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/memtrace-collector.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
build_workloads

# field NAME FILE: the value of collector_replay's line "NAME value"
field() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

ROWS=()
for w in "${WORKLOADS[@]}"; do
    cmd_of "$w"
    if [[ ${CMD[0]} == "$PYTHON" && ! -x $PYTHON ]]; then
        ROWS+=("| $w | skipped: $PYTHON not installed | | | | | | | |")
        continue
    fi
    echo "== $w: recording" >&2
    rm -f "$TMP/stream" "$TMP/trace.db"
    env "${CMD_ENV[@]}" MEMTRACE_RECORD_STREAM="$TMP/stream" "$MEMTRACE" -q -o "$TMP/trace.db" "${CMD[@]}" \
        >/dev/null 2>&1 || { ROWS+=("| $w | memtrace failed | | | | | | | |"); continue; }
    for k in $ROUNDS; do
        echo "== $w: replay x $k" >&2
        "$REPLAY" -k "$k" "$TMP/stream" >"$TMP/out" || { ROWS+=("| $w | replay x $k failed | | | | | | | |"); continue; }
        ev=$(field events "$TMP/out")
        ROWS+=("$(awk -v w="$w" -v k="$k" -v ev="$ev" -v rc="$(field run_cpu_s "$TMP/out")" \
            -v fc="$(field finish_cpu_s "$TMP/out")" -v b="$(field bytes_per_event "$TMP/out")" \
            -v r0="$(field rss_start_kib "$TMP/out")" -v r1="$(field rss_peak_kib "$TMP/out")" \
            -v h="$(field heap_end_of_run_kib "$TMP/out")" 'BEGIN {
                printf "| %s | %d | %d | %.3f | %.2f | %.3f | %.2f | %s | %.1f / %.1f | %.1f |", w, k, ev, rc,
                    (rc > 0 ? ev / rc / 1e6 : 0), fc, (rc + fc > 0 ? ev / (rc + fc) / 1e6 : 0), b,
                    r0 / 1024, r1 / 1024, h / 1024 }')")
    done
done

echo
echo "memtrace $("$MEMTRACE" --version | awk '{ print $2 }'), $(nproc) CPUs, $(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "collector CPU time (getrusage), replayed from a recorded stream"
echo
echo "| workload | rounds | events | run CPU s | M events/s (run) | finish CPU s | M events/s (all) | db bytes/event | RSS start / peak MiB | heap at end of run MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
