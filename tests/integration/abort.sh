#!/usr/bin/env bash
# abort.sh - 1000 mallocs of 10 bytes then abort(): memtrace exits 134
# (128 + SIGABRT), the trace is marked incomplete and still holds every
# malloc (tests/programs/aborter.c).
source "$(dirname "$0")/lib.sh"
ulimit -c 0 # no core file

trace ab.db "$PROGS/aborter"
assert_eq "memtrace exit status (128 + 6)" 134 "$RC"
assert_eq "meta complete" 0 "$(meta ab.db complete)"
assert_true "meta incomplete_reason is set" test -n "$(meta ab.db incomplete_reason)"
assert_eq "meta events = rows" "$(q ab.db "SELECT count(*) FROM events")" "$(meta ab.db events)"
assert_eq "heap events" "malloc|1000|10000" \
    "$(q ab.db "SELECT kind, count(*), sum(size) FROM events WHERE domain = 'libc' GROUP BY kind")"
assert_eq "process: exit_status, exit_signal, complete" "|6|0" \
    "$(q ab.db "SELECT exit_status, exit_signal, complete FROM processes")"
assert_eq "killed marker with the signal" "killed|6" \
    "$(q ab.db "SELECT kind, value FROM marker_names WHERE kind = 'killed'")"
assert_eq "killed marker after every event" 1 \
    "$(q ab.db "SELECT (SELECT seq FROM marker_names WHERE kind = 'killed') > (SELECT max(seq) FROM events)")"
assert_eq "no process_exit marker" 0 "$(q ab.db "SELECT count(*) FROM marker_names WHERE kind = 'process_exit'")"
finish
