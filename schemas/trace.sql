-- trace.sql - the memtrace database, the contract between the collector
-- (which writes it) and the analyzer and users (who read it).
--
-- Single source of the schema: the build embeds this file into the memtrace
-- binary.  PRAGMA user_version holds the schema version (MT_SCHEMA_VERSION
-- in lib/mt_db.h); a database of another version is refused with one line.
-- Lookup tables (domains, event_kinds, marker_kinds) are filled from the
-- lists in lib/mt_event.h.  Times are nanoseconds since the session start
-- (meta.start_ns holds that instant of CLOCK_MONOTONIC).  docs/schema.md
-- documents every column with example queries.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;

CREATE TABLE domains (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    layer       INTEGER NOT NULL,
    description TEXT
);

CREATE TABLE event_kinds (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    domain_id   INTEGER NOT NULL REFERENCES domains(id),
    is_alloc    INTEGER NOT NULL,
    is_free     INTEGER NOT NULL,
    description TEXT,
    release_kind INTEGER              -- for a kind that allocates a block of the C library or a
                                      -- CPython domain: the kind that releases it (event_data.free_delta)
);

CREATE TABLE marker_kinds (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT
);

-- One row per traced process image: a fork child and an exec'd image each
-- get their own row.
CREATE TABLE processes (
    id          INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    ppid        INTEGER,
    parent_id   INTEGER REFERENCES processes(id),  -- fork parent
    exec_of     INTEGER REFERENCES processes(id),  -- image this one replaced
    exe         TEXT,
    cmdline     TEXT,     -- arguments joined by spaces
    start_ts    INTEGER,
    end_ts      INTEGER,
    exit_status INTEGER,  -- exit code, when it exited normally
    exit_signal INTEGER,  -- signal that killed it, when it did
    complete    INTEGER NOT NULL DEFAULT 0,  -- 1 when its end was seen cleanly
    free_null   INTEGER NOT NULL DEFAULT 0,  -- free(NULL) calls (not events)
    lost_events INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE threads (
    id          INTEGER PRIMARY KEY,
    process_id  INTEGER NOT NULL REFERENCES processes(id),
    tid         INTEGER NOT NULL,
    first_seq   INTEGER,
    first_ts    INTEGER
);

CREATE TABLE modules (
    id          INTEGER PRIMARY KEY,
    process_id  INTEGER NOT NULL REFERENCES processes(id),
    path        TEXT NOT NULL,
    base        INTEGER NOT NULL,  -- load bias
    start       INTEGER NOT NULL,
    end         INTEGER NOT NULL
);

-- A distinct return address of a process, symbolized after the run.
CREATE TABLE frames (
    id          INTEGER PRIMARY KEY,
    process_id  INTEGER NOT NULL REFERENCES processes(id),
    module_id   INTEGER REFERENCES modules(id),
    ip          INTEGER NOT NULL,   -- address in the process
    offset      INTEGER,            -- ip relative to the module's load bias
    function    TEXT,               -- NULL until symbolized or when unknown
    file        TEXT,
    line        INTEGER,
    symbolized  INTEGER NOT NULL DEFAULT 0, -- 1 once the symbolizer looked at it
    python      INTEGER NOT NULL DEFAULT 0  -- 1: a Python frame (function = qualified name,
                                            -- file = co_filename, ip = code object and
                                            -- instruction, tagged with bit 63)
);

-- Call stacks as a trie: a stack is its innermost node; parent_id walks
-- towards main.  id 0 (absent) is the empty stack.
CREATE TABLE stacks (
    id          INTEGER PRIMARY KEY,
    parent_id   INTEGER,            -- NULL at the outermost frame
    frame_id    INTEGER NOT NULL REFERENCES frames(id),
    depth       INTEGER NOT NULL    -- 1 at the outermost frame
);

-- Every allocation event on every layer, in `seq` order: a row each, except
-- that a release (free, PyMem_RawFree, PyMem_Free, PyObject_Free) that has
-- no stack and is made by the thread that allocated its block, under the
-- same higher-layer call (via), is often stored in the allocation's row as
-- free_delta (docs/schema.md says when): it is event seq + free_delta, of
-- kind event_kinds.release_kind, with the row's thread, addr and via.
-- Compact on purpose (the bulk of the file); read it through the `events`
-- view, which has a row for every event and adds the time (from
-- event_times), names, pid and tid.
CREATE TABLE event_data (
    kind        INTEGER NOT NULL,     -- event_kinds.id
    thread      INTEGER NOT NULL,     -- threads.id
    addr        INTEGER,              -- block address (result, or the freed block)
    size        INTEGER,              -- requested bytes (NULL for free)
    stack       INTEGER,              -- stacks.id of the innermost frame
    free_delta  INTEGER,              -- the block's release, folded into this row: its seq minus
                                      -- this seq (a release with no row of its own; see below);
                                      -- 0 when its release has a row or was not seen
    via         INTEGER,              -- domains.id of the higher-layer call this one serves
                                      -- (a malloc made inside PyMem_RawMalloc: 2), NULL at top level
    old_addr    INTEGER,              -- realloc/mremap: the replaced block
    failed      INTEGER,              -- 1 when the call failed (NULL result)
    pool        INTEGER,              -- bundled-allocator events: the pool
    size_class  INTEGER,              -- bundled-allocator events: the size class
    seq         INTEGER PRIMARY KEY   -- global total order over all threads and processes
);
-- (seq is declared last: as the rowid alias it takes no space in a row, and
-- trailing NULL columns need not be stored at all; see lib/mt_evstore.h)

-- When the events happened: the events from this row's seq up to the next
-- row's (exclusive) have time ts (ns since session start).  A row where
-- the time changes, not one per event: records carry a clock that memtrace
-- advances every 100 us (unless --precise-times), and times are made
-- non-decreasing in seq order.  The time of event S:
--   SELECT ts FROM event_times WHERE seq <= S ORDER BY seq DESC LIMIT 1
CREATE TABLE event_times (
    ts          INTEGER NOT NULL,
    seq         INTEGER PRIMARY KEY   -- (last, as in event_data: the record holds ts alone)
);

CREATE TABLE markers (
    seq         INTEGER NOT NULL,
    ts          INTEGER NOT NULL,
    thread      INTEGER REFERENCES threads(id),
    process_id  INTEGER NOT NULL REFERENCES processes(id),
    kind        INTEGER NOT NULL REFERENCES marker_kinds(id),
    value       INTEGER
);

CREATE TABLE rss_samples (
    ts          INTEGER NOT NULL,
    seq         INTEGER NOT NULL,     -- events before this sample have seq < this
    process_id  INTEGER NOT NULL REFERENCES processes(id),
    rss_bytes   INTEGER NOT NULL,
    vm_bytes    INTEGER NOT NULL
);

-- The C library's own view of its heap (glibc's mallinfo2), taken when a
-- process exits (in its exit path, outside any allocator call): what it
-- got from the OS, what is in use, what it keeps free.  One row per process
-- that exited through exit() or main's return with the preload library.
CREATE TABLE malloc_stats (
    process_id           INTEGER NOT NULL REFERENCES processes(id),
    seq                  INTEGER NOT NULL,  -- events with a smaller seq are reflected
    ts                   INTEGER NOT NULL,
    arena_bytes          INTEGER,  -- from the OS for its arenas: brk heap and mmapped heaps (arena)
    in_use_bytes         INTEGER,  -- in allocated chunks of the arenas (uordblks; not the mmapped ones)
    free_bytes           INTEGER,  -- free, kept in bins and the top chunk (fordblks)
    fastbin_free_bytes   INTEGER,  -- of those, in fast bins (fsmblks)
    top_releasable_bytes INTEGER,  -- releasable from the top of the heap (keepcost)
    mmapped_bytes        INTEGER,  -- in chunks served by mmap (hblkhd)
    mmapped_chunks       INTEGER,  -- chunks served by mmap (hblks)
    free_chunks          INTEGER   -- free chunks, not counting fast bins (ordblks)
);

