#!/usr/bin/env bash
# python_layers.sh - CPython capture on a real interpreter, checked against
# the interpreter's own introspection:
#   - list growth: the capacity sequence of a list grown by append, as the
#     interpreter reports it (sys.getsizeof), equals the realloc chain's;
#   - GC: collections per generation equal gc.get_stats() deltas; 50
#     explicit collections are 50 generation-2 collections;
#   - pymalloc rebuilt from the events equals sys._debugmallocstats and
#     sys.getallocatedblocks, in the default mode and with PYTHONMALLOC=debug,
#     in `memtrace python` and in `memtrace layout` (pools and blocks per
#     class, arenas) at the moment the statistics were taken, also with the
#     bundled allocator serving malloc (layout's default is then bundled);
#   - PYTHONMALLOC=malloc: the wrappers go in again after pre-initialisation
#     and every PyMem/PyObject call is exactly one C library call beneath;
#   - Python frames name the script's lines; the start of the user's code is
#     marked; --python=off records the C library layer only.
source "$(dirname "$0")/lib.sh"

PYTHON=${PYTHON:-/usr/bin/python3.11}
[[ -x $PYTHON ]] || { echo "SKIP: $PYTHON not installed"; exit 77; }
export PYTHONHASHSEED=0

# ---- list growth and Python frames ----
cat >grow.py <<'EOF'
import sys
empty = sys.getsizeof([])
caps = []
lst = []
for i in range(1000):
    lst.append(i)
    c = (sys.getsizeof(lst) - empty) // 8
    if not caps or caps[-1] != c:
        caps.append(c)
print(" ".join(map(str, caps)))
EOF
trace grow.db "$PYTHON" grow.py
assert_eq "grow.py: exit status" 0 "$RC"
expect=$(cat "$WORK/out")
assert_true "grow.py printed a capacity sequence starting 4 8 16" grep -q '^4 8 16 24 32 40 52 64 76' <<<"$expect"
# the chain whose allocation is at grow.py line 6 (lst.append)
got=$("$MEMTRACE" python --csv --section growth --top 0 grow.db |
    awk -F, 'NR > 1 && /grow\.py:6/ { print $4 }' | tr '\n' ' ' | sed 's/ $//')
assert_eq "list capacities from the pymem realloc chain = sys.getsizeof's" "$expect" "$got"
assert_eq "Python frames: the append's innermost Python frame" "<module>|grow.py|6" \
    "$(q grow.db "SELECT f.function, replace(f.file, '$WORK/', ''), f.line FROM frames f
                  WHERE f.python = 1 AND f.file LIKE '%grow.py' AND f.line = 6 LIMIT 1")"
assert_eq "markers: interpreter initialised, user code (a file), atexit" $'py_init|0\npy_user_code|1\npy_atexit|0' \
    "$(q grow.db "SELECT kind || '|' || value FROM marker_names WHERE kind LIKE 'py_%' ORDER BY seq")"
assert_eq "python row: version, allocator, geometry, frames" "3.11|pymalloc|1048576|16384|32|512|1|1" \
    "$(q grow.db "SELECT substr(version, 1, 4), allocator, arena_size, pool_size, size_classes, small_max,
                         frames, installs FROM python")"
assert_true "start-up resident memory read when the user's code started (1..200 MiB)" \
    test "$(q grow.db "SELECT startup_rss > 1048576 AND startup_rss < 209715200 FROM python")" = 1
assert_eq "pymalloc arenas are arena_size each" \
    "$(q grow.db "SELECT count(*) FROM event_data WHERE kind = 27 AND size = 1048576")" \
    "$(q grow.db "SELECT count(*) FROM event_data WHERE kind = 27 AND size >= 1048576")"

