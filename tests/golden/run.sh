#!/usr/bin/env bash
# run.sh - golden tests of the analyzer's reports: each fixture trace is
# built from SQL, each report is run on it, and its output is diffed exactly
# against the expected file checked in beside it.
#
# Fixtures: tests/golden/NAME.sql.  An empty trace is recorded once with
# `memtrace -q -o base.db /bin/true` (so the schema is memtrace's own) and
# each NAME.sql is applied to a copy of it with the sqlite3 shell: it deletes
# the rows of that run and inserts the fixture's.
#
# Expected outputs, each the stdout of one command run in the work
# directory (so the database is named NAME.db in messages):
#   NAME.VIEW.csv     memtrace VIEW --csv NAME.db
#   NAME.VIEW.txt     memtrace VIEW NAME.db
#   anything else     the command given for it in tests/golden/cases
# Every expected file must be covered by one of these rules.  The command's
# stderr must equal EXPECTED.err when that file exists, and be empty
# otherwise; its exit status must be 0.
#
# Then the command-line contract: usage errors exit 2 with one line, a file
# that is not a trace exits 1, -h prints the usage and exits 0.  Then
# ms_print (valgrind's, when installed) must read the massif export and show
# its peak; layout_check.sh (its own ctest entry, golden.layout) checks `layout` on a real trace recorded with
# --allocator=bundled.
#
# Environment: MEMTRACE, the memtrace executable (tests/CMakeLists.txt sets
# it).  To regenerate the expected files after a deliberate change of
# output: UPDATE=1 MEMTRACE=build/memtrace bash tests/golden/run.sh, then
# read the diff before committing it.
set -euo pipefail

: "${MEMTRACE:?set MEMTRACE to the memtrace executable}"
MEMTRACE=$(readlink -f "$MEMTRACE")
GOLDEN=$(cd "$(dirname "$0")" && pwd)
command -v sqlite3 >/dev/null || { echo "SKIP: the sqlite3 shell is not installed"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/memtrace-golden.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
FAILED=0
CHECKS=0

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    FAILED=$((FAILED + 1))
}

# ---- fixtures --------------------------------------------------------------

