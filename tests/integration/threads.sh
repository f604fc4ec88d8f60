#!/usr/bin/env bash
# threads.sh - 4 threads x 10,000 malloc/free pairs (tests/programs/threads4.c).
# Worker w allocates 8 + 8w + (i % 16) bytes, so each thread's byte total is
# known: 10000 * (8 + 8w) + 625 * (0 + 1 + ... + 15).
source "$(dirname "$0")/lib.sh"

trace t4.db "$PROGS/threads4"
assert_eq "memtrace exit status" 0 "$RC"
assert_eq "meta complete" 1 "$(meta t4.db complete)"
assert_eq "threads: main + 4 workers" 5 "$(q t4.db "SELECT count(*) FROM threads")"
assert_eq "thread ids are distinct" 5 "$(q t4.db "SELECT count(DISTINCT tid) FROM threads")"
assert_eq "main thread's tid is the pid" 1 \
    "$(q t4.db "SELECT count(*) FROM threads t JOIN processes p ON p.id = t.process_id WHERE t.tid = p.pid")"
assert_eq "mallocs in all" 40000 "$(q t4.db "SELECT count(*) FROM events WHERE kind = 'malloc'")"
assert_eq "events of the worker threads, by kind" "free|40000
malloc|40000" \
    "$(q t4.db "SELECT kind, count(*) FROM events WHERE tid != pid AND domain = 'libc' GROUP BY kind ORDER BY kind")"
assert_eq "worker threads with exactly 10000 mallocs and 10000 frees" 4 \
    "$(q t4.db "SELECT count(*) FROM (SELECT thread_id, sum(kind = 'malloc') AS m, sum(kind = 'free') AS f
                                     FROM events WHERE tid != pid GROUP BY thread_id)
                WHERE m = 10000 AND f = 10000")"
assert_eq "bytes per worker thread" "155000,235000,315000,395000" \
    "$(q t4.db "SELECT group_concat(b) FROM (SELECT sum(size) AS b FROM events WHERE kind = 'malloc'
                                             GROUP BY thread_id ORDER BY b)")"
assert_eq "main thread mallocs" 0 "$(q t4.db "SELECT count(*) FROM events WHERE tid = pid AND kind = 'malloc'")"
assert_eq "no worker block left live" 0 \
    "$(q t4.db "WITH $LIVE_CTE SELECT count(*) FROM live l JOIN events e ON e.seq = l.seq
                WHERE e.tid != e.pid AND e.domain = 'libc'")"
assert_eq "each worker block freed next, by the thread that allocated it" 40000 \
    "$(q t4.db "SELECT count(*) FROM (
                  SELECT kind, thread_id, lead(kind) OVER w AS next_kind, lead(thread_id) OVER w AS next_thread
                  FROM events WHERE tid != pid AND kind IN ('malloc', 'free')
                  WINDOW w AS (PARTITION BY addr ORDER BY seq))
                WHERE kind = 'malloc' AND next_kind = 'free' AND next_thread = thread_id")"
assert_eq "worker mallocs called from worker()" "worker|40000" \
    "$(q t4.db "SELECT f.function, count(*) FROM events e
                JOIN stack_frames f ON f.stack_id = e.stack_id AND f.depth = 1
                WHERE e.kind = 'malloc' AND e.tid != e.pid GROUP BY 1")"
assert_eq "each thread's times never go backwards (seq order)" 0 \
    "$(q t4.db "SELECT count(*) FROM (SELECT ts_ns, lag(ts_ns) OVER (PARTITION BY thread_id ORDER BY seq) AS prev
                                     FROM events) WHERE ts_ns < prev")"
assert_eq "times within the run" 0 \
    "$(q t4.db "SELECT count(*) FROM events
                WHERE ts_ns IS NULL OR ts_ns < 0 OR ts_ns > (SELECT value FROM meta WHERE key = 'duration_ns')")"
assert_eq "a time row serves many events (80,000 events)" 1 \
    "$(q t4.db "SELECT count(*) * 20 < (SELECT value FROM meta WHERE key = 'events') FROM event_times")"
assert_eq "the shared clock's step (meta.time_step_ns)" 100000 "$(meta t4.db time_step_ns)"
assert_eq "the shared clock moves at most once a step" 1 \
    "$(q t4.db "SELECT count(DISTINCT ts_ns) <= (SELECT value FROM meta WHERE key = 'duration_ns') / 100000 + 2
                FROM events")"
trace t4p.db --precise-times "$PROGS/threads4"
assert_eq "--precise-times: memtrace exit status" 0 "$RC"
assert_eq "--precise-times: meta.time_step_ns" 0 "$(meta t4p.db time_step_ns)"
assert_eq "--precise-times: each thread's times never go backwards" 0 \
    "$(q t4p.db "SELECT count(*) FROM (SELECT ts_ns, lag(ts_ns) OVER (PARTITION BY thread_id ORDER BY seq) AS prev
                                      FROM events) WHERE ts_ns < prev")"
assert_eq "--precise-times: every event reads the clock (80,000 events, far more times than steps)" 1 \
    "$(q t4p.db "SELECT count(DISTINCT ts_ns) > 10 * ((SELECT value FROM meta WHERE key = 'duration_ns') / 100000 + 2)
                 FROM events")"
assert_eq "thread_start markers" 4 "$(q t4.db "SELECT count(*) FROM marker_names WHERE kind = 'thread_start'")"

# A collector that falls behind: stopped for half a second while 4 threads
# fill the whole record region (1,024 chunks: five times the event store's
# reorder window), 4 threads' records interleaved in every chunk.  Read
# oldest chunk first it goes in place, none of it "late" (read in index
# order behind a busy program, most of it went in late, one SQLite INSERT
# each).
saved=("${TRACE_OPTS[@]}")
TRACE_OPTS=(--os=hooks)
trace_bg lag.db "$PROGS/threads4" 400000 ready
TRACE_OPTS=("${saved[@]}")
LAGPID=$MPID
kill -STOP "$LAGPID"
sleep 0.5
kill -CONT "$LAGPID"
LAGRC=0
wait "$LAGPID" || LAGRC=$?
assert_eq "stopped collector: memtrace exit status" 0 "$LAGRC"
assert_eq "stopped collector: mallocs" 1600000 "$(q lag.db "SELECT count(*) FROM event_data WHERE kind = 1")"
assert_eq "stopped collector: the backlog went in in order (late_events)" 0 "$(meta lag.db late_events)"

if [[ -n ${COUNT_SHIM:-} && -e ${COUNT_SHIM:-} ]]; then
    shim_counts t4.shim "$PROGS/threads4" || true
    compare_with_shim threads4 t4.shim t4.db heap # mapping calls: os_layer.sh
fi
finish
