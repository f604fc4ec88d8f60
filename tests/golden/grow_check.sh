#!/usr/bin/env bash
# grow_check.sh - the analyzer's reports on a real trace: the shared `grow`
# workload (../shared/bench/workloads/grow.c) is recorded, and what the
# program is known to do must come out of the reports exactly:
#   leaks    one stack, leak_one: exactly 100 blocks, 100,000 bytes
#   growth   2,000 arrays grown 1.5x from vec_push: one site, vec_push, with
#            2,000 chains and median factor 1.50, and as many steps as SQL
#            counts reallocs of a live block from vec_push
#   peak     the stacks live at the peak add up to the peak (bytes, blocks)
#   top      the allocations of every stack add up to summary's count
#   timeline the last point (the end) holds the leaks: 100 blocks, 100,000
#            bytes; no point holds more than the peak
#   export --massif  the peak snapshot holds peak's bytes; ms_print (when
#            installed) reads the file and finds the same peak
#   diff     a trace against itself: no differences
#   layout   a trace recorded without --allocator=bundled: says so, exit 0
#
# Environment: MEMTRACE (the memtrace executable), WORKLOADS (directory of
# the built workloads; tests/CMakeLists.txt sets both).  Exit 77 (skipped)
# when the grow workload or the sqlite3 shell is missing.
set -euo pipefail

GROW=${WORKLOADS:-}/grow
[[ -n ${WORKLOADS:-} && -x $GROW ]] || { echo "SKIP: no grow workload (set WORKLOADS)"; exit 77; }
command -v sqlite3 >/dev/null || { echo "SKIP: the sqlite3 shell is not installed"; exit 77; }
# the integration tests' harness: a work directory, assert_eq, finish
source "$(dirname "$0")/../integration/lib.sh"

"$MEMTRACE" -q -o grow.db "$GROW" >/dev/null
assert_eq "grow trace complete" 1 "$(sqlite3 grow.db "SELECT value FROM meta WHERE key = 'complete'")"

# CSV columns are read by name, and the frames field is the last one (it is
# quoted only when it holds a comma or a quote, which grow's frames do not)
col() { # col FILE NAME: the column number of NAME in FILE's header
    head -1 "$1" | tr ',' '\n' | grep -nx "$2" | cut -d: -f1
}

"$MEMTRACE" leaks --csv --top 0 grow.db >leaks.csv
assert_eq "leaks: stacks" 1 "$(($(wc -l <leaks.csv) - 1))"
assert_eq "leaks: innermost function" leak_one "$(tail -1 leaks.csv | sed 's/.*,\([a-z_]*\) (.*/\1/')"
assert_eq "leaks: blocks" 100 "$(tail -1 leaks.csv | cut -d, -f"$(col leaks.csv blocks)")"
assert_eq "leaks: bytes" 100000 "$(tail -1 leaks.csv | cut -d, -f"$(col leaks.csv bytes)")"

"$MEMTRACE" growth --csv --top 0 grow.db >growth.csv
vec=$(grep ',vec_push (' growth.csv || true)
assert_eq "growth: sites at vec_push" 1 "$(grep -c . <<<"$vec")"
assert_eq "growth: vec_push chains" 2000 "$(cut -d, -f"$(col growth.csv chains)" <<<"$vec")"
assert_eq "growth: vec_push median factor" 1.50 \
    "$(printf '%.2f' "$(cut -d, -f"$(col growth.csv median_factor)" <<<"$vec")")"
steps=$(sqlite3 grow.db "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id = e.stack_id AND f.depth = 1
                         WHERE e.kind = 'realloc' AND e.old_addr IS NOT NULL AND e.failed IS NULL
                           AND f.function = 'vec_push'")
assert_eq "growth: vec_push steps = reallocs of a block from vec_push (SQL)" "$steps" \
    "$(cut -d, -f"$(col growth.csv steps)" <<<"$vec")"

"$MEMTRACE" peak --csv --top 0 grow.db >peak.csv
sums=$(awk -F, -v L="$(col peak.csv layer)" -v B="$(col peak.csv blocks)" -v Y="$(col peak.csv bytes)" \
           -v PB="$(col peak.csv peak_blocks)" -v PY="$(col peak.csv peak_bytes)" \
    'NR > 1 && $L == "libc" { b += $B; y += $Y; pb = $PB; py = $PY }
     END { print (b == pb && y == py) ? "equal" : b "/" pb " blocks, " y "/" py " bytes" }' peak.csv)
assert_eq "peak: stacks live at the peak add up to the peak" equal "$sums"

"$MEMTRACE" top --csv --top 0 grow.db >top.csv
assert_eq "top: calls of every stack = summary's allocations" \
    "$("$MEMTRACE" summary --csv grow.db | awk -F, '$1 == "allocations" { print $2 }')" \
    "$(awk -F, -v C="$(col top.csv calls)" 'NR > 1 { n += $C } END { print n }' top.csv)"

peak_bytes=$(awk -F, -v PY="$(col peak.csv peak_bytes)" -v L="$(col peak.csv layer)" \
    'NR > 1 && $L == "libc" { print $PY; exit }' peak.csv)
"$MEMTRACE" timeline --csv grow.db >timeline.csv
assert_eq "timeline: 100 points" 100 "$(($(wc -l <timeline.csv) - 1))"
assert_eq "timeline: the end holds the leaks (blocks, bytes)" "100,100000" \
    "$(tail -1 timeline.csv | cut -d, -f"$(col timeline.csv heap_blocks),$(col timeline.csv heap_bytes)" |
       awk -F, '{ print $2 "," $1 }')"
assert_eq "timeline: no point above the peak" 0 \
    "$(awk -F, -v H="$(col timeline.csv heap_bytes)" -v P="$peak_bytes" 'NR > 1 && $H > P { n++ } END { print n + 0 }' timeline.csv)"

"$MEMTRACE" export --massif -o grow.massif grow.db
assert_eq "export --massif: 51 snapshots" 51 "$(grep -c '^snapshot=' grow.massif)"
assert_eq "export --massif: the peak snapshot's bytes = peak's" "$peak_bytes" \
    "$(awk -F= '/^mem_heap_B=/ { b = $2 } /^heap_tree=peak$/ { print b }' grow.massif)"
if command -v ms_print >/dev/null; then
    rc=0
    ms_print grow.massif >ms_print.out 2>&1 || rc=$?
    commas=$(sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$peak_bytes") # 237,975,903
    assert_eq "ms_print: exit status, and the peak's row" "0:1" \
        "$rc:$(grep -cE "^ +[0-9]+ +[0-9.,]+ +$commas +$commas +0 +0$" ms_print.out)"
fi

assert_eq "diff: the trace against itself" "no differences" \
    "$("$MEMTRACE" diff grow.db grow.db | head -1 | cut -d: -f1)"
assert_eq "layout: a libc trace, said on stderr, exit 0" "0:1:0" \
    "$(rc=0; "$MEMTRACE" layout grow.db >layout.out 2>layout.err || rc=$?; echo "$rc:$(wc -l <layout.err):$(wc -c <layout.out)")"

finish
