#!/usr/bin/env bash
# stacks.sh - call stacks under every unwinding mode and stack option.
#
#   leak (frame pointers): the 100 leaked blocks have one stack,
#     leak_one <- leak_on_purpose <- main, under --unwind=auto, fp and dwarf;
#   nofp (built without frame pointers): alloc_here is called 10 times from
#     caller_a and 10 times from caller_b, so under auto and dwarf there are
#     exactly 2 stacks of 10 with the right caller;
#   no stack ever shows a frame of memtrace's own preload library;
#   --no-stacks, --stack-depth 2 and --free-stacks do what they say.
source "$(dirname "$0")/lib.sh"

# preload_frames DB: frames of libmemtrace_preload.so in the stacks of events
preload_frames() {
    q "$1" "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id = e.stack_id
            WHERE f.module LIKE '%libmemtrace_preload.so'"
}

for mode in auto fp dwarf; do
    trace "leak.$mode.db" --unwind="$mode" "$PROGS/leak"
    assert_eq "leak --unwind=$mode: exit status" 0 "$RC"
    assert_eq "leak --unwind=$mode: leaked blocks by stack (depth 1, 2, 3)" "leak_one|leak_on_purpose|main|100" \
        "$(q "leak.$mode.db" "SELECT f1.function, f2.function, f3.function, count(*) FROM events e
            JOIN stack_frames f1 ON f1.stack_id = e.stack_id AND f1.depth = 1
            JOIN stack_frames f2 ON f2.stack_id = e.stack_id AND f2.depth = 2
            JOIN stack_frames f3 ON f3.stack_id = e.stack_id AND f3.depth = 3
            WHERE e.kind = 'malloc' AND e.size = 1000 GROUP BY 1, 2, 3")"
    assert_eq "leak --unwind=$mode: one distinct stack for the leak" 1 \
        "$(q "leak.$mode.db" "SELECT count(DISTINCT stack_id) FROM events WHERE size = 1000")"
    assert_eq "leak --unwind=$mode: no frame of the preload library" 0 "$(preload_frames "leak.$mode.db")"
done

for mode in auto dwarf; do
    trace "nofp.$mode.db" --unwind="$mode" "$PROGS/nofp"
    assert_eq "nofp --unwind=$mode: exit status" 0 "$RC"
    assert_eq "nofp --unwind=$mode: mallocs by (function, caller)" "alloc_here|caller_a|main|10
alloc_here|caller_b|main|10" \
        "$(q "nofp.$mode.db" "SELECT f1.function, f2.function, f3.function, count(*) FROM events e
            LEFT JOIN stack_frames f1 ON f1.stack_id = e.stack_id AND f1.depth = 1
            LEFT JOIN stack_frames f2 ON f2.stack_id = e.stack_id AND f2.depth = 2
            LEFT JOIN stack_frames f3 ON f3.stack_id = e.stack_id AND f3.depth = 3
            WHERE e.kind = 'malloc' GROUP BY 1, 2, 3 ORDER BY 2")"
    assert_eq "nofp --unwind=$mode: distinct stacks" 2 \
        "$(q "nofp.$mode.db" "SELECT count(DISTINCT stack_id) FROM events WHERE kind = 'malloc'")"
    assert_eq "nofp --unwind=$mode: no frame of the preload library" 0 "$(preload_frames "nofp.$mode.db")"
done

trace nostacks.db --no-stacks "$PROGS/leak"
assert_eq "--no-stacks: events with a stack" "0|120" \
    "$(q nostacks.db "SELECT count(stack_id), count(*) FROM events WHERE kind = 'malloc'")"
assert_eq "--no-stacks: meta stack_depth" 0 "$(meta nostacks.db stack_depth)"
assert_eq "--no-stacks: stacks table" 0 "$(q nostacks.db "SELECT count(*) FROM stacks")"

trace depth2.db --stack-depth 2 "$PROGS/leak"
assert_eq "--stack-depth 2: meta stack_depth" 2 "$(meta depth2.db stack_depth)"
assert_eq "--stack-depth 2: frames of the leak's stack" "1|leak_one
2|leak_on_purpose" \
    "$(q depth2.db "SELECT depth, function FROM stack_frames
                    WHERE stack_id = (SELECT stack_id FROM events WHERE size = 1000 LIMIT 1) ORDER BY depth")"
assert_eq "--stack-depth 2: deepest stack of any event" 2 \
    "$(q depth2.db "SELECT max(f.depth) FROM events e JOIN stack_frames f ON f.stack_id = e.stack_id")"

trace default.db "$PROGS/known_allocs"
assert_eq "default: free events have no stack" "0|68" \
    "$(q default.db "SELECT count(stack_id), count(*) FROM events WHERE kind = 'free'")"
trace frees.db --free-stacks "$PROGS/known_allocs"
assert_eq "--free-stacks: free events called from main" "main|68" \
    "$(q frees.db "SELECT f.function, count(*) FROM events e
                   JOIN stack_frames f ON f.stack_id = e.stack_id AND f.depth = 1
                   WHERE e.kind = 'free' GROUP BY 1")"
finish
