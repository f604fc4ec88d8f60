#!/usr/bin/env bash
# sigkill.sh - 500 mallocs of 20 bytes then SIGKILL to itself: nothing runs
# in the process afterwards, yet every malloc must be in the trace; memtrace
# exits 137 (128 + SIGKILL) and marks the trace incomplete
# (tests/programs/sigkiller.c).
source "$(dirname "$0")/lib.sh"

trace sk.db "$PROGS/sigkiller"
assert_eq "memtrace exit status (128 + 9)" 137 "$RC"
assert_eq "meta complete" 0 "$(meta sk.db complete)"
assert_true "meta incomplete_reason is set" test -n "$(meta sk.db incomplete_reason)"
assert_eq "events" "malloc|500|10000" "$(q sk.db "SELECT kind, count(*), sum(size) FROM events WHERE domain = 'libc' GROUP BY kind")"
assert_eq "process: exit_status, exit_signal, complete" "|9|0" \
    "$(q sk.db "SELECT exit_status, exit_signal, complete FROM processes")"
assert_eq "killed marker with the signal" "killed|9" \
    "$(q sk.db "SELECT kind, value FROM marker_names WHERE kind = 'killed'")"
assert_eq "stacks were written for the killed process" 500 \
    "$(q sk.db "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id = e.stack_id AND f.depth = 1
                WHERE f.function = 'main'")"
finish