-- Filled by later layers (CPython); empty otherwise.

-- The bundled allocator's own statistics (pym_stats), taken when a
-- process exits (--allocator=bundled): one row per size class and one with
-- size_class NULL for the totals.  Events with seq < this seq are the ones
-- it reflects, so the layout rebuilt from allocator_events can be checked
-- against it.
CREATE TABLE allocator_stats (
    process_id   INTEGER NOT NULL REFERENCES processes(id),
    seq          INTEGER NOT NULL,
    size_class   INTEGER,          -- NULL: the totals row
    arenas       INTEGER,          -- totals row: arenas mapped
    pools_used   INTEGER,
    pools_full   INTEGER,
    pools_empty  INTEGER,
    blocks_used  INTEGER,
    blocks_free  INTEGER,
    bytes_in_use INTEGER,          -- totals row
    bad_frees    INTEGER           -- totals row: double_free events
);

-- One row per process that ran a CPython interpreter: what memtrace found
-- and what it could capture.
CREATE TABLE python (
    process_id     INTEGER PRIMARY KEY REFERENCES processes(id),
    version        TEXT,      -- Py_GetVersion(), first word
    hexversion     INTEGER,   -- PY_VERSION_HEX
    allocator      TEXT,      -- pymalloc, pymalloc_debug, malloc, malloc_debug, or NULL (custom)
    arena_size     INTEGER,   -- pymalloc arena bytes for this version (NULL in malloc modes)
    pool_size      INTEGER,   -- pymalloc pool bytes
    size_classes   INTEGER,   -- pymalloc size classes (small-request threshold / alignment)
    small_max      INTEGER,   -- largest request pymalloc serves itself (512)
    installs       INTEGER,   -- times the domain wrappers were installed (>1: re-installed after preinit)
    frames         INTEGER,   -- 1 when Python frames are in the stacks
    gc_threshold0  INTEGER,
    gc_threshold1  INTEGER,
    gc_threshold2  INTEGER,
    gc_callback_seq INTEGER,  -- collections after this seq are in gc_events
    gc_before0     INTEGER,   -- gc.get_stats()[g]['collections'] when the callback went in
    gc_before1     INTEGER,
    gc_before2     INTEGER,
    gc_after0      INTEGER,   -- the same at atexit (NULL if not reached)
    gc_after1      INTEGER,
    gc_after2      INTEGER,
    startup_rss    INTEGER,   -- resident bytes when the user's code started (py_user_code)
    stats_seq      INTEGER,   -- pymalloc's own figures below and in pymalloc_stats
                              -- reflect the events with seq < stats_seq (taken at atexit)
    allocated_blocks INTEGER, -- sys.getallocatedblocks()
    arenas_allocated INTEGER, -- from sys._debugmallocstats: arenas allocated in all
    arenas_reclaimed INTEGER, --   ... freed again
    arenas_highwater INTEGER, --   ... most at once
    arenas_current   INTEGER, --   ... mapped at stats_seq
    note           TEXT       -- what could not be captured, and why
);

