#!/usr/bin/env bash
# layout_check.sh - `memtrace layout` (and timeline's arena column) on a real
# trace recorded with --allocator=bundled: tests/programs/known_allocs, whose
# allocator events tests/integration/bundled.sh works out by hand.  Its
# malloc(16*k), k = 1..32, start one pool in each of the 32 size classes of
# the one arena; every block is freed by the end, the arena kept.  So:
#   right after the 32nd block_alloc_newpool: 32 pools, one per class, each
#     used with exactly 1 block, capacity (16384 - 48) / (16 * (class + 1));
#   right after the 32nd pool_init (its block not yet taken): the same 32
#     pools, 31 blocks in all, the last pool's 0;
#   at the end: the same 32 pools, all empty, 0 blocks; one arena with 32
#     empty and 32 uncarved pools; timeline's last arena_bytes 1 MiB.
#
# Run as the ctest entry golden.layout.  Environment: MEMTRACE (the memtrace
# executable), PROGS (directory of the built test programs).  Exit 77
# (skipped) when known_allocs or the sqlite3 shell is missing.
set -euo pipefail

: "${PROGS:?set PROGS to the directory of the built test programs}"
[[ -x $PROGS/known_allocs ]] || { echo "SKIP: no $PROGS/known_allocs (set PROGS)"; exit 77; }
command -v sqlite3 >/dev/null || { echo "SKIP: the sqlite3 shell is not installed"; exit 77; }
# the integration tests' harness: a work directory, assert_eq, finish
source "$(dirname "$0")/../integration/lib.sh"

"$MEMTRACE" -q --allocator=bundled -o ka.db "$PROGS/known_allocs" >/dev/null
assert_eq "known_allocs trace complete" 1 "$(sqlite3 ka.db "SELECT value FROM meta WHERE key = 'complete'")"

# the expected pool rows: class, state, blocks used, capacity (CSV columns
# size_class, state, blocks_used, capacity)
pools() { # pools STATE BLOCKS [LAST_BLOCKS]: the 32 expected rows
    for c in $(seq 0 31); do
        local b=$2
        [[ $c == 31 && -n ${3:-} ]] && b=$3
        echo "$c,$1,$b,$(((16384 - 48) / (16 * (c + 1))))"
    done
}
got() { # got ARGS...: size_class,state,blocks_used,capacity of each pool row
    "$MEMTRACE" layout --csv "$@" ka.db | awk -F, 'NR > 1 { print $6 "," $8 "," $9 "," $10 }'
}

newpool=$(sqlite3 ka.db "SELECT seq FROM allocator_events WHERE kind = 'block_alloc_newpool'
                         ORDER BY seq LIMIT 1 OFFSET 31")
init=$(sqlite3 ka.db "SELECT seq FROM allocator_events WHERE kind = 'pool_init' ORDER BY seq LIMIT 1 OFFSET 31")
assert_eq "after the 32nd block_alloc_newpool (seq $newpool): 32 used pools of 1 block" "$(pools used 1)" \
    "$(got --at "$newpool")"
assert_eq "after the 32nd pool_init (seq $init): its pool has no block yet" "$(pools used 1 0)" "$(got --at "$init")"
assert_eq "at the end: 32 empty pools" "$(pools empty 0)" "$(got)"
assert_eq "at the end: one arena, 0 pools in use, 32 empty, 32 uncarved, 64 free" "1,0,0,0,32,32,64,0,0," \
    "$("$MEMTRACE" layout --csv --by arenas ka.db | awk -F, 'NR > 1 { n++; r = $4 "," $5 "," $6 "," $7 "," $8 "," $9 "," $10 "," $11 "," $12 } END { print n "," r }')"
assert_eq "the layout's warnings (none)" "" "$("$MEMTRACE" layout ka.db 2>&1 >/dev/null)"
assert_eq "timeline: the arena's 1 MiB at the end" 1048576 \
    "$("$MEMTRACE" timeline --points 3 --csv ka.db | tail -1 | cut -d, -f7)"

finish
