#!/usr/bin/env bash
# report_check.sh - `memtrace report --csv` on the golden fixtures: every
# file of tests/golden/report/NAME/ must equal the report's file of that
# name for fixture NAME, byte for byte.
#
#   basic       tests/golden/basic.sql (its header works out every number):
#               all twelve files
#   gc          basic.sql, then report/gc.sql: two garbage collector runs
#               with their triggers, CPython markers
#   layout      layout.sql: the bundled allocator's map at 24 moments, its
#               fork child, retained bytes
#   incomplete  incomplete.sql: a killed process (the warning on stderr):
#               the summary and what was live when the trace ended
#   empty       empty.sql: no heap event (the note on stderr)
#
# Fixtures are built as tests/golden/run.sh builds them (an empty trace of
# /bin/true, then the SQL).  UPDATE=1 rewrites the expected files (read the
# diff before committing it).  Run as the ctest entry golden.report.
# Environment: MEMTRACE (the memtrace executable).
set -euo pipefail
GOLDEN=$(cd "$(dirname "$0")" && pwd)
command -v sqlite3 >/dev/null || { echo "SKIP: the sqlite3 shell is not installed"; exit 77; }
# the integration tests' harness: a work directory, assert_eq, finish
source "$GOLDEN/../integration/lib.sh"
source "$GOLDEN/fixture.sh"

"$MEMTRACE" -q -o base.db /bin/true

# check NAME SQL...: builds NAME.db from the SQL files, runs the report,
# compares the expected files (and its stderr with report/NAME.err, if any)
check() {
    local name=$1
    shift
    cp base.db "$name.db"
    local sql
    apply_fixture "$name.db" "${@/#/$GOLDEN/}"
    RC=0
    "$MEMTRACE" report --csv "$name" "$name.db" >"$name.out" 2>"$name.err" || RC=$?
    assert_eq "$name: exit status" 0 "$RC"
    assert_eq "$name: stdout" "" "$(cat "$name.out")"
    local expected=$GOLDEN/report/$name
    if [[ -n ${UPDATE:-} ]]; then
        mkdir -p "$expected"
        local f
        for f in "$expected"/*.csv; do [[ -e $f ]] && cp "$name/$(basename "$f")" "$f"; done
        if [[ -s $name.err ]]; then cp "$name.err" "$GOLDEN/report/$name.err"; else rm -f "$GOLDEN/report/$name.err"; fi
    fi
    assert_eq "$name: stderr" "$(cat "$GOLDEN/report/$name.err" 2>/dev/null || true)" "$(cat "$name.err")"
    local f n=0
    for f in "$expected"/*.csv; do
        n=$((n + 1))
        if diff -u "$f" "$name/$(basename "$f")" >diff.out; then
            assert_true "$name: $(basename "$f")" true
        else
            cat diff.out >&2
            assert_true "$name: $(basename "$f") differs from the expected file" false
        fi
    done
    assert_true "$name: expected files ($n)" test "$n" -gt 0
}

check basic basic.sql
check gc basic.sql report/gc.sql
check layout layout.sql
check incomplete incomplete.sql
check empty empty.sql

finish
