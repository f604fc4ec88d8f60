#!/usr/bin/env bash
# bad_input.sh - every wrong input is refused with one line on stderr and a
# non-zero exit status (2 for wrong usage), and leaves nothing behind: no
# database in the working directory, no session in /dev/shm, no program run.
source "$(dirname "$0")/lib.sh"

# expect_error WHAT STATUS CMD...: CMD must exit with STATUS (or, with
# STATUS "nonzero", anything but 0) and print exactly one line on stderr.
expect_error() {
    local what=$1 want=$2
    shift 2
    local rc=0
    "$@" >"$WORK/o" 2>"$WORK/e" </dev/null || rc=$?
    if [[ $want == nonzero ]]; then
        assert_true "$what: non-zero exit (got $rc)" test "$rc" -ne 0
    else
        assert_eq "$what: exit status" "$want" "$rc"
    fi
    assert_eq "$what: lines on stderr" 1 "$(nlines "$WORK/e")"
    sed 's/^/    stderr: /' "$WORK/e"
}

# no_session PID: memtrace (that pid) left no session directory behind
no_session() { ! compgen -G "/dev/shm/memtrace.$1.*" >/dev/null; }

mkdir cwd
cd cwd

# ---- run: the program ----
expect_error "missing program" 127 "$MEMTRACE" ./no-such-program
expect_error "missing program on PATH" 127 "$MEMTRACE" no-such-program-memtrace-test
printf 'echo hi\n' >not-exec.sh
chmod 644 not-exec.sh
expect_error "non-executable file" nonzero "$MEMTRACE" ./not-exec.sh
expect_error "a directory" nonzero "$MEMTRACE" /tmp
assert_eq "no database left in the working directory" "" "$(ls ./*.db 2>/dev/null || true)"

# ---- run: the output path ----
rc=0
"$MEMTRACE" -o /nonexistent/dir/x.db /usr/bin/touch "$WORK/ran" >"$WORK/o" 2>"$WORK/e" &
pid=$!
wait "$pid" || rc=$?
assert_true "unwritable output: non-zero exit (got $rc)" test "$rc" -ne 0
assert_eq "unwritable output: lines on stderr" 1 "$(nlines "$WORK/e")"
assert_true "unwritable output: stderr names the file" grep -q /nonexistent/dir/x.db "$WORK/e"
assert_true "unwritable output: the program did not run" test ! -e "$WORK/ran"
assert_true "unwritable output: no session left in /dev/shm" no_session "$pid"
sed 's/^/    stderr: /' "$WORK/e"

rc=0
"$MEMTRACE" ./no-such-program >"$WORK/o" 2>"$WORK/e" &
pid=$!
wait "$pid" || rc=$?
assert_true "missing program: no session left in /dev/shm" no_session "$pid"

# ---- usage ----
expect_error "unknown flag" 2 "$MEMTRACE" --no-such-flag "$PROGS/known_allocs"
expect_error "unknown flag after run" 2 "$MEMTRACE" run --no-such-flag "$PROGS/known_allocs"
expect_error "bad --stack-depth" 2 "$MEMTRACE" --stack-depth 0 "$PROGS/known_allocs"
expect_error "bad --os" 2 "$MEMTRACE" --os=kernel "$PROGS/known_allocs"
expect_error "bad --mode" 2 "$MEMTRACE" --mode=gdb "$PROGS/known_allocs"
expect_error "attach without a pid" 2 "$MEMTRACE" attach
expect_error "attach to no such process" 1 "$MEMTRACE" attach 4194303
expect_error "-o without a value" 2 "$MEMTRACE" run -o
expect_error "run without a program" 2 "$MEMTRACE" run
expect_error "help for no such command" 2 "$MEMTRACE" help no-such-command
rc=0
"$MEMTRACE" >/dev/null 2>&1 || rc=$?
assert_eq "no arguments: exit status" 2 "$rc"
assert_eq "no database left in the working directory" "" "$(ls ./*.db 2>/dev/null || true)"

# ---- reading: files that are not traces ----
cd "$WORK"
printf 'this is not a database\n' >text.db
: >empty.db
sqlite3 other.db "CREATE TABLE t(x); INSERT INTO t VALUES (1);"
trace good.db "$PROGS/known_allocs"
assert_eq "a good trace to start from" 0 "$RC"
cp good.db v99.db
sqlite3 v99.db "PRAGMA user_version = 99"
for cmd in summary query; do
    args=()
    [[ $cmd == query ]] && args=("SELECT count(*) FROM events")
    expect_error "$cmd: missing file" 1 "$MEMTRACE" "$cmd" missing.db "${args[@]}"
    expect_error "$cmd: a text file" 1 "$MEMTRACE" "$cmd" text.db "${args[@]}"
    assert_true "$cmd: text file: message names the file" grep -q text.db "$WORK/e"
    expect_error "$cmd: an empty file" 1 "$MEMTRACE" "$cmd" empty.db "${args[@]}"
    expect_error "$cmd: an SQLite file of another program" 1 "$MEMTRACE" "$cmd" other.db "${args[@]}"
    expect_error "$cmd: schema version 99" 1 "$MEMTRACE" "$cmd" v99.db "${args[@]}"
    assert_true "$cmd: version 99: message names the version" grep -q 99 "$WORK/e"
    expect_error "$cmd: unknown flag" 2 "$MEMTRACE" "$cmd" --no-such-flag good.db "${args[@]}"
    expect_error "$cmd: no database" 2 "$MEMTRACE" "$cmd"
done
assert_eq "the other program's file is untouched" 1 "$(q other.db "SELECT x FROM t")"
assert_eq "the version-99 file is untouched" 99 "$(q v99.db "PRAGMA user_version")"
finish
