#!/usr/bin/env bash
# fork.sh - a parent (3 x 33 bytes, freed after the child ends) and a fork
# child (7 x 77 bytes, exit 0) must be two process rows linked by parent_id,
# each with exactly its own events (tests/programs/forker.c).  Heap events
# only: the OS layer (the loader's mappings) is checked in os_layer.sh.
source "$(dirname "$0")/lib.sh"

trace fk.db "$PROGS/forker"
assert_eq "memtrace exit status" 0 "$RC"
assert_eq "meta complete" 1 "$(meta fk.db complete)"
assert_eq "processes" 2 "$(q fk.db "SELECT count(*) FROM processes")"
parent=$(q fk.db "SELECT id FROM processes WHERE parent_id IS NULL")
child=$(q fk.db "SELECT id FROM processes WHERE parent_id IS NOT NULL")
assert_eq "one root process" 1 "$(wc -w <<<"$parent" | tr -d ' ')"
assert_eq "child's parent_id is the parent's id" "$parent" "$(q fk.db "SELECT parent_id FROM processes WHERE id = '$child'")"
assert_eq "child's ppid is the parent's pid" 1 \
    "$(q fk.db "SELECT c.ppid = p.pid AND c.pid != p.pid FROM processes c JOIN processes p ON p.id = c.parent_id")"
assert_eq "child is not an exec image" "" "$(q fk.db "SELECT exec_of FROM processes WHERE id = '$child'")"
assert_eq "parent's events" "free|3|
malloc|3|99" "$(q fk.db "SELECT kind, count(*), sum(size) FROM events WHERE process_id = '$parent' AND domain = 'libc'
                          GROUP BY kind ORDER BY kind")"
assert_eq "child's events" "malloc|7|539" \
    "$(q fk.db "SELECT kind, count(*), sum(size) FROM events WHERE process_id = '$child' AND domain = 'libc'
                GROUP BY kind ORDER BY kind")"
assert_eq "child mallocs of 77 bytes" 7 "$(q fk.db "SELECT count(*) FROM events WHERE process_id = '$child' AND size = 77")"
assert_eq "exit status, signal, complete (parent, child)" "0||1
0||1" "$(q fk.db "SELECT exit_status, exit_signal, complete FROM processes ORDER BY id")"
assert_eq "child's threads belong to the child" "1|$child" \
    "$(q fk.db "SELECT count(*), min(t.process_id) FROM threads t WHERE t.process_id = '$child'")"
assert_eq "child's leak: 7 blocks, 539 bytes" "7|539" \
    "$(q fk.db "WITH $LIVE_CTE SELECT count(*), sum(size) FROM live WHERE process_id = '$child' AND kind = 'malloc'")"
assert_eq "parent's leak: none" 0 "$(q fk.db "WITH $LIVE_CTE SELECT count(*) FROM live WHERE process_id = '$parent' AND kind = 'malloc'")"
assert_eq "child has a fork_child marker" 1 \
    "$(q fk.db "SELECT count(*) FROM marker_names WHERE kind = 'fork_child' AND process_id = '$child'")"
assert_eq "child's process_exit marker, value 0" "0" \
    "$(q fk.db "SELECT value FROM marker_names WHERE kind = 'process_exit' AND process_id = '$child'")"

# posix_spawn (a vfork-style clone: no fork handler runs) of known_allocs:
# the spawned image still gets the spawner as its parent
trace sp.db "$PROGS/spawner" "$PROGS/known_allocs"
assert_eq "spawn: memtrace exit status" 0 "$RC"
assert_eq "spawn: processes (id, parent_id, exec_of, exe)" "1|||spawner
2|1||known_allocs" \
    "$(q sp.db "SELECT id, parent_id, exec_of, replace(exe, rtrim(exe, replace(exe, '/', '')), '') FROM processes ORDER BY id")"
assert_eq "spawn: the spawner's own events" "free|3|
malloc|3|99" "$(q sp.db "SELECT kind, count(*), sum(size) FROM events WHERE process_id = 1 AND kind IN ('malloc', 'free')
                          GROUP BY kind ORDER BY kind")"
assert_eq "spawn: the spawned program's mallocs" 50 \
    "$(q sp.db "SELECT count(*) FROM events WHERE process_id = 2 AND kind = 'malloc'")"
finish