-- pymalloc's own per-class figures (sys._debugmallocstats) at python.stats_seq,
-- one row per size class in use: for checking the state rebuilt from events.
CREATE TABLE pymalloc_stats (
    process_id  INTEGER NOT NULL REFERENCES processes(id),
    size_class  INTEGER NOT NULL,  -- block size = (size_class + 1) * 16 (3.8+)
    pools       INTEGER NOT NULL,
    blocks_used INTEGER NOT NULL
);

CREATE TABLE gc_events (
    id          INTEGER PRIMARY KEY,
    process_id  INTEGER,
    thread      INTEGER REFERENCES threads(id),
    generation  INTEGER,
    start_seq   INTEGER,
    stop_seq    INTEGER,
    start_ts    INTEGER,
    stop_ts     INTEGER,
    collected   INTEGER,
    uncollectable INTEGER,
    trigger_seq INTEGER
);

CREATE VIEW events AS
SELECT u.seq, (SELECT ts FROM event_times WHERE seq <= u.seq ORDER BY seq DESC LIMIT 1) AS ts_ns,
       p.pid, t.tid, k.name AS kind, d.name AS domain,
       u.addr, u.size, u.old_addr, u.stack AS stack_id, u.failed,
       u.thread AS thread_id, t.process_id, u.via
FROM (SELECT seq, kind, thread, addr, size, old_addr, stack, failed, via FROM event_data
      UNION ALL  -- the releases folded into rows
      SELECT e.seq + e.free_delta, r.release_kind, e.thread, e.addr, NULL, NULL, NULL, NULL, e.via
      FROM event_data e JOIN event_kinds r ON r.id = e.kind WHERE e.free_delta > 0) u
JOIN threads t ON t.id = u.thread
JOIN processes p ON p.id = t.process_id
JOIN event_kinds k ON k.id = u.kind
JOIN domains d ON d.id = k.domain_id;

-- The bundled allocator's internal events (--allocator=bundled): arena,
-- pool and block transitions, in the same order as every other event.
-- Arenas are 1 MiB and aligned to it, so an address's arena is its value
-- rounded down.  Kinds and what `block` and `value` hold: event_kinds.
CREATE VIEW allocator_events AS
SELECT e.seq, (SELECT ts FROM event_times WHERE seq <= e.seq ORDER BY seq DESC LIMIT 1) AS ts_ns,
       e.thread AS thread_id, t.process_id, k.name AS kind,
       CASE WHEN k.name LIKE 'fallback%' THEN NULL ELSE (e.addr >> 20) << 20 END AS arena,
       e.pool, e.addr AS block, e.size_class, e.size AS value
FROM event_data e
JOIN event_kinds k ON k.id = e.kind
JOIN threads t ON t.id = e.thread
WHERE e.kind >= 32 AND k.domain_id = 5;

-- A stack flattened: one row per frame, depth 1 = innermost.
CREATE VIEW stack_frames AS
WITH RECURSIVE walk(stack_id, node, level) AS (
    SELECT id, id, 1 FROM stacks
    UNION ALL
    SELECT w.stack_id, s.parent_id, w.level + 1
    FROM walk w JOIN stacks s ON s.id = w.node
    WHERE s.parent_id IS NOT NULL
)
SELECT w.stack_id, w.level AS depth, f.function, f.file, f.line, m.path AS module, f.ip
FROM walk w JOIN stacks s ON s.id = w.node
JOIN frames f ON f.id = s.frame_id
LEFT JOIN modules m ON m.id = f.module_id;

CREATE VIEW marker_names AS
SELECT m.seq, m.ts AS ts_ns, m.process_id, k.name AS kind, m.value
FROM markers m JOIN marker_kinds k ON k.id = m.kind;
