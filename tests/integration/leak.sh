#!/usr/bin/env bash
# leak.sh - a known leak: 100 blocks of 1000 bytes from leak_one(), called by
# leak_on_purpose(), beside 20 temporaries that are freed
# (tests/programs/leak.c).  The leak must be found with exact numbers, the
# function, the file and the line of the malloc.
source "$(dirname "$0")/lib.sh"
# exact counts of the hooks' view (the OS layer as system calls: os_layer.sh)
TRACE_OPTS=(--os=hooks)

line=$(grep -n 'malloc(LEAK_SIZE)' "$PROGS_SRC/leak.c" | cut -d: -f1)
assert_eq "leaking malloc line found in leak.c" 1 "$(wc -w <<<"$line" | tr -d ' ')"
caller_line=$(grep -n 'leak_one(i);' "$PROGS_SRC/leak.c" | cut -d: -f1)

trace leak.db "$PROGS/leak"
assert_eq "memtrace exit status" 0 "$RC"
assert_eq "meta complete" 1 "$(meta leak.db complete)"
assert_eq "events per kind" "free|20|
malloc|120|100960" \
    "$(q leak.db "SELECT kind, count(*), sum(size) FROM events GROUP BY kind ORDER BY kind")"

assert_eq "leaked blocks and bytes" "100|100000" \
    "$(q leak.db "WITH $LIVE_CTE SELECT count(*), sum(size) FROM live")"
assert_eq "leak by innermost frame (function, file, line)" "leak_one|leak.c|$line|100|100000" \
    "$(q leak.db "WITH $LIVE_CTE
                  SELECT f.function, replace(f.file, rtrim(f.file, replace(f.file, '/', '')), ''),
                         f.line, count(*), sum(l.size)
                  FROM live l JOIN stack_frames f ON f.stack_id = l.stack_id AND f.depth = 1
                  GROUP BY 1, 2, 3")"
assert_eq "leak's caller (depth 2)" "leak_on_purpose|$caller_line|100" \
    "$(q leak.db "WITH $LIVE_CTE
                  SELECT f.function, f.line, count(*)
                  FROM live l JOIN stack_frames f ON f.stack_id = l.stack_id AND f.depth = 2
                  GROUP BY 1, 2")"
assert_eq "leak's stacks reach main (depth 3)" "main|100" \
    "$(q leak.db "WITH $LIVE_CTE
                  SELECT f.function, count(*)
                  FROM live l JOIN stack_frames f ON f.stack_id = l.stack_id AND f.depth = 3
                  GROUP BY 1")"
assert_eq "one distinct stack for the 100 leaked blocks" 1 \
    "$(q leak.db "WITH $LIVE_CTE SELECT count(DISTINCT stack_id) FROM live")"
assert_eq "leaking module is the program" "$(readlink -f "$PROGS/leak")" \
    "$(q leak.db "WITH $LIVE_CTE SELECT DISTINCT f.module FROM live l
                  JOIN stack_frames f ON f.stack_id = l.stack_id AND f.depth = 1")"
assert_eq "temporaries (48 bytes) all freed" "20|0" \
    "$(q leak.db "WITH $LIVE_CTE SELECT (SELECT count(*) FROM events WHERE kind = 'malloc' AND size = 48),
                                        (SELECT count(*) FROM live WHERE size = 48)")"
assert_eq "temporaries allocated in keep_temporaries" "keep_temporaries|20" \
    "$(q leak.db "SELECT f.function, count(*) FROM events e
                  JOIN stack_frames f ON f.stack_id = e.stack_id AND f.depth = 1
                  WHERE e.kind = 'malloc' AND e.size = 48 GROUP BY 1")"
# ---- the derived lifetimes table: built by the first query that names it ----
cp leak.db ro.db
chmod a-w ro.db
rc=0
"$MEMTRACE" query ro.db "SELECT count(*) FROM lifetimes" >o 2>e || rc=$?
if [[ $(id -u) != 0 ]]; then # root writes read-only files anyway
    assert_eq "lifetimes on a read-only trace: exit 1, one line" "1|1" "$rc|$(nlines e)"
fi
assert_eq "leaked blocks from lifetimes (no end) = the leak" "100,100000" \
    "$(mq leak.db "SELECT count(*), sum(size) FROM lifetimes WHERE layer = 0 AND end_seq IS NULL")"
assert_eq "the table stays in the trace" 1 "$(q leak.db "SELECT count(*) FROM sqlite_schema WHERE name = 'lifetimes'")"
assert_eq "one row per allocation event, each ended at most once" \
    "$(q leak.db "SELECT count(*) FROM event_data e JOIN event_kinds k ON k.id = e.kind WHERE k.is_alloc AND e.failed IS NULL
                   AND e.addr != 0")|0" \
    "$(q leak.db "SELECT count(*), (SELECT count(*) FROM (SELECT end_seq FROM lifetimes WHERE end_seq IS NOT NULL
                   AND end_kind IN (0, 11) GROUP BY end_seq HAVING count(*) > 1)) FROM lifetimes")"
assert_eq "temporaries (48 bytes) lived from their malloc to their free in keep_temporaries" "20|20" \
    "$(q leak.db "SELECT count(*), sum(l.end_kind = 0) FROM lifetimes l WHERE l.size = 48 AND l.layer = 0")"
assert_eq "memtrace derive again: already there" "lifetimes is already in leak.db" "$("$MEMTRACE" derive leak.db)"
assert_true "memtrace derive --force: rebuilt" grep -q "^lifetimes: " <<<"$("$MEMTRACE" derive --force leak.db)"
finish
