#!/usr/bin/env bash
# fold.sh - releases stored in their allocations' rows (event_data.free_delta)
# come back as the events they were: the same traces with every folded
# release given its own row again (by SQL) read the same, row by row
# through the events view and in every analyzer view.
source "$(dirname "$0")/lib.sh"
PYTHON=${PYTHON:-/usr/bin/python3.11}

# check NAME: NAME/t.db as traced, NAME.unfolded/t.db with the folded
# releases as rows of their own (the same file name: outputs name it)
check() {
    local name=$1 folded
    folded=$(q "$name/t.db" "SELECT count(*) FROM event_data WHERE free_delta > 0")
    assert_true "$name: releases stored in their allocations' rows ($folded)" test "$folded" -gt 1000
    mkdir -p "$name.unfolded"
    cp "$name/t.db" "$name.unfolded/t.db"
    sqlite3 -bail "$name.unfolded/t.db" \
        "INSERT INTO event_data(seq, kind, thread, addr, via)
           SELECT e.seq + e.free_delta, k.release_kind, e.thread, e.addr, e.via
           FROM event_data e JOIN event_kinds k ON k.id = e.kind WHERE e.free_delta > 0;
         UPDATE event_data SET free_delta = NULL WHERE free_delta IS NOT NULL;"
    assert_eq "$name: unfolded, no row holds a release" 0 \
        "$(q "$name.unfolded/t.db" "SELECT count(*) FROM event_data WHERE free_delta > 0")"
    assert_eq "$name: unfolded, a row an event" "$(meta "$name/t.db" events)" \
        "$(q "$name.unfolded/t.db" "SELECT count(*) FROM event_data")"
    assert_eq "$name: the events view, row by row" \
        "$(q "$name.unfolded/t.db" "SELECT * FROM events ORDER BY seq" | md5sum)" \
        "$(q "$name/t.db" "SELECT * FROM events ORDER BY seq" | md5sum)"
    local cmd
    for cmd in summary leaks top temporary growth timeline retained peak; do
        assert_eq "$name: memtrace $cmd" \
            "$(cd "$name.unfolded" && "$MEMTRACE" "$cmd" --csv t.db 2>&1 | md5sum)" \
            "$(cd "$name" && "$MEMTRACE" "$cmd" --csv t.db 2>&1 | md5sum)"
    done
    (cd "$name" && "$MEMTRACE" report --csv csv t.db >/dev/null 2>&1)
    (cd "$name.unfolded" && "$MEMTRACE" report --csv csv t.db >/dev/null 2>&1)
    assert_true "$name: memtrace report --csv" diff -r "$name/csv" "$name.unfolded/csv"
    assert_true "$name: report files" test "$(ls "$name/csv" | wc -l)" -ge 10
}

mkdir -p c
trace c/t.db "$PROGS/threads4"
assert_eq "threads4: memtrace exit status" 0 "$RC"
check c

if [[ -x $PYTHON ]]; then
    mkdir -p py
    trace py/t.db "$PYTHON" -c "x = [str(i) for i in range(50000)]; del x; y = [[i] for i in range(20000)]"
    assert_eq "python: memtrace exit status" 0 "$RC"
    check py
    assert_true "python: object releases among the folded" \
        test "$(q py/t.db "SELECT count(*) FROM event_data WHERE kind = 23 AND free_delta > 0")" -gt 1000
fi
finish
