#!/usr/bin/env bash
# os_layer.sh - the OS layer recorded as system calls (--os=syscalls, the
# default; --mode=ptrace; static programs), checked against what the
# programs are known to do:
#
#   osmaps (tests/programs/osmaps.c): each of 5 malloc(1 MiB) is served by an
#     mmap of 1 MiB + 4 KiB made inside it (via = libc, the sequence number
#     just before the malloc's, the block 16 bytes into the mapping), each
#     free by a munmap just after it; a thread's 256 KiB stack is one mmap of
#     the creating thread, outside any malloc; the program's own mmap,
#     madvise(MADV_DONTNEED) and munmap are top level, with their arguments;
#   mmapper (the shared workload): its 100 mmap, 200 mremap, 100 munmap and
#     5 sbrk calls after main, exactly, and the 2 brk system calls of the two
#     sbrk that move the break (via = os);
#   static_allocs: statically linked, so traced with ptrace alone: the same
#     system calls as strace counts, and its malloc/free calls from
#     breakpoints on those symbols;
#   execer + known_allocs: each image has its own loader mappings;
#   under another tracer (strace) ptrace is taken: a warning, and the hooks
#   record the heap and the program's own mapping calls (--os=hooks).
source "$(dirname "$0")/lib.sh"

MIB=1048576
CHUNK=$((MIB + 4096))

# ---- osmaps ----
trace os.db "$PROGS/osmaps"
assert_eq "osmaps: exit status" 0 "$RC"
assert_eq "osmaps: meta os_capture, complete (incomplete_reason: $(meta os.db incomplete_reason))" "syscalls|1" \
    "$(q os.db "SELECT (SELECT value FROM meta WHERE key = 'os_capture'), (SELECT value FROM meta WHERE key = 'complete')")"
assert_true "osmaps: memtrace's own calls were left out and counted" test "$(meta os.db os_own_calls)" -gt 0
main=$(q os.db "SELECT seq FROM marker_names WHERE kind = 'main_enter'")
assert_eq "osmaps: loader mappings before main" 1 "$(q os.db "SELECT count(*) > 3 FROM events WHERE kind = 'mmap' AND seq < $main")"
assert_eq "osmaps: 5 mmaps of 1 MiB + 4 KiB inside malloc (via libc), each just before its malloc, the block 16 bytes in" \
    "5|5" \
    "$(q os.db "SELECT count(*), sum(m.kind = 'malloc' AND m.size = $MIB AND m.addr = o.addr + 16 AND m.thread_id = o.thread_id)
                FROM events o JOIN events m ON m.seq = o.seq + 1
                WHERE o.kind = 'mmap' AND o.via = 0 AND o.size = $CHUNK")"
assert_eq "osmaps: 5 munmaps inside free (via libc), each just after its free" "5|5" \
    "$(q os.db "SELECT count(*), sum(f.kind = 'free' AND f.addr = o.addr + 16 AND o.size = $CHUNK)
                FROM events o JOIN events f ON f.seq = o.seq - 1
                WHERE o.kind = 'munmap' AND o.via = 0 AND o.seq > $main")"
# stacks of system calls: unwound by the launcher from the stopped thread
assert_eq "osmaps: those 10 calls' stacks pass through main and the C library's malloc/free" "10" \
    "$(q os.db "SELECT count(*) FROM events e WHERE e.via = 0 AND e.size = $CHUNK AND
                EXISTS (SELECT 1 FROM stack_frames f WHERE f.stack_id = e.stack_id AND f.function = 'main') AND
                EXISTS (SELECT 1 FROM stack_frames f WHERE f.stack_id = e.stack_id
                        AND f.function IN ('__libc_malloc', 'malloc', 'free', '__libc_free') AND f.module LIKE '%libc.so%')")"
assert_eq "osmaps: the innermost frame of an mmap inside malloc is the C library's mmap" "5" \
    "$(q os.db "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id = e.stack_id
                WHERE e.kind = 'mmap' AND e.via = 0 AND e.size = $CHUNK AND f.depth = 1 AND f.function LIKE '%mmap%'")"
