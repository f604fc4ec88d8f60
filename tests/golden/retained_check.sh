#!/usr/bin/env bash
# retained_check.sh - `memtrace retained` on a real trace recorded with
# --allocator=bundled: tests/programs/known_allocs (see layout_check.sh).
# Its malloc(16*k), k = 1..32, start one pool in each of the 32 size
# classes of the one arena, and every block is freed by the end, the arena
# kept.  So:
#   right after the 32nd malloc (its event comes after the allocator events
#     of the call): 32 pools in use with 1 block each, all pinning, every
#     block matched with its live malloc, all from one stack (main's malloc
#     line): 32 pools pinned by 32 blocks, 16 * (1 + ... + 32) = 8448 bytes
#     requested; the arena (32 pools in use of 64) is not kept by few pools;
#   at the end: no pool in use; the last point holds the 1 MiB arena, all of
#     it kept free (free pools), no block in use.
#
# Run as a ctest entry (it must be registered in tests/CMakeLists.txt, as
# golden.layout is).  Environment: MEMTRACE (the memtrace executable), PROGS
# (directory of the built test programs).  Exit 77 (skipped) when
# known_allocs or the sqlite3 shell is missing.
set -euo pipefail

: "${PROGS:?set PROGS to the directory of the built test programs}"
[[ -x $PROGS/known_allocs ]] || { echo "SKIP: no $PROGS/known_allocs (set PROGS)"; exit 77; }
command -v sqlite3 >/dev/null || { echo "SKIP: the sqlite3 shell is not installed"; exit 77; }
# the integration tests' harness: a work directory, assert_eq, finish
source "$(dirname "$0")/../integration/lib.sh"

"$MEMTRACE" -q --allocator=bundled -o ka.db "$PROGS/known_allocs" >/dev/null
assert_eq "known_allocs trace complete" 1 "$(sqlite3 ka.db "SELECT value FROM meta WHERE key = 'complete'")"

at=$(sqlite3 ka.db "SELECT seq FROM events WHERE kind = 'malloc' ORDER BY seq LIMIT 1 OFFSET 31")
expected_pools=$(for c in $(seq 0 31); do echo "$c,used,1,$(((16384 - 48) / (16 * (c + 1)))),1"; done)
assert_eq "after the 32nd malloc (seq $at): 32 pinning pools of 1 traced block" "$expected_pools" \
    "$("$MEMTRACE" retained --csv --by pools --at "$at" ka.db | awk -F, 'NR > 1 { print $6 "," $8 "," $9 "," $10 "," $11 }')"
stacks=$("$MEMTRACE" retained --csv --by stacks --at "$at" ka.db | awk -F, 'NR > 1 { print $1 "," $2 "," $3 "," $4 }')
assert_eq "after the 32nd malloc: one stack pins 32 pools with 32 blocks, 8448 bytes" "32,524288,32,8448" "$stacks"
assert_eq "after the 32nd malloc: no arena kept by few pools" "" \
    "$("$MEMTRACE" retained --csv --by arenas --at "$at" ka.db | tail -n +2)"
assert_eq "at the end: no pool pinning" "" "$("$MEMTRACE" retained --csv --by pools ka.db | tail -n +2)"
assert_eq "at the end: 1 MiB arena, nothing in use, all of it kept in free pools" "1048576,0,0,1048576,0,1048576" \
    "$("$MEMTRACE" retained --points 3 --csv ka.db | tail -1 | cut -d, -f4-9)"
assert_eq "no warnings" "" "$("$MEMTRACE" retained ka.db 2>&1 >/dev/null)"

finish
