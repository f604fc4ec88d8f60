#!/usr/bin/env bash
# interrupt.sh - SIGINT and SIGTERM to memtrace while three threads
# allocate as fast as they can (tests/programs/dier.c, spin and stubborn;
# signals.sh has the single-threaded cases):
#
#   SIGTERM: forwarded, the program dies of it; every call each thread
#     counted is in the trace (plus at most the one in flight).
#   Ctrl-C at a terminal (SIGINT to memtrace's whole process group): the
#     same, with memtrace exiting 130.
#   A program that ignores SIGINT: the first SIGINT is forwarded and
#     recording goes on; a second one kills the program and stops recording
#     within a second or two; the database is whole, incomplete, and holds
#     every counted call.
source "$(dirname "$0")/lib.sh"
# the heap layer's counts are compared with the count shim's, which sees the
# mapping calls made through the library's functions only
TRACE_OPTS=(--os=hooks)
export DIER_COUNTS=$WORK/counts

# start [--setsid] DB MODE: memtrace on "dier MODE 0 3" in the background,
# once its threads run
start() {
    local opt=()
    if [[ $1 == --setsid ]]; then
        opt=(--setsid)
        shift
    fi
    rm -f counts
    trace_bg "${opt[@]}" "$1" "$PROGS/dier" "$2" 0 3
}

# all_counted DB WHAT: per thread, the counted calls are in, plus at most 1
all_counted() {
    local t tid calls have
    for t in 0 1 2; do
        read -r tid calls < <(counted_calls counts $t)
        have=$(q "$1" "SELECT count(*) FROM events e JOIN threads t ON t.id = e.thread_id WHERE t.tid = $tid")
        assert_true "$2: thread $t: $calls calls counted, $have recorded (at most 1 in flight)" \
            test "$calls" -gt 0 -a "$have" -ge "$calls" -a "$have" -le $((calls + 1))
    done
}

start term.db spin
sleep 0.1
kill -TERM "$MPID"
RC=0
wait "$MPID" || RC=$?
assert_eq "SIGTERM: memtrace exit status (128 + 15)" 143 "$RC"
assert_eq "SIGTERM: integrity" ok "$(q term.db "PRAGMA integrity_check")"
assert_eq "SIGTERM: process died of signal 15" "15|0" "$(q term.db "SELECT exit_signal, complete FROM processes")"
assert_eq "SIGTERM: meta complete" 0 "$(meta term.db complete)"
all_counted term.db SIGTERM

start --setsid group.db spin
sleep 0.1
kill -INT -- "-$MPID" # memtrace leads its own process group, as in a terminal
RC=0
wait "$MPID" || RC=$?
assert_eq "Ctrl-C to the group: memtrace exit status (128 + 2)" 130 "$RC"
assert_eq "Ctrl-C to the group: integrity" ok "$(q group.db "PRAGMA integrity_check")"
assert_eq "Ctrl-C to the group: process died of signal 2" "2|0" "$(q group.db "SELECT exit_signal, complete FROM processes")"
all_counted group.db "Ctrl-C to the group"

# gone PID: the process has ended (a zombie counts: it runs no more)
gone() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
    [[ -z $st || $st == Z || $st == X ]]
}
running() { [[ -n $1 ]] && ! gone "$1"; }

start twice.db stubborn
target=$(pgrep -P "$MPID" -x dier | head -1)
trap '[[ -n ${target:-} ]] && { kill -KILL "$target" 2>/dev/null || true; }; rm -rf "$WORK"' EXIT # never left running
kill -INT "$MPID"
sleep 0.2
assert_true "first SIGINT, ignored by the program: it runs on" running "$target"
assert_true "first SIGINT: memtrace still recording" kill -0 "$MPID"
t0=$(date +%s%N)
kill -INT "$MPID"
for _ in $(seq 1 100); do
    gone "$target" && break
    sleep 0.01
done
stop_ms=$((($(date +%s%N) - t0) / 1000000))
stopped=no
gone "$target" && stopped=yes
RC=0
wait "$MPID" || RC=$?
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq "second SIGINT: the program stopped within 1 s ($stop_ms ms)" yes "$stopped"
assert_eq "second SIGINT: memtrace exit status (the program was killed: 128 + 9)" 137 "$RC"
# then the database is finished: time in proportion to the events (seconds
# for millions under the sanitizers)
assert_true "second SIGINT: memtrace ended within 20 s ($ms ms)" test "$ms" -lt 20000
assert_eq "second SIGINT: integrity" ok "$(q twice.db "PRAGMA integrity_check")"
assert_eq "second SIGINT: meta complete" 0 "$(meta twice.db complete)"
assert_true "second SIGINT: incomplete_reason says so: $(meta twice.db incomplete_reason)" \
    grep -q -E "^recording stopped by a second signal to memtrace \(process [0-9]+ (killed by signal 9 \(Killed\)|ended without exit \(killed or crashed\))\)$" \
    <<<"$(meta twice.db incomplete_reason)"
assert_eq "second SIGINT: meta events = rows" "$(meta twice.db events)" "$(q twice.db "SELECT count(*) FROM events")"
all_counted twice.db "second SIGINT"
finish
