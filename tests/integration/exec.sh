#!/usr/bin/env bash
# exec.sh - execer mallocs 2 x 222 bytes then execs known_allocs: two process
# rows for the same pid, the second's exec_of pointing at the first, each
# with only its own events (tests/programs/execer.c).
source "$(dirname "$0")/lib.sh"

trace ex.db "$PROGS/execer" "$PROGS/known_allocs"
assert_eq "memtrace exit status" 0 "$RC"
assert_eq "meta complete" 1 "$(meta ex.db complete)"
assert_eq "processes: 2 rows, 1 pid" "2|1" "$(q ex.db "SELECT count(*), count(DISTINCT pid) FROM processes")"
first=$(q ex.db "SELECT id FROM processes WHERE exec_of IS NULL")
second=$(q ex.db "SELECT id FROM processes WHERE exec_of IS NOT NULL")
assert_eq "second image's exec_of is the first" "$first" "$(q ex.db "SELECT exec_of FROM processes WHERE id = '$second'")"
assert_eq "no fork parent on either" 0 "$(q ex.db "SELECT count(*) FROM processes WHERE parent_id IS NOT NULL")"
assert_eq "first image exe" "$(readlink -f "$PROGS/execer")" "$(q ex.db "SELECT exe FROM processes WHERE id = '$first'")"
assert_eq "second image exe" "$(readlink -f "$PROGS/known_allocs")" "$(q ex.db "SELECT exe FROM processes WHERE id = '$second'")"
assert_eq "second image cmdline" "$PROGS/known_allocs" "$(q ex.db "SELECT cmdline FROM processes WHERE id = '$second'")"
assert_eq "first image's events" "malloc|2|444" \
    "$(q ex.db "SELECT kind, count(*), sum(size) FROM events WHERE process_id = '$first' AND domain = 'libc' GROUP BY kind")"
assert_eq "second image's events (known_allocs)" "aligned_alloc|2|16384
calloc|10|1000
free|68|
malloc|50|20400
memalign|1|100
posix_memalign|3|768
realloc|5|3100
valloc|1|5000" \
    "$(q ex.db "SELECT kind, count(*), sum(size) FROM events WHERE process_id = '$second' AND domain = 'libc' GROUP BY kind ORDER BY kind")"
assert_eq "first image complete (replaced, not cut short)" 1 "$(q ex.db "SELECT complete FROM processes WHERE id = '$first'")"
assert_eq "second image: exit 0, complete" "0|1" "$(q ex.db "SELECT exit_status, complete FROM processes WHERE id = '$second'")"
assert_eq "second image has an exec marker" 1 \
    "$(q ex.db "SELECT count(*) FROM marker_names WHERE kind = 'exec' AND process_id = '$second'")"
assert_eq "events of the first image precede the second's" 1 \
    "$(q ex.db "SELECT (SELECT max(seq) FROM events WHERE process_id = '$first') <
                       (SELECT min(seq) FROM events WHERE process_id = '$second')")"
finish
