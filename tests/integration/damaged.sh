#!/usr/bin/env bash
# damaged.sh - reading traces that are damaged or not finished: every
# command either works or fails with exit status 1 and one line on stderr;
# none crashes, hangs, or reads a trace that is not whole as if it were.
# (bad_input.sh has the empty, non-SQLite, foreign-SQLite and future-version
# files.)
#   - truncated (at half, one page short, after the header): "truncated";
#   - bytes overwritten at random places (fixed seeds, plus one new seed a
#     run, printed): status 0 or 1, one line when 1;
#   - read while memtrace records it, and after memtrace was killed with
#     SIGKILL while recording: "still being recorded, or its recording was
#     cut off", not an empty trace.
source "$(dirname "$0")/lib.sh"
export DIER_COUNTS=$WORK/counts

CMDS=(summary leaks peak top temporary growth timeline "export --collapsed" "export --massif -o m.out"
      "report --html r.html --csv rdir" python gc layout retained "diff good.db" "query")

# readers DB WHAT: every command on DB: status 0, or 1 with one line (after
# the warning that the trace is incomplete, if any)
readers() {
    local db=$1 what=$2 c rc bad=0
    for c in "${CMDS[@]}"; do
        local args=()
        [[ $c == query ]] && args=("SELECT kind, count(*), sum(size) FROM events GROUP BY kind")
        rc=0
        # shellcheck disable=SC2086 # the command's words
        timeout 60 "$MEMTRACE" $c "$db" "${args[@]}" >/dev/null 2>e || rc=$?
        # the warning that a trace is incomplete may come before the error
        grep -v "^memtrace: warning: trace is incomplete" e >e1 || true
        if ((rc > 1)) || { ((rc == 1)) && [[ $(nlines e1) != 1 ]]; }; then
            fail "$what: memtrace $c: exit status $rc, $(nlines e) lines on stderr: $(head -c 300 e)"
            bad=1
        fi
    done
    CHECKS=$((CHECKS + 1))
    ((bad)) || echo "ok:   $what: ${#CMDS[@]} commands: status 0, or 1 with one line"
}

# refused DB WHAT PATTERN: every command fails with status 1 and one line
# matching PATTERN
refused() {
    local db=$1 what=$2 pattern=$3 c rc bad=0
    for c in "${CMDS[@]}"; do
        local args=()
        [[ $c == query ]] && args=("SELECT count(*) FROM events")
        rc=0
        # shellcheck disable=SC2086
        timeout 60 "$MEMTRACE" $c "$db" "${args[@]}" >/dev/null 2>e || rc=$?
        if ((rc != 1)) || [[ $(nlines e) != 1 ]] || ! grep -q "$pattern" e; then
            fail "$what: memtrace $c: exit status $rc (want 1), stderr: $(head -c 300 e)"
            bad=1
        fi
    done
    CHECKS=$((CHECKS + 1))
    ((bad)) || echo "ok:   $what: ${#CMDS[@]} commands refuse it: \"$(cat e)\""
}

trace good.db --allocator=bundled "$PROGS/dier" exit 3000
assert_eq "a good trace to start from" 0 "$RC"
readers good.db "the good trace"
size=$(stat -c %s good.db)

head -c $((size / 2)) good.db >half.db
refused half.db "truncated at half" "truncated: $((size / 2)) of its $size bytes"
head -c $((size - 4096)) good.db >page.db
refused page.db "one page short" "truncated"
head -c 100 good.db >header.db
refused header.db "the header alone" "truncated"

# overwrite DB SEED: 1, 4 or 16 runs of 1, 4 or 64 random bytes
overwrite() {
    python3 - "$1" "$2" <<'PY'
import os, random, sys
path, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
n = os.path.getsize(path)
with open(path, "r+b") as f:
    for _ in range(r.choice([1, 4, 16])):
        f.seek(r.randrange(100, n - 64))
        f.write(bytes(r.randrange(256) for _ in range(r.choice([1, 4, 64]))))
PY
}
# (152, 540, 904: SQLite's error quoted the damaged schema's raw bytes)
seeds="1 2 3 4 5 6 7 8 152 540 904 $RANDOM"
for seed in $seeds; do
    cp good.db bad.db
    overwrite bad.db "$seed"
    readers bad.db "random bytes, seed $seed"
done

# ---- being recorded ----
trace_bg live.db "$PROGS/dier" spin 0 1
sleep 0.1
refused live.db "while being recorded" "still being recorded, or its recording was cut off"
kill -TERM "$MPID"
wait "$MPID" || true
assert_eq "once memtrace finished it: summary reads it" 0 "$("$MEMTRACE" summary live.db >/dev/null 2>&1; echo $?)"
assert_eq "once memtrace finished it: integrity" ok "$(q live.db "PRAGMA integrity_check")"

# ---- memtrace itself killed while recording ----
trace_bg cut.db "$PROGS/dier" spin 0 1
sleep 0.1
target=$(pgrep -P "$MPID" -x dier | head -1)
kill -KILL "$MPID"
wait "$MPID" || true
kill -KILL "$target" 2>/dev/null || true
rm -rf /dev/shm/memtrace."$MPID".* # its session, which nobody is left to remove
refused cut.db "memtrace killed while recording" "still being recorded, or its recording was cut off"
assert_eq "memtrace killed while recording: still a valid SQLite file" ok "$(q cut.db "PRAGMA integrity_check")"
finish
