#!/usr/bin/env bash
# signals.sh - signals sent to memtrace reach the program, and the trace
# keeps what was recorded (tests/programs/waiter.c).
#
#   SIGTERM to memtrace, program without a handler: the program dies of it,
#     memtrace exits 143 (128 + 15), the 100 mallocs are in, incomplete;
#   SIGTERM to memtrace, program that handles it: the program frees its 100
#     blocks and exits 0: memtrace exits 0, 100 frees;
#   SIGINT to memtrace: forwarded, the program dies of it, memtrace exits
#     130 and the database is intact.
source "$(dirname "$0")/lib.sh"

# start DB ARGS...: memtrace on waiter in the background, once it is ready
start() {
    local db=$1
    shift
    trace_bg "$db" "$PROGS/waiter" "$@"
}

start term.db
kill -TERM "$MPID"
RC=0
wait "$MPID" || RC=$?
assert_eq "SIGTERM, no handler: memtrace exit status" 143 "$RC"
assert_eq "SIGTERM, no handler: events" "malloc|100|6400" \
    "$(q term.db "SELECT kind, count(*), sum(size) FROM events WHERE domain = 'libc' GROUP BY kind")"
assert_eq "SIGTERM, no handler: process died of signal 15" "15|0" \
    "$(q term.db "SELECT exit_signal, complete FROM processes")"
assert_eq "SIGTERM, no handler: meta complete" 0 "$(meta term.db complete)"

start handled.db handle
kill -TERM "$MPID"
RC=0
wait "$MPID" || RC=$?
assert_eq "SIGTERM, handled: memtrace exit status" 0 "$RC"
assert_eq "SIGTERM, handled: events" "free|100|
malloc|100|6400" "$(q handled.db "SELECT kind, count(*), sum(size) FROM events WHERE domain = 'libc' GROUP BY kind ORDER BY kind")"
assert_eq "SIGTERM, handled: process exit status" "0||1" \
    "$(q handled.db "SELECT exit_status, exit_signal, complete FROM processes")"
assert_eq "SIGTERM, handled: nothing was cut short, meta complete" 1 "$(meta handled.db complete)"

start int.db
kill -INT "$MPID"
RC=0
wait "$MPID" || RC=$?
assert_eq "SIGINT: memtrace exit status" 130 "$RC"
assert_eq "SIGINT: events" "malloc|100" "$(q int.db "SELECT kind, count(*) FROM events WHERE domain = 'libc' GROUP BY kind")"
assert_eq "SIGINT: integrity" ok "$(q int.db "PRAGMA integrity_check")"
finish