assert_eq "osmaps: no other mapping call after main is via libc (the 10, and the kept 2 MiB block's mmap), but brk" 11 \
    "$(q os.db "SELECT count(*) FROM events WHERE domain = 'os' AND via IS NOT NULL AND seq > $main AND kind != 'brk'")"
# brk: the C library's calls inside the 100 KiB mallocs are recorded by the
# hooks, the raw ones by the tracer; each starts where the last one left
# the break, whoever recorded it
assert_eq "osmaps: brk inside malloc (via libc), then 3 raw calls: probe, +64 KiB, back" "1|0,65536,-65536" \
    "$(q os.db "SELECT (SELECT count(*) > 0 FROM events WHERE kind = 'brk' AND via = 0 AND seq > $main),
                       (SELECT group_concat(addr - old_addr) FROM (SELECT addr, old_addr FROM events
                                                                  WHERE kind = 'brk' AND via IS NULL AND seq > $main ORDER BY seq))")"
assert_eq "osmaps: after main, every brk call's break before is the last one's after" "0|4" \
    "$(q os.db "SELECT count(*) FILTER (WHERE old_addr != prev), count(prev)
                FROM (SELECT old_addr, lag(addr) OVER (ORDER BY seq) AS prev FROM events
                      WHERE kind = 'brk' AND seq > $main)")"
# the thread's stack: 256 KiB + a guard page, mapped by main before the
# thread ran; at its end the thread gives the unused stack back (madvise)
stack=$((256 * 1024 + 4096))
assert_eq "osmaps: one top-level mmap of the thread's stack, by the main thread, before the thread's first event" \
    "1|1|1" \
    "$(q os.db "SELECT count(*), sum(tid = pid), sum(seq < (SELECT min(first_seq) FROM threads t JOIN processes p
                                                              ON p.id = t.process_id WHERE t.tid != p.pid))
                FROM events WHERE kind = 'mmap' AND size = $stack AND via IS NULL AND seq > $main")"
assert_eq "osmaps: the stack mapping's call stack: main, pthread_create" "1" \
    "$(q os.db "SELECT count(*) FROM events e WHERE e.kind = 'mmap' AND e.size = $stack AND
                (SELECT group_concat(function) FROM (SELECT function FROM stack_frames f WHERE f.stack_id = e.stack_id
                                                     AND function IN ('main', 'pthread_create') ORDER BY depth DESC))
                = 'main,pthread_create'")"
assert_eq "osmaps: the thread's own madvise lies in that stack" 1 \
    "$(q os.db "SELECT count(*) FROM events a JOIN events s ON s.kind = 'mmap' AND s.size = $stack
                WHERE a.kind = 'madvise' AND a.tid != a.pid AND a.addr >= s.addr AND a.addr + a.size <= s.addr + s.size")"
assert_eq "osmaps: the program's mmap, madvise(DONTNEED, 64 KiB), munmap: top level, one address; then an mmap of 2^60 bytes that failed" \
    "mmap|$MIB||1|
