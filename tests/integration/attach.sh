#!/usr/bin/env bash
# attach.sh - `memtrace attach PID` on a running process (tests/programs/
# ticker.c: every 10 ms an mmap of 1 MiB and its munmap, the round number
# written to a file):
#
#   SIGINT to memtrace detaches: memtrace exits 0, the process keeps running
#     untraced (TracerPid 0, its counter still moving), and the trace holds
#     its mmap/munmap pairs, flagged incomplete (detached);
#   a process that ends while attached ends the recording: its exit signal
#     is in the trace;
#   bad input: no PID, a PID that is not a number, no such process.
source "$(dirname "$0")/lib.sh"

TICKERS=()
cleanup() { for p in "${TICKERS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# start_ticker: runs the ticker in the background; its pid in TPID
start_ticker() {
    rm -f tout count
    "$PROGS/ticker" "$WORK/count" >tout &
    TPID=$!
    TICKERS+=("$TPID")
    for _ in $(seq 1 100); do
        grep -q ready tout 2>/dev/null && return 0
        sleep 0.05
    done
    fail "ticker did not start"
}

start_ticker
"$MEMTRACE" attach -q -o at.db "$TPID" >out 2>err &
MPID=$!
sleep 0.5
kill -INT "$MPID"
RC=0
wait "$MPID" || RC=$?
assert_eq "SIGINT: memtrace attach exits 0" 0 "$RC"
assert_eq "SIGINT: nothing on stderr" "" "$(cat err)"
assert_eq "the process is still there, no longer traced" "0" \
    "$(awk '/^TracerPid:/ { print $2 }' "/proc/$TPID/status" 2>/dev/null || echo gone)"
# round_now: the ticker's round (its file is rewritten each round: read
# until it is not caught empty)
round_now() {
    local v=
    for _ in $(seq 1 50); do
        v=$(cat count 2>/dev/null) && [[ -n $v ]] && break
        sleep 0.01
    done
    echo "${v:-0}"
}
a=$(round_now)
sleep 0.3
b=$(round_now)
assert_true "the process keeps running after the detach (round $a, then $b)" test "$b" -gt "$a"
assert_eq "meta mode, complete" "attach|0" \
    "$(q at.db "SELECT (SELECT value FROM meta WHERE key = 'mode'), (SELECT value FROM meta WHERE key = 'complete')")"
assert_eq "meta incomplete_reason" "detached from process $TPID, which kept running" "$(meta at.db incomplete_reason)"
assert_eq "one process row: its pid and executable" "1|$TPID|ticker" \
    "$(q at.db "SELECT count(*), pid, replace(exe, rtrim(exe, replace(exe, '/', '')), '') FROM processes")"
rounds=$(q at.db "SELECT count(*) FROM events WHERE kind = 'mmap' AND size = 1048576")
assert_true "several rounds recorded ($rounds)" test "$rounds" -ge 5
assert_eq "only its 1 MiB mmap and munmap calls" "0" \
    "$(q at.db "SELECT count(*) FROM events WHERE NOT (kind IN ('mmap', 'munmap') AND size = 1048576)")"
assert_eq "each munmap unmaps the mapping of the mmap just before it" \
    "$(q at.db "SELECT count(*) FROM events WHERE kind = 'munmap'")" \
    "$(q at.db "SELECT count(*) FROM events u WHERE u.kind = 'munmap' AND u.addr =
                (SELECT m.addr FROM events m WHERE m.kind = 'mmap' AND m.seq < u.seq ORDER BY m.seq DESC LIMIT 1)")"
assert_true "mmap and munmap counts differ by at most the round cut by the detach" \
    test "$(q at.db "SELECT sum(kind = 'mmap') - sum(kind = 'munmap') BETWEEN 0 AND 1 FROM events")" = 1
kill -9 "$TPID"

# the process ends while attached: recording ends with it
start_ticker
"$MEMTRACE" attach -q -o end.db "$TPID" >out 2>err &
MPID=$!
sleep 0.3
kill -TERM "$TPID"
RC=0
wait "$MPID" || RC=$?
assert_eq "ended: memtrace attach exits 0 by itself" 0 "$RC"
assert_eq "ended: the process's exit signal, complete" "15|0" \
    "$(q end.db "SELECT exit_signal, complete FROM processes")"

# bad input: one line on stderr, non-zero status
for args in "" "12x" "999999999" ; do
    RC=0
    # shellcheck disable=SC2086
    "$MEMTRACE" attach $args >out 2>err || RC=$?
    assert_true "attach '$args': fails" test "$RC" -ne 0
    assert_eq "attach '$args': one line on stderr" 1 "$(nlines err)"
done
# a process another tracer holds: one line that says so and what to do
if command -v strace >/dev/null; then
    sleep 30 &
    held=$!
    strace -p "$held" -o /dev/null 2>/dev/null &
    st=$!
    for _ in $(seq 50); do
        [[ $(awk '/TracerPid/ { print $2 }' "/proc/$held/status" 2>/dev/null) != 0 ]] && break
        sleep 0.1
    done
    RC=0
    "$MEMTRACE" attach -o held.db "$held" >out 2>err || RC=$?
    kill "$st" "$held" 2>/dev/null || true
    wait "$st" "$held" 2>/dev/null || true
    assert_true "attach to a process already traced: fails" test "$RC" -ne 0
    assert_eq "attach to a process already traced: one line" 1 "$(nlines err)"
    assert_true "attach to a process already traced: says by whom and what to do" grep -q "already traced by process .*detach that first" err
fi
finish
