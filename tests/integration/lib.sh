# lib.sh - the harness every integration test sources.
#
# Each test runs programs under memtrace in a fresh temporary directory (its
# working directory, removed at exit), asks the database exact questions in
# SQL and compares the answers with what the program is known to do.
# Checks do not stop at the first failure: every one is reported, and
# finish() makes the test fail when any did.
#
# Environment (tests/CMakeLists.txt sets it; set it by hand to run a script
# alone: MEMTRACE=build/memtrace PROGS=build/tests/programs ... bash X.sh):
#   MEMTRACE    the memtrace executable (libmemtrace_preload.so beside it)
#   PROGS       directory of the built test programs (tests/programs)
#   PROGS_SRC   directory of their sources (line numbers are read from them)
#   WORKLOADS   directory of the built benchmark workloads (optional)
#   WORKLOADS_SRC  directory of their sources, for py_lists.py (optional)
#   COUNT_SHIM  the counting LD_PRELOAD library count_shim.so (optional)
set -euo pipefail

: "${MEMTRACE:?set MEMTRACE to the memtrace executable}"
MEMTRACE=$(readlink -f "$MEMTRACE")
[[ -x $MEMTRACE ]] || { echo "memtrace not found at $MEMTRACE" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/memtrace-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
FAILED=0
CHECKS=0

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    FAILED=$((FAILED + 1))
}

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
    CHECKS=$((CHECKS + 1))
    if [[ "$3" == "$2" ]]; then
        printf 'ok:   %s = %s\n' "$1" "${2//$'\n'/ / }"
    else
        fail "$1: expected [${2//$'\n'/ / }], got [${3//$'\n'/ / }]"
    fi
}

# assert_true WHAT COMMAND...: the command must succeed
assert_true() {
    local what=$1
    shift
    CHECKS=$((CHECKS + 1))
    if "$@"; then printf 'ok:   %s\n' "$what"; else fail "$what"; fi
}

# q DB SQL: rows one per line, columns separated by '|', no header; read-only.
q() { sqlite3 -readonly -batch -bail -noheader "$1" "$2"; }

# mq DB SQL: the same question through `memtrace query` (CSV, no header).
mq() { "$MEMTRACE" query --csv --no-header "$1" "$2"; }

# Options every trace() passes to `memtrace run` (a test that checks the
# heap layer's exact counts against the count shim sets TRACE_OPTS=(--os=hooks):
# with the default --os=syscalls the OS layer also holds the loader's and the
# C library's own mappings, which the shim does not see).
TRACE_OPTS=()
# A command trace() runs memtrace under (e.g. setarch -R), empty by default.
TRACE_PREFIX=()

# trace DB PROG [ARGS...]: runs `memtrace -q -o DB PROG ARGS`; memtrace's exit
# status goes to RC, its stdout to $WORK/out, its stderr to $WORK/err.
trace() {
    local db=$1
    shift
    RC=0
    "${TRACE_PREFIX[@]}" "$MEMTRACE" -q -o "$db" "${TRACE_OPTS[@]}" "$@" >"$WORK/out" 2>"$WORK/err" || RC=$?
    if [[ -s $WORK/err ]]; then sed 's/^/memtrace stderr: /' "$WORK/err" >&2; fi
}

# trace_bg [--setsid] DB PROG [ARGS...]: starts `memtrace -q -o DB PROG
# ARGS` in the background (with --setsid: as the leader of a new session
# and process group, as a shell would start it), stdout to $WORK/out,
# stderr to $WORK/err, and waits until the program has printed "ready".
# MPID is memtrace's pid.
trace_bg() {
    local setsid=()
    if [[ $1 == --setsid ]]; then
        setsid=(setsid)
        shift
    fi
    local db=$1 i
    shift
    rm -f "$WORK/out"
    "${setsid[@]}" "$MEMTRACE" -q -o "$db" "${TRACE_OPTS[@]}" "$@" >"$WORK/out" 2>"$WORK/err" &
    MPID=$!
    for i in $(seq 1 400); do
        grep -q ready "$WORK/out" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "$* did not start"
}

# nlines FILE: number of lines in FILE
nlines() { wc -l <"$1" | tr -d ' '; }

# meta DB KEY: a value of the meta table
meta() { q "$1" "SELECT value FROM meta WHERE key = '$2'"; }