# ---- pymalloc rebuilt = the interpreter's statistics ----
check_pymalloc() { # DB LABEL
    local csv
    csv=$("$MEMTRACE" python --csv --section pymalloc "$1")
    assert_eq "$2: pymalloc figures that differ from the interpreter's" "" "$(awk -F, 'NR > 1 && $4 != "yes"' <<<"$csv")"
    assert_true "$2: per-class rows compared" test "$(grep -c '^class' <<<"$csv")" -gt 10
    # memtrace layout at the statistics moment: pools and blocks per class
    # = pymalloc_stats, arenas = arenas_current, each arena's pools =
    # arena_size / pool_size, one fewer when its base is not pool-aligned
    local at
    at=$(q "$1" "SELECT stats_seq FROM python")
    assert_eq "$2: layout --by classes at the statistics (seq $at) = pymalloc_stats (class|pools|blocks)" \
        "$(q "$1" "SELECT size_class || '|' || pools || '|' || blocks_used FROM pymalloc_stats
                   WHERE pools > 0 ORDER BY size_class")" \
        "$("$MEMTRACE" layout --allocator pymalloc --at "$at" --by classes --csv "$1" |
           awk -F, 'NR > 1 { print $3 "|" $6 + $7 "|" $9 }')"
    csv=$("$MEMTRACE" layout --allocator pymalloc --at "$at" --by arenas --csv "$1")
    assert_eq "$2: layout's arenas at the statistics = arenas_current" "$(q "$1" "SELECT arenas_current FROM python")" \
        "$(tail -n +2 <<<"$csv" | wc -l | tr -d ' ')"
    assert_eq "$2: pools per arena: 64, 63 when not aligned to 16 KiB" "" \
        "$(awk -F, 'NR > 1 && $5 + $6 + $7 + $8 != ($3 % 16384 ? 63 : 64)' <<<"$csv")"
    assert_eq "$2: layout's pools in use at the statistics = the sum of pymalloc_stats.pools" \
        "$(q "$1" "SELECT sum(pools) FROM pymalloc_stats")" "$(awk -F, 'NR > 1 { n += $4 } END { print n }' <<<"$csv")"
}
check_pymalloc grow.db "grow.py"
assert_eq "grow.py: without bundled-allocator events, layout shows pymalloc" \
    "$("$MEMTRACE" layout --allocator pymalloc --by classes --csv grow.db)" \
    "$("$MEMTRACE" layout --by classes --csv grow.db)"
# both allocators: the bundled one serves malloc, pymalloc maps its arenas
trace both.db --allocator=bundled "$PYTHON" grow.py
assert_eq "bundled + pymalloc: exit status" 0 "$RC"
check_pymalloc both.db "bundled + pymalloc"
assert_eq "bundled + pymalloc: layout shows the bundled allocator by default" "bundled allocator layout" \
    "$("$MEMTRACE" layout both.db | head -1 | cut -d' ' -f1-3)"

# ---- threads: four threads allocate, frames per thread ----
cat >thr.py <<'EOF2'
import threading
def work(n):
    l = []
    for i in range(20000):
        l.append(str(i) * 3)
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
EOF2
trace thr.db "$PYTHON" thr.py
assert_eq "threads: exit status" 0 "$RC"
assert_eq "threads: object allocations in 5 threads" 5 \
    "$(q thr.db "SELECT count(DISTINCT thread) FROM event_data WHERE kind = 23")"
assert_eq "threads: the 4 x 20000 strings made at thr.py:5, each in its own thread" "4|80000" \
    "$(q thr.db "SELECT count(DISTINCT e.thread), count(*) FROM event_data e
                 WHERE e.kind = 23 AND EXISTS (SELECT 1 FROM stack_frames s WHERE s.stack_id = e.stack
                 AND s.depth <= 2 AND s.file LIKE '%thr.py' AND s.line = 5 AND s.function = 'work')
                 AND e.stack IN (SELECT stack_id FROM stack_frames WHERE function = 'PyUnicode_New')")"
check_pymalloc thr.db "threads"

# ---- retained: what pymalloc keeps, and which blocks pin its pools ----
stats_seq=$(q grow.db "SELECT stats_seq FROM python")
"$MEMTRACE" retained --csv --by pools --at "$stats_seq" grow.db >pins.csv
assert_true "retained: pymalloc pools pinned by few blocks at the statistics moment" test "$(tail -n +2 pins.csv | wc -l)" -gt 0
assert_eq "retained: every pinning block is matched with its live allocation (traced = used)" 0 \
    "$(awk -F, 'NR > 1 && $9 != $11' pins.csv | wc -l | tr -d ' ')"