madvise|65536|4|1|
munmap|$MIB||1|
mmap|$((1 << 60))||0|1" \
    "$(q os.db "WITH m AS (SELECT addr FROM events WHERE kind = 'mmap' AND size = $MIB AND via IS NULL AND seq > $main)
                SELECT kind, size, old_addr, addr = (SELECT addr FROM m), failed FROM events
                WHERE seq > (SELECT min(seq) FROM events WHERE kind = 'mmap' AND size = $MIB AND via IS NULL AND seq > $main) - 1
                  AND kind IN ('mmap', 'madvise', 'munmap') AND tid = pid AND via IS NULL ORDER BY seq")"
# glibc's own statistics at exit: the kept 2 MiB block is its only mmapped chunk
assert_eq "osmaps: malloc_stats at exit: one mmapped chunk of 2 MiB + 4 KiB; arena = in use + free; after every heap event" \
    "1|1|$((2 * MIB + 4096))|1|1" \
    "$(q os.db "SELECT count(*), mmapped_chunks, mmapped_bytes, arena_bytes = in_use_bytes + free_bytes,
                       seq > (SELECT max(seq) FROM events WHERE domain = 'libc') FROM malloc_stats")"
# the same program with the hooks alone: only its own two calls
TRACE_OPTS=(--os=hooks)
trace osh.db "$PROGS/osmaps"
TRACE_OPTS=()
assert_eq "osmaps --os=hooks: only the program's mmap (and the failed one) and munmap; the same exit status" "0
mmap|2
munmap|1" "$RC
$(q osh.db "SELECT kind, count(*) FROM events WHERE domain = 'os' GROUP BY kind ORDER BY kind")"

# The C library's own mapping calls (inside malloc and free, a thread's
# stack) go to hooks through its patched entries, with no ptrace stop;
# MEMTRACE_NO_LIBC_ENTRIES=1 leaves them to the tracer.  Both record the same
# calls, fields and order.
os_calls() { # DB: the OS events after main, the way both ways see them
    q "$1" "SELECT kind, coalesce(via, '-'), size, failed, tid = pid,
                   CASE WHEN kind = 'brk' THEN addr - old_addr || ',' || size ELSE '' END
            FROM events WHERE domain = 'os'
              AND seq > (SELECT seq FROM marker_names WHERE kind = 'main_enter') ORDER BY seq"
}
MEMTRACE_NO_LIBC_ENTRIES=1 trace osn.db "$PROGS/osmaps"
assert_eq "osmaps: the C library's calls, hooked or stopped for: the same events" "$(os_calls osn.db)" "$(os_calls os.db)"
assert_true "osmaps: the 10 calls inside malloc and free made no stop ($(meta os.db os_tracer_stops) stops, $(meta osn.db os_tracer_stops) without the hooks)" \
    test "$(meta os.db os_tracer_stops)" -le $(($(meta osn.db os_tracer_stops) - 20))

# ---- mmapper ----
if [[ -x ${WORKLOADS:-}/mmapper ]]; then
    trace mm.db "$WORKLOADS/mmapper"
    MEMTRACE_NO_LIBC_ENTRIES=1 trace mmn.db "$WORKLOADS/mmapper"
    assert_eq "mmapper: the C library's calls, hooked or stopped for: the same events (count, digest)" \
        "$(os_calls mmn.db | wc -l) $(os_calls mmn.db | md5sum)" "$(os_calls mm.db | wc -l) $(os_calls mm.db | md5sum)"
    assert_eq "mmapper: exit status" 0 "$RC"
    main=$(q mm.db "SELECT seq FROM marker_names WHERE kind = 'main_enter'")
    assert_eq "mmapper: after main, top level: 100 mmap (128 KiB..1 MiB, multiples of 64 KiB), 200 mremap, 100 munmap" \
        "mmap|100|100
mremap|200|200
munmap|100|100" \
        "$(q mm.db "SELECT kind, count(*), sum(size % 65536 = 0 AND size BETWEEN 131072 AND 2 * $MIB) FROM events
                    WHERE seq > $main AND via IS NULL AND kind IN ('mmap', 'mremap', 'munmap') GROUP BY kind ORDER BY kind")"
    assert_eq "mmapper: every munmap ends a region the trace mapped (mmap or mremap)" 100 \
        "$(q mm.db "SELECT count(*) FROM events u WHERE u.kind = 'munmap' AND u.seq > $main AND EXISTS
                    (SELECT 1 FROM events m WHERE m.kind IN ('mmap', 'mremap') AND m.addr = u.addr AND m.seq < u.seq)")"
    assert_eq "mmapper: a resident-memory sample right after every mapping call (hooks' and tracer's)" "0|400" \
        "$(q mm.db "SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM rss_samples r WHERE r.seq = e.seq + 1)),
                           count(*) FILTER (WHERE e.kind IN ('mmap', 'mremap', 'munmap'))
                    FROM events e WHERE e.domain = 'os' AND e.kind != 'sbrk' AND e.seq > $main")"
    # each region is touched after its mmap: resident memory grows by the
    # regions' pages and falls back when they are unmapped
    assert_eq "mmapper: resident memory after the 100 munmaps is at least 60 MiB below its peak" 1 \
        "$(q mm.db "SELECT max(rss_bytes) - (SELECT r.rss_bytes FROM rss_samples r JOIN events e ON r.seq = e.seq + 1
                                              WHERE e.kind = 'munmap' ORDER BY e.seq DESC LIMIT 1) > 60 * $MIB
                    FROM rss_samples")"
    # brk: addr = the break after the call, old_addr = before, size = the
    # brk heap's size after it
    assert_eq "mmapper: 5 sbrk calls; its 2 brk system calls via os move the break +4 MiB, -4 MiB" \
        "5|4194304,-4194304|2" \
        "$(q mm.db "SELECT (SELECT count(*) FROM events WHERE kind = 'sbrk'),
                           (SELECT group_concat(d) FROM (SELECT addr - old_addr AS d FROM events
                                                          WHERE kind = 'brk' AND via = 1 ORDER BY seq)),
                           (SELECT count(*) FROM events WHERE kind = 'brk' AND via = 1 AND size =
                                   addr - (SELECT addr FROM events WHERE kind = 'brk' ORDER BY seq LIMIT 1))")"
