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
# that is not a trace exits 1, -h prints the usage and exits 0.
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

"$MEMTRACE" -q -o base.db /bin/true
for sql in "$GOLDEN"/*.sql; do
    name=$(basename "$sql" .sql)
    cp base.db "$name.db"
    sqlite3 -bail "$name.db" <"$sql" || { fail "fixture $name.sql does not apply"; continue; }
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
for view in leaks peak top temporary growth export; do
    status "$view without DB" 2 "$view"
    status "$view with an unknown option" 2 "$view" --frobnicate basic.db
    status "$view with two DBs" 2 "$view" basic.db basic.db
    status "$view on a missing file" 1 "$view" missing.db
    status "$view on a file that is not a trace" 1 "$view" notadb.txt
    status "$view -h" 0 "$view" -h
    CHECKS=$((CHECKS + 1))
    grep -q "^usage: memtrace $view " cli.out && grep -q "^Exit status" cli.out ||
        fail "$view -h: no usage line or no exit status section"
    "$MEMTRACE" help "$view" | cmp -s - cli.out || fail "memtrace help $view differs from $view -h"
done
for view in leaks peak top temporary growth; do
    status "$view --top without a number" 2 "$view" basic.db --top
    status "$view --top -1" 2 "$view" --top -1 basic.db
    status "$view --top x" 2 "$view" --top=x basic.db
done
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

if ((FAILED)); then
    echo "$FAILED of $CHECKS checks failed" >&2
    exit 1
fi
echo "all $CHECKS checks passed"