# Live blocks at the end of each process: allocations (kinds flagged
# is_alloc, not failed) that no later successful free-like event of the same
# process releases (free and munmap by addr; realloc, reallocarray and mremap
# by old_addr).  Every allocation and every release is put on one timeline
# per (process, address); an allocation is live when the next entry on its
# timeline is not a release (at the same seq a realloc's release of its old
# block comes before its new block, for reallocs in place).  A CTE named
# `live` with columns seq, process_id, kind, addr, size, stack_id.
LIVE_CTE="live AS (
  SELECT seq, process_id, kind, addr, size, stack_id FROM (
    SELECT t.*, lead(t.role) OVER (PARTITION BY t.process_id, t.key ORDER BY t.seq, t.role DESC) AS next_role
    FROM (SELECT e.seq, e.process_id, e.kind, e.addr, e.size, e.stack_id, e.addr AS key, 'A' AS role
          FROM events e JOIN event_kinds k ON k.name = e.kind
          WHERE k.is_alloc = 1 AND e.failed IS NULL AND e.addr IS NOT NULL AND e.addr != 0
          UNION ALL
          SELECT e.seq, e.process_id, e.kind, NULL, NULL, NULL,
                 CASE WHEN e.kind IN ('realloc', 'reallocarray', 'mremap') THEN e.old_addr ELSE e.addr END, 'F'
          FROM events e JOIN event_kinds k ON k.name = e.kind
          WHERE k.is_free = 1 AND e.failed IS NULL) t)
  WHERE role = 'A' AND (next_role IS NULL OR next_role = 'A'))"

# shim_counts OUTFILE CMD...: runs CMD with LD_PRELOAD=$COUNT_SHIM and writes
# the per-kind call counts, summed over every process, as "key=value" lines
# (sorted) to OUTFILE.  The command's exit status is returned.
shim_counts() {
    local outfile=$1
    shift
    local raw="$WORK/shim.raw.$$.$RANDOM"
    rm -f "$raw"
    local rc=0
    COUNT_SHIM_OUT="$raw" LD_PRELOAD="$COUNT_SHIM" "$@" >/dev/null 2>"$WORK/shim.err" || rc=$?
    if [[ ! -s $raw ]]; then
        fail "count shim wrote nothing for: $*"
        : >"$outfile"
        return "$rc"
    fi
    awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] != "pid") n[kv[1]] += kv[2] } }
         END { for (k in n) print k "=" n[k] }' "$raw" | sort >"$outfile"
    return "$rc"
}

# shim_get FILE KEY: one count from a shim_counts file (0 when absent)
shim_get() { awk -F= -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' "$1"; }

# compare_with_shim LABEL SHIMFILE DB [heap]: every kind the shim counts must
# have exactly as many events in DB.  free(NULL) is not an event: the shim's
# free_null must equal the sum of processes.free_null, and its heap_calls
# (every heap call except free(NULL)) the number of libc-domain events.  With
# "heap" the os-domain kinds are skipped (for programs whose mapping calls
# are not reproducible from run to run).
compare_with_shim() {
    local label=$1 shim=$2 db=$3 scope=${4:-all}
    local kinds="malloc calloc realloc memalign posix_memalign aligned_alloc valloc pvalloc free"
    [[ $scope == heap ]] || kinds+=" mmap munmap mremap brk sbrk"
    local got
    got=$(q "$db" "SELECT kind || '=' || count(*) FROM events GROUP BY kind")
    local k want have
    for k in $kinds; do
        want=$(shim_get "$shim" "$k")
        have=$(awk -F= -v k="$k" '$1 == k { v = $2 } END { print v + 0 }' <<<"$got")
        assert_eq "$label: $k events (count shim: $want)" "$want" "$have"
    done
    assert_eq "$label: free(NULL) calls in processes.free_null" "$(shim_get "$shim" free_null)" \
        "$(q "$db" "SELECT coalesce(sum(free_null), 0) FROM processes")"
    assert_eq "$label: libc-domain events = shim heap_calls" "$(shim_get "$shim" heap_calls)" \
        "$(q "$db" "SELECT count(*) FROM events WHERE domain = 'libc' AND kind != 'reallocarray'")"
    if [[ $scope != heap ]]; then
        local os=0
        for k in mmap munmap mremap brk sbrk; do os=$((os + $(shim_get "$shim" "$k"))); done
        assert_eq "$label: os-domain events" "$os" "$(q "$db" "SELECT count(*) FROM events WHERE domain = 'os'")"
    fi
}

# counted_calls FILE SLOT: "tid calls" of thread SLOT in the counter file of
# tests/programs/dier.c (DIER_COUNTS)
counted_calls() { od -An -t d8 -j $(($2 * 16)) -N 16 "$1" | awk '{ print $1, $2 }'; }

# finish: the test's verdict
finish() {
    if ((FAILED)); then
        echo "$FAILED of $CHECKS checks failed" >&2
        exit 1
    fi
    echo "all $CHECKS checks passed"
}