source "$GOLDEN/fixture.sh"
"$MEMTRACE" -q -o base.db /bin/true
for sql in "$GOLDEN"/*.sql; do
    name=$(basename "$sql" .sql)
    cp base.db "$name.db"
    apply_fixture "$name.db" "$sql" || { fail "fixture $name.sql does not apply"; continue; }
    integrity=$(sqlite3 "$name.db" "PRAGMA integrity_check")
    [[ $integrity == ok ]] || fail "fixture $name.db: integrity_check says $integrity"
done

# ---- goldens ---------------------------------------------------------------

# golden EXPECTED ARGS...: runs memtrace ARGS and compares stdout, stderr and
# the exit status with what EXPECTED (a file in tests/golden) says.
golden() {
    local expected=$1
    shift
    local base
    base=$(basename "$expected")
    CHECKS=$((CHECKS + 1))
    local rc=0
    "$MEMTRACE" "$@" >"$base.out" 2>"$base.err" || rc=$?
    if [[ -n ${UPDATE:-} ]]; then
        cp "$base.out" "$expected"
        if [[ -s $base.err ]]; then cp "$base.err" "$expected.err"; else rm -f "$expected.err"; fi
    fi
    local ok=1
    if ((rc != 0)); then
        fail "$base: memtrace $* exited with status $rc"
        ok=0
    fi
    if ! diff -u "$expected" "$base.out" >"$base.diff"; then
        fail "$base: memtrace $* differs from the expected output:"
        cat "$base.diff" >&2
        ok=0
    fi
    if [[ -f $expected.err ]]; then
        if ! diff -u "$expected.err" "$base.err" >"$base.diff"; then
            fail "$base: stderr of memtrace $* differs:"
            cat "$base.diff" >&2
            ok=0
        fi
    elif [[ -s $base.err ]]; then
        fail "$base: memtrace $* wrote to stderr: $(cat "$base.err")"
        ok=0
    fi
    ((ok)) && printf 'ok:   %s (memtrace %s)\n' "$base" "$*"
    return 0
}

declare -A covered=()
# the cases file: "EXPECTED ARGS..." lines; {db} is the fixture's database
while read -r expected args; do
    [[ -z $expected || $expected == \#* ]] && continue
    name=${expected%%.*}
    [[ -f $GOLDEN/$expected || -n ${UPDATE:-} ]] || { fail "cases: $expected does not exist"; continue; }
    read -r -a argv <<<"${args//\{db\}/$name.db}"
    golden "$GOLDEN/$expected" "${argv[@]}"
    covered[$expected]=1
done <"$GOLDEN/cases"

for expected in "$GOLDEN"/*.*.*; do
    base=$(basename "$expected")
    [[ $base == *.err || $base == *.sql ]] && continue
    [[ -n ${covered[$base]:-} ]] && continue
    IFS=. read -r name view ext extra <<<"$base"
    if [[ -n $extra || ! -f $GOLDEN/$name.sql ]]; then
        fail "$base: not a NAME.VIEW.csv or NAME.VIEW.txt of a fixture, and not listed in cases"
        continue
    fi
    case $ext in
    csv) golden "$expected" "$view" --csv "$name.db" ;;
    txt) golden "$expected" "$view" "$name.db" ;;
    *) fail "$base: not a NAME.VIEW.csv or NAME.VIEW.txt, and not listed in cases" ;;
    esac
done

# ---- the command-line contract -----------------------------------------------

# status WHAT EXPECTED_STATUS ARGS...: exit status and the number of stderr lines
status() {
    local what=$1 want=$2
    shift 2
    CHECKS=$((CHECKS + 1))
    local rc=0
    "$MEMTRACE" "$@" >cli.out 2>cli.err || rc=$?
    local lines
    lines=$(wc -l <cli.err)
    if ((rc != want)); then
        fail "$what: memtrace $* exited with $rc, expected $want ($(cat cli.err))"
    elif ((want != 0 && lines != 1)); then
        fail "$what: memtrace $* wrote $lines lines to stderr, expected one: $(cat cli.err)"
    else
        printf 'ok:   %s (exit %d)\n' "$what" "$rc"
    fi
}

echo "not a database" >notadb.txt
for view in leaks peak top temporary growth export timeline layout retained diff; do
    # the DB arguments a view takes (diff: two); the last one is the one replaced
    dbs=(basic.db)
    [[ $view == diff ]] && dbs=(basic.db basic.db)
    status "$view without DB" 2 "$view"
    status "$view with an unknown option" 2 "$view" --frobnicate "${dbs[@]}"
    status "$view with a DB too many" 2 "$view" "${dbs[@]}" basic.db
    status "$view on a missing file" 1 "$view" "${dbs[@]:1}" missing.db
    status "$view on a file that is not a trace" 1 "$view" "${dbs[@]:1}" notadb.txt
    status "$view -h" 0 "$view" -h
    CHECKS=$((CHECKS + 1))
    grep -q "^usage: memtrace $view " cli.out && grep -q "^Exit status" cli.out ||
        fail "$view -h: no usage line or no exit status section"
    "$MEMTRACE" help "$view" | cmp -s - cli.out || fail "memtrace help $view differs from $view -h"
done
for view in leaks peak top temporary growth diff; do
    dbs=(basic.db)
    [[ $view == diff ]] && dbs=(basic.db basic.db)
    status "$view --top without a number" 2 "$view" "${dbs[@]}" --top
    status "$view --top -1" 2 "$view" --top -1 "${dbs[@]}"
    status "$view --top x" 2 "$view" --top=x "${dbs[@]}"
done
status "diff with one DB" 2 diff basic.db
status "diff on a missing first file" 1 diff missing.db basic.db
status "timeline --points 0" 2 timeline --points 0 basic.db
status "timeline --points x" 2 timeline --points x basic.db
status "timeline --interval 0" 2 timeline --interval 0 basic.db
status "timeline --interval -5" 2 timeline --interval=-5 basic.db
status "timeline --interval and --points" 2 timeline --interval 1 --points 5 basic.db
status "timeline --top (not an option of timeline)" 2 timeline --top 3 basic.db
cp basic.db long.db
sqlite3 long.db "UPDATE meta SET value = 2000000000 WHERE key = 'duration_ns'"
status "timeline --interval giving more than 1,000,000 points" 2 timeline --interval 0.001 long.db
status "layout --at x" 2 layout --at x layout.db
status "layout --at -1" 2 layout --at -1 layout.db
status "layout --time x" 2 layout --time x layout.db
status "layout --at and --time" 2 layout --at 5 --time 1 layout.db
status "layout --by an unknown table" 2 layout --by blocks layout.db
status "export --massif --by" 2 export --massif --by calls basic.db
status "export --massif --collapsed" 2 export --massif --collapsed basic.db
status "top --by an unknown measure" 2 top --by size basic.db
status "export --by an unknown weight" 2 export --by size basic.db
status "export --csv (not an option of export)" 2 export --csv basic.db
status "export -o into a missing directory" 1 export -o missing/dir/out.folded basic.db
status "growth --chains --top 0" 2 growth --chains --top 0 basic.db

# export -o writes the file and nothing on stdout
CHECKS=$((CHECKS + 1))
"$MEMTRACE" export --by leaked -o leaked.folded basic.db >export.out
if [[ -s export.out ]] || ! diff -u "$GOLDEN/basic.export.leaked.folded" leaked.folded; then
    fail "export -o: the file differs from basic.export.leaked.folded, or stdout was not empty"
else
    echo "ok:   export -o FILE"
fi

# export --massif -o writes the file, and ms_print (valgrind's) reads it
CHECKS=$((CHECKS + 1))
"$MEMTRACE" export --massif -o basic.massif basic.db >export.out
if [[ -s export.out ]] || ! diff -u "$GOLDEN/basic.export.massif" basic.massif; then
    fail "export --massif -o: the file differs from basic.export.massif, or stdout was not empty"
else
    echo "ok:   export --massif -o FILE"
fi
if command -v ms_print >/dev/null; then
    # basic's heap peak: 6,500 bytes at 9 us, between the regular snapshots
    # at 8.571 and 9.183 us: numbered 15
    CHECKS=$((CHECKS + 1))
    rc=0
    ms_print basic.massif >ms_print.out 2>&1 || rc=$?
    if ((rc != 0)); then
        fail "ms_print basic.massif exited with $rc: $(head -5 ms_print.out)"
    elif ! grep -q '^ Detailed snapshots: \[9, 15 (peak), 20, 30, 40, 50\]$' ms_print.out ||
        ! grep -Eq '^ +15 +0\.009 +6,500 +6,500 +0 +0$' ms_print.out ||
        ! grep -q '^100.00% (6,500B) (heap allocation functions)' ms_print.out ||
        ! grep -q '^->76.92% (5,000B) 0x11F0: big_table (prog.c:60)$' ms_print.out; then
        fail "ms_print basic.massif does not show the peak of 6,500 bytes at snapshot 15 as expected:"
        cat ms_print.out >&2
    else
        echo "ok:   ms_print reads basic.massif: peak 6,500 bytes at 0.009 ms (snapshot 15), big_table 76.92%"
    fi
    # grown: folded branches ("in 2 places, all below massif's threshold")
    CHECKS=$((CHECKS + 1))
    rc=0
    "$MEMTRACE" export --massif grown.db >grown.massif
    ms_print grown.massif >ms_print.out 2>&1 || rc=$?
    if ((rc != 0)); then
        fail "ms_print grown.massif exited with $rc: $(head -5 ms_print.out)"
    elif ! grep -q '^100.00% (8,450B) (heap allocation functions)' ms_print.out ||
        ! grep -q '^->00.77% (5B) in 1+ places, all below ms_print.s threshold (01.00%)$' ms_print.out; then
        fail "ms_print grown.massif does not show the peak of 8,450 bytes and the folded 5 bytes:"
        cat ms_print.out >&2
    else
        echo "ok:   ms_print reads grown.massif: peak 8,450 bytes, 5 bytes below the threshold"
    fi
else
    echo "skip: ms_print (valgrind) is not installed: the massif file is not read back"
fi

if ((FAILED)); then
    echo "$FAILED of $CHECKS checks failed" >&2
    exit 1
fi
echo "all $CHECKS checks passed"