fi

# grow: glibc moves the break 765 times inside realloc and malloc
if [[ -x ${WORKLOADS:-}/grow ]]; then
    trace gr.db "$WORKLOADS/grow"
    MEMTRACE_NO_LIBC_ENTRIES=1 trace grn.db "$WORKLOADS/grow"
    assert_eq "grow: 765 brk system calls inside the heap calls (via libc)" 765 \
        "$(q gr.db "SELECT count(*) FROM events WHERE kind = 'brk' AND via = 0")"
    assert_eq "grow: the C library's calls, hooked or stopped for: the same events (count, digest)" \
        "$(os_calls grn.db | wc -l) $(os_calls grn.db | md5sum)" "$(os_calls gr.db | wc -l) $(os_calls gr.db | md5sum)"
    assert_true "grow: no stop for them ($(meta gr.db os_tracer_stops) stops, $(meta grn.db os_tracer_stops) without the hooks)" \
        test "$(meta gr.db os_tracer_stops)" -le $(($(meta grn.db os_tracer_stops) - 2 * 765))
fi

# ---- a static program ----
RC=0
"$MEMTRACE" -o st.db "$PROGS/static_allocs" >out 2>err || RC=$?
assert_eq "static: exit status" 0 "$RC"
assert_true "static: says it is statically linked and falls back to ptrace" grep -q "statically linked.*ptrace" err
assert_eq "static: meta mode, os_capture, complete" "ptrace|syscalls|1" \
    "$(q st.db "SELECT (SELECT value FROM meta WHERE key = 'mode'), (SELECT value FROM meta WHERE key = 'os_capture'),
                       (SELECT value FROM meta WHERE key = 'complete')")"
assert_eq "static: one process, exit 0, its executable" "1|0|static_allocs" \
    "$(q st.db "SELECT count(*), exit_status, replace(exe, rtrim(exe, replace(exe, '/', '')), '') FROM processes")"
assert_eq "static: 3 mmaps and 3 munmaps of 1 MiB + 4 KiB" "3|3" \
    "$(q st.db "SELECT sum(kind = 'mmap'), sum(kind = 'munmap') FROM events WHERE size = $CHUNK")"
assert_eq "static: their stacks reach main (symbols of the static executable)" 6 \
    "$(q st.db "SELECT count(*) FROM events e WHERE e.size = $CHUNK AND
                EXISTS (SELECT 1 FROM stack_frames f WHERE f.stack_id = e.stack_id AND f.function = 'main')")"
# its malloc and free, from breakpoints on the symbols (glibc's own start-up
# mallocs included: static glibc calls malloc by its symbol)
assert_eq "static: breakpoints on malloc, calloc, realloc, free" 4 "$(meta st.db static_breakpoints)"
assert_eq "static: main's 3 x malloc(1 MiB) and 20 x malloc(100); 23 frees of them" "3|20|23" \
    "$(q st.db "SELECT sum(kind = 'malloc' AND size = $MIB), sum(kind = 'malloc' AND size = 100),
                       (SELECT count(*) FROM events f WHERE f.kind = 'free' AND f.addr IN
                          (SELECT addr FROM events WHERE kind = 'malloc' AND size IN ($MIB, 100)))
                FROM events")"
