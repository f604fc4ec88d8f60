#!/usr/bin/env bash
# known_allocs.sh - every allocation function, in exactly known numbers,
# sizes, alignments and order (tests/programs/known_allocs.c).
source "$(dirname "$0")/lib.sh"
# exact counts of the hooks' view (the OS layer as system calls: os_layer.sh)
TRACE_OPTS=(--os=hooks)

trace ka.db "$PROGS/known_allocs"
assert_eq "memtrace exit status" 0 "$RC"
assert_eq "meta complete" 1 "$(meta ka.db complete)"
assert_eq "meta events" 140 "$(meta ka.db events)"
assert_eq "meta schema_version" 4 "$(meta ka.db schema_version)"
assert_eq "PRAGMA user_version" 4 "$(q ka.db 'PRAGMA user_version')"
assert_eq "PRAGMA application_id" $((0x4d54524b)) "$(q ka.db 'PRAGMA application_id')"

# kind, domain, count, bytes: nothing more, nothing less (no os events either)
assert_eq "events per kind" "aligned_alloc|libc|2|16384
calloc|libc|10|1000
free|libc|68|
malloc|libc|50|20400
memalign|libc|1|100
posix_memalign|libc|3|768
realloc|libc|5|3100
valloc|libc|1|5000" \
    "$(q ka.db "SELECT kind, domain, count(*), sum(size) FROM events GROUP BY kind, domain ORDER BY kind")"

want=$(seq -s, 16 16 800)
assert_eq "malloc sizes in order" "$want" \
    "$(q ka.db "SELECT group_concat(size) FROM (SELECT size FROM events WHERE kind = 'malloc' ORDER BY seq)")"
assert_eq "calloc sizes (4 x 25)" "100|10" "$(q ka.db "SELECT min(size), count(*) FROM events WHERE kind = 'calloc' AND size = 100")"

# the realloc chain: NULL -> a1 -> a2 ... each realloc's old_addr is the previous result
assert_eq "realloc sizes in order" "100,200,400,800,1600" \
    "$(q ka.db "SELECT group_concat(size) FROM (SELECT size FROM events WHERE kind = 'realloc' ORDER BY seq)")"
assert_eq "first realloc has no old block" "" \
    "$(q ka.db "SELECT old_addr FROM events WHERE kind = 'realloc' ORDER BY seq LIMIT 1")"
assert_eq "realloc chain links (old_addr = previous addr)" 4 \
    "$(q ka.db "SELECT count(*) FROM (SELECT old_addr, lag(addr) OVER (ORDER BY seq) AS prev
                                     FROM events WHERE kind = 'realloc') WHERE old_addr = prev")"

assert_eq "alignments honoured (posix_memalign 64, aligned_alloc 4096, memalign 32, valloc page)" 0 \
    "$(q ka.db "SELECT count(*) FROM events WHERE
                  (kind = 'posix_memalign' AND addr % 64 != 0) OR
                  (kind = 'aligned_alloc' AND addr % 4096 != 0) OR
                  (kind = 'memalign' AND addr % 32 != 0) OR
                  (kind = 'valloc' AND addr % 4096 != 0)")"
assert_eq "no failed events" 0 "$(q ka.db "SELECT count(*) FROM events WHERE failed IS NOT NULL")"
assert_eq "live blocks at exit" "0|" "$(q ka.db "WITH $LIVE_CTE SELECT count(*), sum(size) FROM live")"
assert_eq "free(NULL) calls" 0 "$(q ka.db "SELECT sum(free_null) FROM processes")"
assert_eq "seq strictly increasing and unique" 140 "$(q ka.db "SELECT count(DISTINCT seq) FROM events")"

# one process, one thread, ended cleanly
assert_eq "processes" "1|0||1" "$(q ka.db "SELECT count(*), exit_status, exit_signal, complete FROM processes")"
assert_eq "threads" 1 "$(q ka.db "SELECT count(*) FROM threads")"
assert_eq "process exe" "$(readlink -f "$PROGS/known_allocs")" "$(q ka.db "SELECT exe FROM processes")"
assert_eq "meta command" "$PROGS/known_allocs" "$(meta ka.db command)"
assert_eq "markers" "process_start main_enter process_exit:0" \
    "$(q ka.db "SELECT group_concat(kind || CASE WHEN kind = 'process_exit' THEN ':' || value ELSE '' END, ' ')
                FROM (SELECT * FROM marker_names ORDER BY seq)")"

# stacks: every malloc is called from main at the one malloc line
line=$(grep -n 'malloc(16 \* (size_t)k)' "$PROGS_SRC/known_allocs.c" | cut -d: -f1)
assert_eq "malloc call line found in known_allocs.c" 1 "$(wc -w <<<"$line" | tr -d ' ')"
assert_eq "malloc stacks: innermost frame main at known_allocs.c:$line" "main|$line|50" \
    "$(q ka.db "SELECT f.function, f.line, count(*) FROM events e
                JOIN stack_frames f ON f.stack_id = e.stack_id AND f.depth = 1
                WHERE e.kind = 'malloc' AND f.file LIKE '%known_allocs.c' GROUP BY 1, 2")"
assert_eq "every allocation has a stack" 0 \
    "$(q ka.db "SELECT count(*) FROM events WHERE kind != 'free' AND stack_id IS NULL")"

if [[ -n ${COUNT_SHIM:-} && -e ${COUNT_SHIM:-} ]]; then
    shim_counts ka.shim "$PROGS/known_allocs" || true
    compare_with_shim known_allocs ka.shim ka.db
fi
finish
