#!/usr/bin/env bash
# secure.sh - programs LD_PRELOAD cannot reach: memtrace says so.
#   - set-user-ID (owned by another user) and set-group-ID programs, and
#     programs with file capabilities run by a user without them: the
#     loader runs them in secure-execution mode and ignores LD_PRELOAD.
#     memtrace warns in one line before it starts the program, and the
#     program still runs (untraced, its exit status passed on).
#   - a statically linked program: nothing to interpose; memtrace runs it
#     and warns at the end that no traced process reported in.
# Making set-user-ID files of another user needs root (skipped otherwise);
# the capability case also needs setcap and setpriv.
source "$(dirname "$0")/lib.sh"
# the heap layer's counts are compared with the count shim's, which sees the
# mapping calls made through the library's functions only
TRACE_OPTS=(--os=hooks)
WARN="the loader ignores LD_PRELOAD for it, so nothing will be recorded"

# untraced DB WHAT: the program ran, nothing was recorded
untraced() {
    assert_eq "$2: memtrace exit status (the program's)" 0 "$RC"
    assert_true "$2: the program ran" grep -q "known_allocs: 72 allocations" out
    assert_eq "$2: no process recorded" 0 "$(q "$1" "SELECT count(*) FROM processes")"
    assert_true "$2: the closing warning" grep -q "^memtrace: warning: no traced process reported in" err
}

if [[ $(id -u) == 0 ]]; then
    cp "$PROGS/known_allocs" suid
    chown nobody suid
    chmod 4755 suid
    trace suid.db ./suid
    assert_eq "set-user-ID: the warning before the start, first line" \
        "memtrace: warning: ./suid is set-user-ID: $WARN (trace a copy without that, or record its OS layer with --os=syscalls)" \
        "$(head -1 err)"
    untraced suid.db set-user-ID

    cp "$PROGS/known_allocs" sgid
    chgrp nogroup sgid 2>/dev/null || chgrp 65534 sgid
    chmod 2755 sgid
    trace sgid.db ./sgid
    assert_true "set-group-ID: the warning" grep -q "^memtrace: warning: ./sgid is set-group-ID: $WARN" err
    untraced sgid.db set-group-ID

    cp "$PROGS/known_allocs" own-suid
    chmod 4755 own-suid
    trace own.db ./own-suid
    assert_eq "set-user-ID to oneself: no warning, traced" "0|0|50" \
        "$(printf '%s|%s|' "$RC" "$(grep -c "is set-user-ID" err || true)"; q own.db "SELECT count(*) FROM events WHERE kind = 'malloc'")"

    if command -v setcap >/dev/null && command -v setpriv >/dev/null; then
        cp "$PROGS/known_allocs" capped
        setcap cap_net_raw+ep capped
        chmod 777 "$WORK"
        RC=0
        setpriv --reuid=65534 --regid=65534 --clear-groups "$MEMTRACE" -q -o "$WORK/cap.db" "${TRACE_OPTS[@]}" ./capped >out 2>err || RC=$?
        sed 's/^/memtrace stderr: /' err >&2
        assert_true "file capabilities: the warning" grep -q "^memtrace: warning: ./capped is given file capabilities: $WARN" err
        untraced cap.db "file capabilities"
    else
        echo "setcap or setpriv missing: the file capability case is skipped"
    fi
else
    echo "not root: the set-user-ID cases are skipped"
fi

# a static program: said before launch, and recorded with ptrace instead
# (what it records is checked in os_layer.sh)
trace static.db "$PROGS/static_allocs"
assert_eq "static: memtrace exit status (the program's)" 0 "$RC"
assert_true "static: one line says it is statically linked and how it is recorded" \
    grep -q "is statically linked: the preload library cannot work there; recording with ptrace" err
assert_eq "static: the process is recorded" 1 "$(q static.db "SELECT count(*) FROM processes")"
finish