assert_eq "retained: arena bytes at the end = live arenas x arena size" \
    "$(q grow.db "SELECT (SELECT count(*) FROM event_data WHERE kind = 27 AND size = 1048576)
                        - (SELECT count(*) FROM event_data WHERE kind = 28 AND size = 1048576)")" \
    "$("$MEMTRACE" retained --csv --points 1 grow.db | awk -F, 'NR == 2 { print $4 / 1048576 }')"

assert_eq "report: the verdict's retained bytes = what retained says pymalloc keeps free at the end" \
    "$("$MEMTRACE" retained --csv --points 1 grow.db | awk -F, 'NR == 2 { print $7 }')" \
    "$("$MEMTRACE" report --csv rep grow.db && awk -F, '$1 == "retained_bytes" { print $2 }' rep/summary.csv)"

# ---- GC ----
cat >gc50.py <<'EOF'
import gc
class Node:
    def __init__(self):
        self.other = None
for i in range(50):
    gc.collect()
for i in range(20000):
    a = Node(); b = Node(); a.other = b; b.other = a
EOF
trace gc.db "$PYTHON" gc50.py
assert_eq "gc50.py: exit status" 0 "$RC"
gc=$("$MEMTRACE" python --csv --section gc gc.db)
assert_eq "collections until atexit = gc.get_stats() delta, per generation" \
    "$(awk -F, 'NR > 1 { print $1 ":" $4 }' <<<"$gc")" "$(awk -F, 'NR > 1 { print $1 ":" $2 }' <<<"$gc")"
assert_eq "50 explicit collections: generation 2" 50 "$(awk -F, '$1 == 2 { print $2 }' <<<"$gc")"
# the numbers that name moments (the GC callback's, python.stats_seq) are
# announced to the collector: it never waits for an event with one (taken
# silently, the GC callback's held more than a window of later events -
# 262,144 - in the ring until the collector stepped over it)
cat >many.py <<'PY'
keep = None
for i in range(300000):
    keep = [i, i]
PY
trace many.db "$PYTHON" many.py
assert_eq "300,000 lists: more than a window of events; the window never stalled on a number without an event" "1|0" \
    "$(q many.db "SELECT count(*) > 262144 FROM events")|$(meta many.db window_stalls)"
loop="g.generation = 0 AND g.start_seq < (SELECT seq FROM markers WHERE kind = 9)
      AND g.start_seq > (SELECT max(start_seq) FROM gc_events WHERE generation = 2
                         AND start_seq < (SELECT seq FROM markers WHERE kind = 9))"
assert_true "the cycle loop triggered automatic generation-0 collections" \
    test "$(q gc.db "SELECT count(*) FROM gc_events g WHERE $loop")" -gt 10
assert_eq "each was triggered by an object allocation at gc50.py line 8" 0 \
    "$(q gc.db "SELECT count(*) FROM gc_events g WHERE $loop AND NOT EXISTS (
                SELECT 1 FROM event_data e JOIN stack_frames s ON s.stack_id = e.stack
                WHERE e.seq = g.trigger_seq AND e.kind IN (23, 24) AND s.file LIKE '%gc50.py' AND s.line = 8)")"
assert_eq "memtrace gc --csv --top 0: one row per collection" "$(q gc.db "SELECT count(*) FROM gc_events")" \
    "$("$MEMTRACE" gc --csv --top 0 gc.db | tail -n +2 | wc -l | tr -d ' ')"
assert_eq "memtrace gc --top 5: five rows" 5 "$("$MEMTRACE" gc --csv --top 5 gc.db | tail -n +2 | wc -l | tr -d ' ')"
assert_eq "gc_events: stop after start, non-negative figures" 0 \
    "$(q gc.db "SELECT count(*) FROM gc_events WHERE stop_seq <= start_seq OR collected < 0 OR stop_ts < start_ts")"
