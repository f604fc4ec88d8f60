#!/usr/bin/env bash
# run.sh - what memtrace costs on the shared benchmark workloads, measured
# the way ../shared/bench/peers/table.md measured the other tools: untraced
# and traced runs in turn, the slowdown computed pair by pair.
#
# usage: bash bench/run.sh [-n PAIRS] [-b BUILD_DIR] [-a libc|bundled] [WORKLOAD...]
#   -n PAIRS      timed pairs per workload (default 5), after one warm-up pair
#   -b BUILD_DIR  where memtrace was built (default build)
#   -a bundled    trace with --allocator=bundled, and in the last column the
#                 bundled allocator untraced (libmemtrace_pym_malloc.so)
#                 against glibc's malloc instead of heaptrack
#   WORKLOAD      the shared ones: churn grow threads mmapper py_lists
#                 py_lists_malloc (py_* need /usr/bin/python3.11); this
#                 project's (bench/workloads): cppmap (C++ std::map and
#                 std::string), pairs1 and pairs4 (the same malloc/free
#                 pairs per thread with 1 and 4 threads: the cost per event
#                 should not grow with threads)
#                 (default: all of them)
#
# Prints one table: median wall time untraced and traced, the traced/untraced
# ratio (median [min-max] over the pairs), memtrace's added time per event
# ((traced - untraced) / events, medians), trace size per event (database
# bytes / meta.events), the count shim's ratio (a preload library that only
# counts calls: the floor of any interposer) and, when heaptrack is
# installed, its ratio, all measured in the same rounds (untraced, memtrace,
# shim, heaptrack in turn).
# Workloads and the count shim are built from ../shared/bench in a temporary
# directory; nothing is written to the shared directory.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/workloads.sh"
PAIRS=5
BUILD=$ROOT/build
ALLOC=libc
while getopts "n:b:a:h" opt; do
    case $opt in
    n) PAIRS=$OPTARG ;;
    b) BUILD=$(cd "$OPTARG" && pwd) ;;
    a) ALLOC=$OPTARG ;;
    h) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bash bench/run.sh [-n PAIRS] [-b BUILD_DIR] [-a libc|bundled] [WORKLOAD...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: -n wants a positive count, not '$PAIRS'" >&2; exit 2; }
[[ $ALLOC == libc || $ALLOC == bundled ]] || { echo "run.sh: -a wants libc or bundled, not '$ALLOC'" >&2; exit 2; }
WORKLOADS=("$@")
((${#WORKLOADS[@]})) || WORKLOADS=(churn grow threads mmapper py_lists py_lists_malloc cppmap pairs1 pairs4)

MEMTRACE=$BUILD/memtrace
[[ -x $MEMTRACE ]] || { echo "run.sh: $MEMTRACE not built (run: bash scripts/setup.sh)" >&2; exit 1; }
HEAPTRACK=$(command -v heaptrack || true)
PYM_MALLOC=$BUILD/libmemtrace_pym_malloc.so
if [[ $ALLOC == bundled ]]; then
    [[ -e $PYM_MALLOC ]] || { echo "run.sh: $PYM_MALLOC not built" >&2; exit 1; }
    HEAPTRACK="" # the bundled runs compare with the untraced bundled allocator instead
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/memtrace-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# ---- build the workloads and the shim, in TMP ----
build_workloads
gcc -O2 -shared -fPIC -o "$TMP/count_shim.so" "$BENCH_SRC/tools/count_shim.c" -ldl

# timed VAR CMD...: runs CMD (output discarded), puts its wall time in
# seconds into VAR; returns CMD's exit status.
timed() {
    local -n out=$1
    shift
    local t0 t1 rc=0
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || rc=$?
    t1=$(date +%s%N)
    out=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
    return $rc
}

# stats V1 V2 ...: "median min max" of the numbers
stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.4f %.4f %.4f\n", m, v[1], v[NR] }'
}

ratio() { awk -v t="$1" -v u="$2" 'BEGIN { printf "%.4f", t / u }'; }

run_untraced() { env "${CMD_ENV[@]}" "${CMD[@]}"; }
run_memtrace() { env "${CMD_ENV[@]}" "$MEMTRACE" -q --allocator="$ALLOC" -o "$TMP/trace.db" "${CMD[@]}"; }
run_shim() { env "${CMD_ENV[@]}" LD_PRELOAD="$TMP/count_shim.so" COUNT_SHIM_OUT=/dev/null "${CMD[@]}"; }
# the bundled allocator as the program's malloc, untraced
run_pym() { env "${CMD_ENV[@]}" LD_PRELOAD="$PYM_MALLOC" "${CMD[@]}"; }
# heaptrack's interpreter can exhaust memory (it does on churn): cap it
run_heaptrack() {
    rm -f "$TMP"/ht.*
    (ulimit -v 8000000; env "${CMD_ENV[@]}" timeout 600 "$HEAPTRACK" -o "$TMP/ht" "${CMD[@]}")
}

ROWS=()
for w in "${WORKLOADS[@]}"; do
    cmd_of "$w"
    if [[ ${CMD[0]} == "$PYTHON" && ! -x $PYTHON ]]; then
        ROWS+=("$w|skipped: $PYTHON not installed")
        continue
    fi
    echo "== $w: 1 warm-up + $PAIRS pairs" >&2
    untraced=() traced=() ratios=() ht_ratios=() pym_ratios=() shim_ratios=()
    ht_ok=${HEAPTRACK:+1}
    status=ok
    for ((i = 0; i <= PAIRS; i++)); do
        tu=0 tt=0 th=0 ts=0
        timed tu run_untraced || { status="untraced run failed"; break; }
        timed tt run_memtrace || { status="memtrace failed (exit $?)"; break; }
        timed ts run_shim || { status="the count shim failed"; break; }
        if [[ -n $ht_ok ]]; then timed th run_heaptrack || ht_ok=""; fi
        if [[ $ALLOC == bundled ]]; then timed th run_pym || { status="the untraced bundled allocator failed"; break; }; fi
        ((i == 0)) && continue # warm-up
        untraced+=("$tu") traced+=("$tt") ratios+=("$(ratio "$tt" "$tu")") shim_ratios+=("$(ratio "$ts" "$tu")")
        [[ -n $ht_ok ]] && ht_ratios+=("$(ratio "$th" "$tu")")
        [[ $ALLOC == bundled ]] && pym_ratios+=("$(ratio "$th" "$tu")")
        echo "   pair $i: untraced $tu s, memtrace $tt s${ht_ok:+, heaptrack $th s}${pym_ratios:+, bundled untraced $th s}" >&2
    done
    if [[ $status != ok ]]; then
        ROWS+=("$w|$status")
        continue
    fi
    read -r um _ _ < <(stats "${untraced[@]}")
    read -r tm _ _ < <(stats "${traced[@]}")
    read -r rm rmin rmax < <(stats "${ratios[@]}")
    events=$(sqlite3 -readonly "$TMP/trace.db" "SELECT value FROM meta WHERE key = 'events'")
    bytes=$(stat -c %s "$TMP/trace.db")
    bpe=$(awk -v b="$bytes" -v e="$events" 'BEGIN { if (e > 0) printf "%.1f", b / e; else print "-" }')
    nspe=$(awk -v t="$tm" -v u="$um" -v e="$events" 'BEGIN { if (e > 0) printf "%.0f", (t - u) * 1e9 / e; else print "-" }')
    read -r sm smin smax < <(stats "${shim_ratios[@]}")
    shim=$(printf '%.2fx [%.2f-%.2f]' "$sm" "$smin" "$smax")
    ht="-"
    if [[ $ALLOC == bundled ]]; then
        read -r hm hmin hmax < <(stats "${pym_ratios[@]}")
        ht=$(printf '%.2fx [%.2f-%.2f]' "$hm" "$hmin" "$hmax")
    elif [[ -z $HEAPTRACK ]]; then
        ht="not installed"
    elif [[ -z $ht_ok ]]; then
        ht="failed"
    else
        read -r hm hmin hmax < <(stats "${ht_ratios[@]}")
        ht=$(printf '%.2fx [%.2f-%.2f]' "$hm" "$hmin" "$hmax")
    fi
    ROWS+=("$(printf '%s|%.3f|%.3f|%.2fx [%.2f-%.2f]|%s|%s|%s|%s|%s' "$w" "$um" "$tm" "$rm" "$rmin" "$rmax" \
        "$nspe" "$events" "$bpe" "$shim" "$ht")")
done

echo
echo "memtrace $("$MEMTRACE" --version | awk '{ print $2 }'), $(nproc) CPUs, $(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "$PAIRS pairs per workload after 1 warm-up; ratio = traced / untraced wall time, pair by pair; memtrace --allocator=$ALLOC"
echo
last="heaptrack ratio median [min-max]"
[[ $ALLOC == bundled ]] && last="bundled allocator untraced / glibc, median [min-max]"
echo "| workload | untraced s (median) | memtrace s (median) | memtrace ratio median [min-max] | ns/event added | events | db bytes/event | count shim ratio | $last |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$r"
    if ((${#f[@]} == 2)); then
        echo "| ${f[0]} | ${f[1]} | | | | | | | |"
    else
        echo "| ${f[0]} | ${f[1]} | ${f[2]} | **${f[3]}** | ${f[4]} | ${f[5]} | ${f[6]} | ${f[7]} | ${f[8]} |"
    fi
done
