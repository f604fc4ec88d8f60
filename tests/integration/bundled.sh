#!/usr/bin/env bash
# bundled.sh - --allocator=bundled: the bundled allocator (lib/pym.h) serves
# the program's malloc, and its internal transitions are recorded.
#
# known_allocs under the bundled allocator, worked out by hand:
#   - malloc(16*k), k = 1..32, one block in each of the 32 size classes:
#     32 pool_init, 32 block_alloc_newpool (the first also an arena_alloc);
#   - calloc(4, 25) x 10 and the realloc chain's 100, 200 and 400 bytes:
#     13 blocks from pools already started (block_alloc_bump);
#   - everything above 512 bytes or aligned above 16 goes to the C library:
#     malloc 528..800 (18), realloc to 800 and to 1600, posix_memalign (3),
#     aligned_alloc (2), memalign (1), valloc (1): 27 fallback_alloc;
#   - every block is freed: 45 block_free, 32 pool_empty, 27 fallback_free;
#     the arena stays (one empty arena is kept), so no arena_free.
# The program's own events are the same as under the C library's malloc.
# The layout rebuilt from the events must equal the allocator's own
# statistics (allocator_stats, taken at exit) exactly, for every class and
# for the arenas, in every trace here.
source "$(dirname "$0")/lib.sh"
# exact counts of the hooks' view (the OS layer as system calls: os_layer.sh)
TRACE_OPTS=(--os=hooks)

# mismatches DB: classes (and the arena total) where the events before the
# snapshot disagree with allocator_stats
mismatches() {
    q "$1" "WITH ev AS (SELECT a.process_id, a.kind, a.size_class FROM allocator_events a
                        JOIN allocator_stats s ON s.process_id = a.process_id AND s.size_class IS NULL
                        WHERE a.seq < s.seq),
             rec AS (SELECT process_id, size_class,
                            sum(kind = 'pool_init') - sum(kind = 'pool_empty') AS in_use,
                            sum(kind = 'pool_full') - sum(kind = 'pool_reuse') AS full,
                            sum(kind LIKE 'block_alloc%') - sum(kind = 'block_free') AS blocks
                     FROM ev WHERE size_class IS NOT NULL GROUP BY process_id, size_class),
             arenas AS (SELECT process_id, sum(kind = 'arena_alloc') - sum(kind = 'arena_free') AS n
                        FROM ev GROUP BY process_id)
        SELECT ((SELECT count(*) FROM allocator_stats s
                LEFT JOIN rec r ON r.process_id = s.process_id AND r.size_class = s.size_class
                WHERE s.size_class IS NOT NULL
                  AND (s.pools_used + s.pools_full != coalesce(r.in_use, 0) OR s.pools_full != coalesce(r.full, 0)
                       OR s.blocks_used != coalesce(r.blocks, 0)))
             + (SELECT count(*) FROM allocator_stats s LEFT JOIN arenas a ON a.process_id = s.process_id
                WHERE s.size_class IS NULL AND s.arenas != coalesce(a.n, 0)))
             || '/' || (SELECT count(*) FROM allocator_stats)"
}

trace ka.db --allocator=bundled "$PROGS/known_allocs"
assert_eq "exit status" 0 "$RC"
assert_eq "meta allocator" bundled "$(meta ka.db allocator)"
assert_eq "the program's events" "aligned_alloc|2|16384
calloc|10|1000
free|68|
malloc|50|20400
memalign|1|100
posix_memalign|3|768
realloc|5|3100
valloc|1|5000" "$(q ka.db "SELECT kind, count(*), sum(size) FROM events WHERE domain = 'libc' GROUP BY kind ORDER BY kind")"
assert_eq "allocator events by kind" "arena_alloc|1
block_alloc_bump|13
block_alloc_newpool|32
block_free|45
fallback_alloc|27
fallback_free|27
pool_empty|32
pool_init|32" "$(q ka.db "SELECT kind, count(*) FROM allocator_events GROUP BY kind ORDER BY kind")"
assert_eq "the first malloc: arena, pool of class 0, its first block, then the malloc" \
    "arena_alloc||
