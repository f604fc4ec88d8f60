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
finish
