#!/usr/bin/env bash
# hostile.sh - programs that close every descriptor, lower their limits,
# change directory, install their own signal handlers, malloc in a signal
# handler, vfork, or make threads with clone3 are still traced, exactly; a
# process memtrace cannot trace is named on stderr and runs on untraced
# (tests/programs/hostile.c).
source "$(dirname "$0")/lib.sh"
H=$PROGS/hostile

# mallocs DB SIZE: "process_id|count" of the mallocs of SIZE bytes
mallocs() { q "$1" "SELECT process_id, count(*) FROM events WHERE kind = 'malloc' AND size = $2 GROUP BY 1"; }
# common DB WHAT: exit 0, complete, integrity
common() {
    assert_eq "$2: memtrace exit status" 0 "$RC"
    assert_eq "$2: meta complete" 1 "$(meta "$1" complete)"
    assert_eq "$2: integrity" ok "$(q "$1" "PRAGMA integrity_check")"
}

trace cf.db "$H" closefds
common cf.db closefds
assert_eq "closefds: processes (id, parent_id)" "1|
2|1" "$(q cf.db "SELECT id, parent_id FROM processes ORDER BY id")"
assert_eq "closefds: parent's 10 mallocs of 101" "1|10" "$(mallocs cf.db 101)"
assert_eq "closefds: child's 10 mallocs of 102" "2|10" "$(mallocs cf.db 102)"

trace rl.db "$H" rlimit
common rl.db rlimit
assert_eq "rlimit: processes (id, parent_id): the second child is not traced" "1|
2|1" "$(q rl.db "SELECT id, parent_id FROM processes ORDER BY id")"
assert_eq "rlimit: soft RLIMIT_FSIZE below the region: child traced, 10 mallocs of 103" "2|10" "$(mallocs rl.db 103)"
assert_eq "rlimit: hard RLIMIT_FSIZE below the region: no mallocs of 110" "" "$(mallocs rl.db 110)"
assert_eq "rlimit: parent's 10 mallocs of 104" "1|10" "$(mallocs rl.db 104)"
assert_eq "rlimit: one line on stderr" 1 "$(nlines err)"
assert_true "rlimit: it says which process is not traced and why" \
    grep -q "^memtrace: process [0-9]* is not traced: cannot size its region file (errno 27)" err

trace cd.db "$H" chdir "$PROGS/known_allocs"
common cd.db chdir
assert_eq "chdir: processes (id, parent_id, exec_of)" "1||
2|1|
3||1" "$(q cd.db "SELECT id, parent_id, exec_of FROM processes ORDER BY id")"
assert_eq "chdir: the child's 10 mallocs of 105" "2|10" "$(mallocs cd.db 105)"
assert_eq "chdir: the exec'd known_allocs: 50 mallocs" 50 \
    "$(q cd.db "SELECT count(*) FROM events WHERE process_id = 3 AND kind = 'malloc'")"

trace sh.db "$H" handlers
common sh.db handlers
assert_eq "handlers: 10 mallocs of 107" "1|10" "$(mallocs sh.db 107)"
assert_eq "handlers: 50 mallocs of 106 made in the SIGALRM handler" "1|50" "$(mallocs sh.db 106)"
assert_eq "handlers: each freed" 50 \
    "$(q sh.db "SELECT count(*) FROM events f JOIN events m ON m.addr = f.addr AND m.size = 106
                WHERE f.kind = 'free' AND f.seq = (SELECT min(seq) FROM events x WHERE x.kind = 'free'
                                                   AND x.addr = m.addr AND x.seq > m.seq)")"

trace vf.db "$H" vfork "$PROGS/known_allocs"
common vf.db vfork
assert_eq "vfork: processes (id, parent_id, exec_of): the exec'd child under its parent" "1||
2|1|" "$(q vf.db "SELECT id, parent_id, exec_of FROM processes ORDER BY id")"
assert_eq "vfork: parent's 10 mallocs of 109" "1|10" "$(mallocs vf.db 109)"
assert_eq "vfork: known_allocs' 50 mallocs" 50 \
    "$(q vf.db "SELECT count(*) FROM events WHERE process_id = 2 AND kind = 'malloc'")"

trace th.db "$H" threads
common th.db threads
assert_eq "threads: 4 threads, 100 mallocs of 200 + t each" "200|1|100
201|1|100
202|1|100
203|1|100" "$(q th.db "SELECT size, count(DISTINCT thread_id), count(*) FROM events WHERE kind = 'malloc'
                        AND size BETWEEN 200 AND 203 GROUP BY size ORDER BY size")"
assert_eq "threads: on 4 different threads" 4 \
    "$(q th.db "SELECT count(DISTINCT thread_id) FROM events WHERE kind = 'malloc' AND size BETWEEN 200 AND 203")"
glibc=$(getconf GNU_LIBC_VERSION | awk '{ print $2 }')
if [[ $(printf '%s\n2.34\n' "$glibc" | sort -V | head -1) == 2.34 ]]; then
    echo "glibc $glibc: pthread_create makes its threads with clone3"
    if command -v strace >/dev/null; then
        assert_true "threads: the threads were made by clone3 (strace)" \
            grep -q "clone3" <(strace -f -e trace=clone3 "$H" threads 2>&1)
    fi
fi
finish