assert_eq "gc_events: every collection takes time (exact times, not the shared clock's 100 us steps)" 0 \
    "$(q gc.db "SELECT count(*) FROM gc_events WHERE stop_ts <= start_ts")"

# ---- PYTHONMALLOC=debug: wrappers above the debug hooks ----
PYTHONMALLOC=debug trace dbg.db "$PYTHON" grow.py
assert_eq "debug: exit status" 0 "$RC"
assert_eq "debug: re-installed after pre-initialisation" "pymalloc_debug|2" \
    "$(q dbg.db "SELECT allocator, installs FROM python")"
check_pymalloc dbg.db "PYTHONMALLOC=debug"

# ---- PYTHONMALLOC=malloc: each domain call is one C library call ----
PYTHONMALLOC=malloc trace mal.db "$PYTHON" gc50.py
assert_eq "malloc: exit status" 0 "$RC"
assert_eq "malloc: re-installed after pre-initialisation" "malloc|2" "$(q mal.db "SELECT allocator, installs FROM python")"
assert_eq "malloc: C library calls made for PyMem_*/PyObject_* = their calls" \
    "$(q mal.db "SELECT count(*) FROM events e JOIN event_kinds k ON k.name = e.kind WHERE k.id BETWEEN 19 AND 26")" \
    "$(q mal.db "SELECT count(*) FROM events e JOIN event_kinds k ON k.name = e.kind WHERE k.id <= 9 AND e.via IN (3, 4)")"
assert_true "malloc: object domain recorded" test "$(q mal.db "SELECT count(*) FROM event_data WHERE kind = 23")" -gt 10000
assert_eq "malloc: no pymalloc arena" 0 "$(q mal.db "SELECT count(*) FROM event_data WHERE kind = 27 AND size = 1048576")"
# a C library allocation serving a PyMem/PyObject call has that call's stack
# (the wrapper's own event follows it), not a native unwind of its own
STACKS="SELECT count(*), sum(s IS ps) FROM (
          SELECT m.stack AS s, (SELECT p.stack FROM event_data p WHERE p.thread = m.thread AND p.seq > m.seq
                                AND p.kind BETWEEN 19 AND 26 ORDER BY p.seq LIMIT 1) AS ps
          FROM event_data m WHERE m.kind IN (1, 2, 3) AND m.via IN (3, 4))"
read -r n same <<<"$(q mal.db "$STACKS" | tr '|' ' ')"
assert_true "malloc: C library allocations under PyMem/PyObject calls ($n)" test "$n" -gt 10000
assert_eq "malloc: each has the stack of the call it serves" "$n" "$same"

# ---- nesting: a big object request goes PyObject -> PyMem_Raw -> malloc ----
cat >big.py <<'EOF'
blobs = [bytearray(1000) for i in range(10)]
EOF
trace big.db "$PYTHON" big.py
assert_eq "big.py: exit status" 0 "$RC"
assert_eq "raw allocations serving object requests over 512 bytes have a libc malloc of the same address below" 0 \
    "$(q big.db "SELECT count(*) FROM event_data r WHERE r.kind = 15 AND r.via = 4 AND NOT EXISTS (
                 SELECT 1 FROM event_data m WHERE m.kind = 1 AND m.via = 2 AND m.addr = r.addr
                 AND m.seq < r.seq AND m.thread = r.thread)")"
assert_true "the 10 bytearray buffers are among them" \
    test "$(q big.db "SELECT count(*) FROM event_data WHERE kind = 15 AND via IN (3, 4) AND size = 1001")" -ge 10

# ---- os.fork and os._exit; tracemalloc above our wrappers ----
cat >fork.py <<'EOF2'
import os, gc
l = [str(i) for i in range(1000)]
pid = os.fork()
if pid == 0:
    m = [str(i) * 2 for i in range(2000)]
    gc.collect()
    os._exit(3)