assert_eq "static: each 1 MiB malloc is served by the mmap just before it (via libc), each free by the munmap after it" "3|3" \
    "$(q st.db "SELECT (SELECT count(*) FROM events m JOIN events o ON o.seq = m.seq - 1 WHERE m.kind = 'malloc'
                        AND m.size = $MIB AND o.kind = 'mmap' AND o.via = 0 AND o.addr + 16 = m.addr),
                       (SELECT count(*) FROM events f JOIN events o ON o.seq = f.seq + 1 WHERE f.kind = 'free'
                        AND o.kind = 'munmap' AND o.via = 0 AND o.addr + 16 = f.addr)")"
assert_eq "static: main's mallocs have stacks through main" 23 \
    "$(q st.db "SELECT count(*) FROM events e WHERE e.kind = 'malloc' AND e.size IN ($MIB, 100) AND
                EXISTS (SELECT 1 FROM stack_frames f WHERE f.stack_id = e.stack_id AND f.function = 'main')")"
if command -v strace >/dev/null; then
    want=$(strace -f -qq -c -o strace.out -e trace=mmap,munmap,mremap,brk "$PROGS/static_allocs" && \
           awk '$NF ~ /^(mmap|munmap|mremap|brk)$/ { print $NF "=" $(NF-1) }' strace.out | sort)
    assert_eq "static: system calls = strace's" "$want" \
        "$(q st.db "SELECT kind || '=' || count(*) FROM events WHERE domain = 'os' GROUP BY kind ORDER BY kind")"
fi

# ---- no ptrace (here: another tracer has the program): the hooks only ----
if command -v strace >/dev/null; then
    RC=0
    # (a MEMTRACE_SANITIZE build: LeakSanitizer cannot run under ptrace)
    ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o /dev/null "$MEMTRACE" -q -o fb.db "$PROGS/osmaps" >out 2>err || RC=$?
    assert_eq "no ptrace: exit status" 0 "$RC"
    assert_eq "no ptrace: one warning line naming --os=hooks" 1 "$(grep -c 'warning: .*--os=hooks' err)"
    assert_eq "no ptrace: meta os_capture, complete" "hooks|1" \
        "$(q fb.db "SELECT (SELECT value FROM meta WHERE key = 'os_capture'), (SELECT value FROM meta WHERE key = 'complete')")"
    assert_eq "no ptrace: the heap events and the program's own mmap/munmap" "free|5
malloc|10
mmap|2
munmap|1" "$(q fb.db "SELECT kind, count(*) FROM events WHERE kind IN ('malloc', 'free', 'mmap', 'munmap')
                       AND seq > (SELECT seq FROM marker_names WHERE kind = 'main_enter') GROUP BY kind ORDER BY kind")"
fi

# ---- exec: each image its own loader mappings ----
trace ex.db "$PROGS/execer" "$PROGS/known_allocs"
assert_eq "exec: exit status" 0 "$RC"
assert_eq "exec: both images have mmap events of their own, in order" "2|1" \
    "$(q ex.db "SELECT count(DISTINCT process_id),
                       (SELECT max(seq) FROM events WHERE process_id = 1) < (SELECT min(seq) FROM events WHERE process_id = 2)
                FROM events WHERE kind = 'mmap'")"
# ---- glibc's statistics over time (--malloc-stats MS) ----
if [[ -x ${WORKLOADS:-}/grow ]]; then
    trace ms.db --malloc-stats 10 "$WORKLOADS/grow"
    assert_eq "--malloc-stats: exit status" 0 "$RC"
    assert_true "--malloc-stats 10: several snapshots over the run" \
        test "$(q ms.db "SELECT count(*) FROM malloc_stats")" -ge 5
    assert_eq "--malloc-stats: every snapshot whole (arena = in use + free), in seq order" 0 \
        "$(q ms.db "SELECT count(*) FROM malloc_stats WHERE arena_bytes != in_use_bytes + free_bytes")"
    assert_eq "--malloc-stats: the sampler is one thread of memtrace's besides the program's" 2 \
        "$(q ms.db "SELECT count(*) FROM threads")"
    rc=0
    "$MEMTRACE" --malloc-stats x /bin/true >o 2>e || rc=$?
    assert_eq "--malloc-stats x: usage error, one line" "2|1" "$rc|$(nlines e)"
fi
finish
