#!/usr/bin/env bash
# crash.sh - the program dies at a point chosen at random; the trace must
# open, say it is incomplete and why, and hold every call made up to the
# death (tests/programs/dier.c).
#
#   segv, abort, kill, oom (its own RLIMIT_AS, then abort as xmalloc does):
#     R rounds, R random, then the death.  The count shim counts a run of
#     the same R rounds that exits instead: every kind must match exactly
#     (the oom run has its 1 MiB blocks on top: 63 made, the 64th failed).
#   spin, killed from outside: 3 threads loop on malloc + free, each
#     counting its finished calls in a shared file; SIGKILL after a random
#     delay.  Per thread the trace holds the counted calls plus at most the
#     one in flight.
#   hog in a memory cgroup of 64 MiB (cgroup v1, root only; skipped
#     otherwise): the kernel's out-of-memory killer ends it; the counted
#     1 MiB mallocs are all in, plus at most the one in flight.
# abort.sh and sigkill.sh check the marker and stacks of such deaths.
source "$(dirname "$0")/lib.sh"
# the heap layer's counts are compared with the count shim's, which sees the
# mapping calls made through the library's functions only
TRACE_OPTS=(--os=hooks)
ulimit -c 0 # no core files

[[ -n ${COUNT_SHIM:-} ]] || { echo "COUNT_SHIM not set: skipped"; exit 77; }
DIER=$PROGS/dier

# died DB MODE SIGNAL: the checks every death shares
died() {
    local db=$1 mode=$2 sig=$3
    assert_eq "$mode: memtrace exit status (128 + $sig)" $((128 + sig)) "$RC"
    assert_eq "$mode: integrity" ok "$(q "$db" "PRAGMA integrity_check")"
    assert_eq "$mode: meta complete" 0 "$(meta "$db" complete)"
    assert_true "$mode: incomplete_reason names signal $sig" \
        grep -q "killed by signal $sig " <<<"$(meta "$db" incomplete_reason)"
    assert_eq "$mode: process died of signal $sig" "|$sig|0" \
        "$(q "$db" "SELECT exit_status, exit_signal, complete FROM processes")"
    assert_eq "$mode: meta events = rows" "$(meta "$db" events)" "$(q "$db" "SELECT count(*) FROM events")"
}

for mode in segv abort kill oom; do
    rounds=$((RANDOM % 3000 + 1))
    echo "--- $mode after $rounds rounds"
    shim_counts shim.$mode "$DIER" exit "$rounds"
    trace $mode.db "$DIER" "$mode" "$rounds"
    case $mode in
    segv) sig=11 ;;
    abort | oom) sig=6 ;;
    kill) sig=9 ;;
    esac
    died $mode.db "$mode" $sig
    if [[ $mode == oom ]]; then
        assert_eq "oom: 1 MiB mallocs (63 made, 1 failed)" "|63
1|1" "$(q oom.db "SELECT failed, count(*) FROM events WHERE kind = 'malloc' AND size = 1048576
                   GROUP BY failed ORDER BY failed")"
        # what is left is the rounds: compare them with the shim
        sqlite3 oom.db "DELETE FROM event_data WHERE size = 1048576" 2>/dev/null ||
            fail "oom: could not drop the 1 MiB mallocs for the comparison"
    fi
    compare_with_shim "$mode after $rounds rounds" shim.$mode $mode.db
done

# ---- killed from outside at a random moment ----
export DIER_COUNTS=$WORK/spin.counts
rm -f spin.counts
trace_bg spin.db "$DIER" spin 0 3
sleep "0.$((RANDOM % 400 + 50))"
target=$(pgrep -P "$MPID" -x dier | head -1)
kill -KILL "$target"
RC=0
wait "$MPID" || RC=$?
died spin.db spin 9
for t in 0 1 2; do
    read -r tid calls < <(counted_calls spin.counts $t)
    have=$(q spin.db "SELECT count(*) FROM events e JOIN threads t ON t.id = e.thread_id WHERE t.tid = $tid")
    assert_true "spin thread $t: $calls calls counted, $have recorded (at most 1 in flight)" \
        test "$have" -ge "$calls" -a "$have" -le $((calls + 1))
    assert_true "spin thread $t: ran a while ($calls calls)" test "$calls" -gt 2000
done

# ---- out-of-memory kill by a memory cgroup ----
cg=/sys/fs/cgroup/memory/memtrace-test.$$
if mkdir "$cg" 2>/dev/null; then
    echo $((64 << 20)) >"$cg/memory.limit_in_bytes"
    echo 0 >"$cg/memory.swappiness" 2>/dev/null || true
    export DIER_COUNTS=$WORK/hog.counts
    rm -f hog.counts out
    # the program joins the cgroup itself (memtrace stays outside)
    "$MEMTRACE" -q -o hog.db --os=hooks sh -c "echo \$\$ >$cg/cgroup.procs && exec $DIER hog 0" >out 2>err &
    MPID=$!
    RC=0
    wait "$MPID" || RC=$?
    rmdir "$cg" 2>/dev/null || true
    assert_eq "hog: memtrace exit status (128 + 9)" 137 "$RC"
    assert_eq "hog: integrity" ok "$(q hog.db "PRAGMA integrity_check")"
    assert_eq "hog: meta complete" 0 "$(meta hog.db complete)"
    assert_eq "hog: the hog's image died of SIGKILL" "9|0" \
        "$(q hog.db "SELECT exit_signal, complete FROM processes WHERE exe LIKE '%/dier'")"
    read -r tid calls < <(counted_calls hog.counts 0)
    have=$(q hog.db "SELECT count(*) FROM events WHERE kind = 'malloc' AND size = 1048576")
    assert_true "hog: $calls mallocs counted, $have recorded (at most 1 in flight)" \
        test "$have" -ge "$calls" -a "$have" -le $((calls + 1)) -a "$calls" -gt 10
else
    echo "no memory cgroup to make (not root, or no cgroup v1 memory controller): out-of-memory kill skipped"
fi
finish