os.waitpid(pid, 0)
EOF2
PYTHONTRACEMALLOC=1 trace fork.db "$PYTHON" fork.py
assert_eq "fork: exit status" 0 "$RC"
assert_eq "fork: both processes complete (os._exit is an end), the child's status" "1||1|3" \
    "$(q fork.db "SELECT group_concat(complete || '|' || coalesce(exit_status, ''), '|') FROM
                  (SELECT complete, CASE WHEN parent_id IS NULL THEN NULL ELSE exit_status END AS exit_status
                   FROM processes ORDER BY id)")"
assert_eq "fork: the child's Python frames are named (at os._exit)" 0 \
    "$(q fork.db "SELECT count(*) FROM frames WHERE python = 1 AND function IS NULL")"
assert_eq "fork: the child's collection" 1 \
    "$(q fork.db "SELECT count(*) FROM gc_events g JOIN processes p ON p.id = g.process_id WHERE p.parent_id IS NOT NULL")"
check_pymalloc fork.db "tracemalloc on top"

# ---- --python=off ----
trace off.db --python=off "$PYTHON" grow.py
assert_eq "--python=off: exit status" 0 "$RC"
assert_eq "--python=off: no Python domain event, no python row" "0|0" \
    "$(q off.db "SELECT (SELECT count(*) FROM event_data WHERE kind BETWEEN 15 AND 28),
                        (SELECT count(*) FROM python)")"
rc=0
"$MEMTRACE" python off.db >o 2>e || rc=$?
assert_eq "memtrace python on a trace without Python: exit 1, one line" "1|1" "$rc|$(nlines e)"
rc=0
"$MEMTRACE" layout --allocator pymalloc off.db >o 2>e || rc=$?
assert_eq "layout --allocator pymalloc without Python: exit 0, one line on stderr, nothing on stdout" "0|1|0" \
    "$rc|$(nlines e)|$(wc -c <o | tr -d ' ')"
rc=0
"$MEMTRACE" layout --allocator jemalloc grow.db >o 2>e || rc=$?
assert_eq "layout --allocator jemalloc: usage error, exit 2" 2 "$rc"
# PYTHONMALLOC=malloc: no pymalloc arena, so no layout
rc=0
"$MEMTRACE" layout mal.db >o 2>e || rc=$?
assert_eq "layout of a PYTHONMALLOC=malloc run: exit 0, one line on stderr" "0|1" "$rc|$(nlines e)"

# ---- embedding: the shared libpython linked in, and opened with dlopen ----
if [[ -n ${LIBPYTHON:-} && -x $PROGS/pyembed ]]; then
    code=$'l = []\nfor i in range(1000): l.append(i)\nimport gc\nfor i in range(3): gc.collect()'
    for host in pyembed pyembed_dl; do
        if [[ $host == pyembed ]]; then args=("$code"); else args=("$LIBPYTHON" "$code"); fi
        trace "$host.db" "$PROGS/$host" "${args[@]}"
        assert_eq "$host: exit status" 0 "$RC"
        assert_eq "$host: interpreter found, wrappers in once, frames, statistics taken" "pymalloc|1|1|1" \
            "$(q "$host.db" "SELECT allocator, installs, frames, stats_seq IS NOT NULL FROM python")"
        check_pymalloc "$host.db" "$host"
        assert_eq "$host: the 3 explicit collections" 3 \
            "$("$MEMTRACE" python --csv --section gc "$host.db" | awk -F, '$1 == 2 { print $2 }')"
        assert_eq "$host: the list's capacities" "4 8 16 24 32 40 52 64 76 92 108 128" \
            "$("$MEMTRACE" python --csv --section growth --top 1 "$host.db" | awk -F, 'NR > 1 && NR < 14 { print $4 }' |
               tr '\n' ' ' | sed 's/ $//')"
    done
else
    echo "note: no shared libpython with headers (python3-dev): embedding not tested"
fi

# ---- a C program: no interpreter, nothing changes ----
trace ka.db --python=on "$PROGS/known_allocs"
assert_eq "--python=on on a C program: exit status" 0 "$RC"
assert_true "--python=on on a C program: says no interpreter was found" grep -q "no CPython interpreter" "$WORK/err"
finish
