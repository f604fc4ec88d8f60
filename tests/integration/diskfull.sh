#!/usr/bin/env bash
# diskfull.sh - the database's file system fills up, or memtrace reaches a
# file size limit, while a program makes about 1.4 million calls
# (tests/programs/dier.c, 200,000 rounds):
#   - memtrace says so in one line, stops recording, and exits 1;
#   - the program is neither killed nor stopped: it runs to its end;
#   - the database opens, passes integrity_check, is marked incomplete with
#     the cause, and keeps the events written before the failure (the
#     newest dropped as far as needed to make room for the rest).
# Cases: a tmpfs of 8 MiB (root only; skipped otherwise), and a soft
# RLIMIT_FSIZE of 4 MiB (ulimit -S -f; the program inherits it too).
source "$(dirname "$0")/lib.sh"

# full DB WHAT: the checks of a recording that ran out of room
full() {
    local db=$1 what=$2
    assert_eq "$what: memtrace exit status" 1 "$RC"
    assert_true "$what: the program ran to its end" grep -q finished out
    assert_true "$what: stderr says why" grep -q "^memtrace: writing $db failed: disk full or file size limit reached" err
    assert_true "$what: and what was kept" grep -q "^memtrace: $db keeps the [0-9]* events written before that" err
    assert_eq "$what: integrity" ok "$(q "$db" "PRAGMA integrity_check")"
    assert_eq "$what: meta complete" 0 "$(meta "$db" complete)"
    assert_eq "$what: incomplete_reason" \
        "recording stopped: writing the database failed (disk full or file size limit reached)" \
        "$(meta "$db" incomplete_reason)"
    local n
    n=$(q "$db" "SELECT count(*) FROM events")
    assert_eq "$what: meta events = rows" "$(meta "$db" events)" "$n"
    assert_true "$what: events written before the failure were kept ($n)" test "$n" -gt 10000
    assert_true "$what: but not all 1.4 million" test "$n" -lt 1000000
    # (a release stored in its allocation's row is kept with it, even when
    # it came after the last row kept)
    assert_eq "$what: the kept events are the first ones: every seq up to the last row's is an event or a marker" 1 \
        "$(q "$db" "WITH last(l) AS (SELECT max(seq) FROM event_data)
                    SELECT (SELECT count(*) FROM events, last WHERE seq <= l)
                           + (SELECT count(*) FROM marker_names, last WHERE seq < l) = l FROM last")"
    assert_eq "$what: after it, only releases stored in the rows kept" 0 \
        "$(q "$db" "SELECT count(*) FROM events e JOIN event_kinds k ON k.name = e.kind
                    WHERE e.seq > (SELECT max(seq) FROM event_data)
                      AND k.id NOT IN (SELECT release_kind FROM event_kinds WHERE release_kind IS NOT NULL)")"
    assert_eq "$what: the kept events have their times" "0|" \
        "$(q "$db" "SELECT count(*), (SELECT value FROM meta WHERE key = 'times_lost') FROM events
                    WHERE ts_ns IS NULL OR ts_ns < 0")"
    assert_eq "$what: summary reads it" 0 "$("$MEMTRACE" summary "$db" >/dev/null 2>&1; echo $?)"
}

cmd=(sh -c "\"$PROGS/dier\" exit 200000 && echo finished")

mkdir small
if mount -t tmpfs -o size=8m memtrace-test small 2>/dev/null; then
    trap 'umount "$WORK/small" 2>/dev/null || true; rm -rf "$WORK"' EXIT
    trace small/full.db "${cmd[@]}"
    full small/full.db "tmpfs of 8 MiB"
    umount small
else
    echo "cannot mount a tmpfs (not root): the full file system case is skipped"
fi

RC=0
(ulimit -S -f 4096 && "$MEMTRACE" -q -o fsize.db "${cmd[@]}" >out 2>err) || RC=$?
sed 's/^/memtrace stderr: /' err >&2
full fsize.db "file size limit of 4 MiB"
assert_true "file size limit: the database stays within it" test "$(stat -c %s fsize.db)" -le $((4096 * 1024))
finish
