#!/usr/bin/env bash
# replay.sh - the record stream (MEMTRACE_RECORD_STREAM) and the collector
# alone (bench/collector_replay.c): a recording of 4 threads x 10,000 pairs
# (tests/programs/threads4.c) writes its stream; replayed into a fresh
# database, the stream gives exactly the recorded events, threads, stacks
# and markers; replayed 3 times over, 3 times the events in a sound
# database.  No time is measured here.
source "$(dirname "$0")/lib.sh"

: "${COLLECTOR_REPLAY:?set COLLECTOR_REPLAY to the collector_replay executable}"

# (the events, not event_data's rows: how many releases are folded into
# their allocations' rows depends on how far behind the collector ran)
EVENTS_Q="SELECT count(*), sum(seq), sum(addr % 1000003), sum(size) FROM events"

MEMTRACE_RECORD_STREAM=$WORK/t4.stream trace t4.db "$PROGS/threads4"
assert_eq "memtrace exit status" 0 "$RC"
assert_true "the stream was written" test -s t4.stream

"$COLLECTOR_REPLAY" -o r1.db t4.stream >r1.out 2>r1.err || true
sed 's/^/collector_replay: /' r1.err >&2
assert_eq "replay: events printed = recorded" "$(meta t4.db events)" "$(awk '$1 == "events" { print $2 }' r1.out)"
assert_eq "replay: the same events" "$(q t4.db "$EVENTS_Q")" "$(q r1.db "$EVENTS_Q")"
assert_eq "replay: the same threads" "$(q t4.db "SELECT count(*), sum(first_seq) FROM threads")" \
    "$(q r1.db "SELECT count(*), sum(first_seq) FROM threads")"
assert_eq "replay: the same stacks" "$(q t4.db "SELECT count(*), sum(depth) FROM stacks")" \
    "$(q r1.db "SELECT count(*), sum(depth) FROM stacks")"
assert_eq "replay: the same markers" "$(q t4.db "SELECT count(*), sum(seq) FROM markers")" \
    "$(q r1.db "SELECT count(*), sum(seq) FROM markers")"
assert_eq "replay: integrity" ok "$(q r1.db "PRAGMA integrity_check")"
assert_eq "replay: no late events" 0 "$(meta r1.db late_events)"

"$COLLECTOR_REPLAY" -k 3 -c 16 -o r3.db t4.stream >r3.out 2>r3.err || true
sed 's/^/collector_replay: /' r3.err >&2
assert_eq "3 rounds: 3 times the events" "$(($(meta t4.db events) * 3))" "$(q r3.db "SELECT count(*) FROM events")"
assert_eq "3 rounds: sequence numbers distinct" "$(q r3.db "SELECT count(*) FROM events")" \
    "$(q r3.db "SELECT count(DISTINCT seq) FROM events")"
assert_eq "3 rounds: the same threads" "$(q t4.db "SELECT count(*) FROM threads")" \
    "$(q r3.db "SELECT count(*) FROM threads")"
assert_eq "3 rounds: integrity" ok "$(q r3.db "PRAGMA integrity_check")"

finish
