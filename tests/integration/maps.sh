#!/usr/bin/env bash
# maps.sh - `memtrace maps`: the OS layer's mappings live at a moment, on
# the shared mmapper workload (100 mmaps, then 200 mremaps, then 100
# munmaps, then 5 sbrk calls) and on a CPython run (pymalloc's arenas).
source "$(dirname "$0")/lib.sh"
[[ -x ${WORKLOADS:-}/mmapper ]] || { echo "SKIP: mmapper workload not built"; exit 77; }

trace mm.db "$WORKLOADS/mmapper"
assert_eq "mmapper: exit status" 0 "$RC"
last_mmap=$(q mm.db "SELECT max(seq) FROM event_data WHERE kind = 10 AND via IS NULL")
assert_eq "after the last mmap: its 100 mappings, their bytes, all the program's" \
    "100|$(q mm.db "SELECT sum(size) FROM (SELECT size FROM event_data WHERE kind = 10 AND via IS NULL ORDER BY seq DESC LIMIT 100)")|program" \
    "$("$MEMTRACE" maps --csv --at "$last_mmap" mm.db | awk -F, 'NR > 1 && $6 != "loader" && $6 != "brk heap" { n++; b += $5; w[$6] = 1 }
                                                     END { for (k in w) ws = ws k; print n "|" b "|" ws }')"
last_mremap=$(q mm.db "SELECT max(seq) FROM event_data WHERE kind = 12")
# each region is remapped twice (to twice its length, then back): the last
# 100 mremaps give the regions' sizes
assert_eq "after the mremaps: still 100 mappings, of the sizes the last mremaps gave" \
    "100|$(q mm.db "SELECT sum(size) FROM (SELECT size FROM event_data WHERE kind = 12 ORDER BY seq DESC LIMIT 100)")" \
    "$("$MEMTRACE" maps --csv --at "$last_mremap" mm.db | awk -F, 'NR > 1 && $6 == "program" { n++; b += $5 } END { print n "|" b }')"
assert_eq "at the end: none of the program's mappings left (all unmapped)" 0 \
    "$("$MEMTRACE" maps --csv mm.db | awk -F, 'NR > 1 && $6 == "program"' | wc -l | tr -d ' ')"

PYTHON=${PYTHON:-/usr/bin/python3.11}
if [[ -x $PYTHON ]]; then
    trace py.db "$PYTHON" -c 'x = [str(i) for i in range(300000)]'
    assert_eq "python: exit status" 0 "$RC"
    assert_eq "python: the live pymalloc arenas are mappings named so" \
        "$(q py.db "SELECT (SELECT count(*) FROM event_data WHERE kind = 27 AND size = 1048576)
                          - (SELECT count(*) FROM event_data WHERE kind = 28 AND size = 1048576)")" \
        "$("$MEMTRACE" maps --csv py.db | awk -F, '$6 == "pymalloc arena" && $5 == 1048576' | wc -l | tr -d ' ')"
fi
assert_eq "layout --by mappings is the same list" "$("$MEMTRACE" maps --csv --at "$last_mmap" mm.db)" \
    "$("$MEMTRACE" layout --by mappings --csv --at "$last_mmap" mm.db)"
rc=0
"$MEMTRACE" maps --at x mm.db >o 2>e || rc=$?
assert_eq "maps --at x: usage error, one line" "2|1" "$rc|$(nlines e)"
finish
