#!/usr/bin/env bash
# query.sh - `memtrace query` answers read-only SQL and refuses writes;
# `memtrace summary` reports a known leak.
source "$(dirname "$0")/lib.sh"
# exact counts of the hooks' view (the OS layer as system calls: os_layer.sh)
TRACE_OPTS=(--os=hooks)

trace ka.db "$PROGS/known_allocs"
assert_eq "trace recorded" 0 "$RC"

# ---- query ----
rc=0
out=$("$MEMTRACE" query ka.db "SELECT count(*) FROM events") || rc=$?
assert_eq "query: exit status" 0 "$rc"
assert_true "query: table output holds 140" grep -qw 140 <<<"$out"
assert_eq "query --csv: header and row" "count(*)
140" "$("$MEMTRACE" query --csv ka.db "SELECT count(*) FROM events")"
assert_eq "query --csv --no-header: per kind" "$(q ka.db "SELECT kind || ',' || count(*) FROM events GROUP BY kind ORDER BY kind")" \
    "$(mq ka.db "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")"
assert_eq "query --csv: NULL is an empty field" "," "$(mq ka.db "SELECT NULL, NULL")"
assert_eq "query --csv: quoting" '"a,b","say ""hi"""' "$(mq ka.db "SELECT 'a,b', 'say \"hi\"'")"

for sql in "DELETE FROM event_data" "DROP TABLE meta" "UPDATE meta SET value = 0 WHERE key = 'complete'" \
    "INSERT INTO meta VALUES ('x', 1)" "PRAGMA user_version = 7" "CREATE TABLE t(x)" \
    "ATTACH '$WORK/new.db' AS n"; do
    rc=0
    "$MEMTRACE" query ka.db "$sql" >"$WORK/o" 2>"$WORK/e" || rc=$?
    assert_eq "write refused: $sql: exit status" 1 "$rc"
    assert_eq "write refused: $sql: lines on stderr" 1 "$(nlines "$WORK/e")"
done
rc=0
"$MEMTRACE" query ka.db "SELECT 1; DELETE FROM event_data" >/dev/null 2>&1 || rc=$?
assert_eq "trace unchanged after the refused writes" "140|1|4|0" \
    "$(q ka.db "SELECT (SELECT count(*) FROM events), (SELECT value FROM meta WHERE key = 'complete'),
                       (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM meta WHERE key = 'x')")"
assert_true "no file created by ATTACH" test ! -e "$WORK/new.db"
rc=0
"$MEMTRACE" query ka.db "SELEC nonsense" >"$WORK/o" 2>"$WORK/e" || rc=$?
assert_eq "syntax error: exit status" 1 "$rc"
assert_eq "syntax error: lines on stderr" 1 "$(nlines "$WORK/e")"

# ---- summary ----
trace leak.db "$PROGS/leak"
rc=0
"$MEMTRACE" summary leak.db >summary.txt 2>"$WORK/e" || rc=$?
assert_eq "summary: exit status" 0 "$rc"
assert_true "summary: names the leaking function leak_one" grep -q leak_one summary.txt
assert_true "summary: shows the leaked bytes (100,000 / 100000 / 97.7 KiB)" \
    grep -Eq '100,000|100000|97\.7 KiB' summary.txt
assert_true "summary: shows the leak's line leak.c:$(grep -n 'malloc(LEAK_SIZE)' "$PROGS_SRC/leak.c" | cut -d: -f1)" \
    grep -q "leak.c:$(grep -n 'malloc(LEAK_SIZE)' "$PROGS_SRC/leak.c" | cut -d: -f1)" summary.txt
rc=0
"$MEMTRACE" summary --csv leak.db >summary.csv 2>"$WORK/e" || rc=$?
assert_eq "summary --csv: exit status" 0 "$rc"
assert_true "summary --csv: names leak_one" grep -q leak_one summary.csv
finish