pool_init|0|
block_alloc_newpool|0|16
malloc||16" \
    "$(q ka.db "SELECT k.name, e.size_class, CASE WHEN k.name IN ('malloc', 'block_alloc_newpool') THEN e.size END
                FROM event_data e JOIN event_kinds k ON k.id = e.kind ORDER BY e.seq LIMIT 4")"
assert_eq "allocator's own statistics at exit: 1 arena, no block in use" "1|0|0" \
    "$(q ka.db "SELECT arenas, blocks_used, bad_frees FROM allocator_stats WHERE size_class IS NULL")"
assert_eq "layout from events = allocator's statistics (mismatches/rows)" "0/33" "$(mismatches ka.db)"
assert_eq "every pool_init names a distinct class" 32 \
    "$(q ka.db "SELECT count(DISTINCT size_class) FROM allocator_events WHERE kind = 'pool_init'")"
assert_eq "blocks lie in their pools, pools in their arena" 0 \
    "$(q ka.db "SELECT count(*) FROM allocator_events
                WHERE kind LIKE 'block%' AND (block < pool OR block >= pool + 16384 OR pool < arena
                                              OR pool >= arena + 1048576)")"
assert_eq "the malloc's block is the one the allocator handed out" 0 \
    "$(q ka.db "SELECT count(*) FROM events m
                JOIN allocator_events b ON b.seq = (SELECT max(seq) FROM allocator_events
                                                    WHERE seq < m.seq AND kind LIKE 'block_alloc%')
                WHERE m.kind = 'malloc' AND m.size <= 512 AND b.block != m.addr")"

# a double free and a free of a pointer inside a block: detected, recorded
# with their reasons (lib/pym.h PYM_BAD_FREES: 4 freelist_head, 5
# not_block_start), ignored; the program goes on and exits 0
trace df.db --allocator=bundled "$PROGS/doublefree"
assert_eq "double free: exit status" 0 "$RC"
assert_eq "double free: events (kind, reason)" "double_free|4
double_free|5" "$(q df.db "SELECT kind, value FROM allocator_events WHERE kind = 'double_free' ORDER BY seq")"
assert_eq "double free: counted in the allocator's statistics" 2 \
    "$(q df.db "SELECT bad_frees FROM allocator_stats WHERE size_class IS NULL")"
assert_eq "double free: the program's 4 frees are all recorded" 4 "$(q df.db "SELECT count(*) FROM events WHERE kind = 'free'")"

if [[ -n ${WORKLOADS:-} && -x ${WORKLOADS:-}/churn ]]; then
    for w in churn grow threads; do
        args=()
        [[ $w == churn ]] && args=(200000)
        [[ $w == threads ]] && args=(50000)
        expect=$("$WORKLOADS/$w" "${args[@]}")
        trace "$w.db" --allocator=bundled "$WORKLOADS/$w" "${args[@]}"
        assert_eq "$w: exit status" 0 "$RC"
        assert_eq "$w: same output as with the C library's malloc" "$expect" "$(cat "$WORK/out")"
        # what stays live at exit: grow leaks 100 blocks of 1000 bytes, which
        # the C library serves; threads keeps the two thread descriptors'
        # vectors that pthread_create calloc'ed (small blocks)
        small=0 large=0
        [[ $w == grow ]] && large=100
        [[ $w == threads ]] && small=2
        assert_eq "$w: small blocks handed out - freed, large blocks handed out - freed" "$small|$large" \
            "$(q "$w.db" "SELECT sum(kind LIKE 'block_alloc%') - sum(kind = 'block_free'),
                                 sum(kind = 'fallback_alloc') - sum(kind = 'fallback_free')
                          FROM allocator_events")"
        assert_eq "$w: layout from events = allocator's statistics (mismatches/rows)" "0/33" "$(mismatches "$w.db")"
    done
    # mmapper (no malloc of its own) and CPython on top of the bundled
    # allocator: same output, layout equal to the statistics.  (--python=off:
    # a GC callback makes CPython allocate an info dict per collection, which
    # moves its automatic collections and so py_lists' gc figures.)
    PYTHON=/usr/bin/python3.11
    for w in mmapper py_lists; do
        if [[ $w == py_lists ]]; then
            [[ -x $PYTHON && -n ${WORKLOADS_SRC:-} ]] || continue
            cmd=("$PYTHON" "$WORKLOADS_SRC/py_lists.py")
            export PYTHONHASHSEED=0
        else
            cmd=("$WORKLOADS/$w")
        fi
        expect=$("${cmd[@]}")
        trace "$w.db" --allocator=bundled --python=off "${cmd[@]}"
        assert_eq "$w: exit status" 0 "$RC"
        assert_eq "$w: same output as with the C library's malloc" "$expect" "$(cat "$WORK/out")"
        assert_eq "$w: layout from events = allocator's statistics (mismatches/rows)" "0/33" "$(mismatches "$w.db")"
    done
fi
finish
