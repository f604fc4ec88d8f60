-- pytimeline.sql - `memtrace timeline` on the CPython layers: live bytes of
-- the object, memory and raw domains and of pymalloc's arenas at known
-- moments.  100 us long; with --points 10 a point at t shows ts <= t.
--
-- seq ts(us) event                                      pyobj  pymem   raw  pyarenas
--  1    5  py_arena_alloc 0x20000000 1 MiB                  0      0     0  1048576
--  2   10  obj_malloc 0x20000100 64                        64      0     0
--  3   15  mem_malloc 0x20000200 32                        64     32     0
--  4   20  raw_malloc 0x5000 1000 (via pyobj)              64     32  1000
--  5   20  obj_malloc 0x5000 1000                        1064     32  1000
--  6   40  obj_free 0x20000100                           1000     32  1000
--  7   50  raw_realloc 0x5000 -> 0x6000 2000 (via pyobj) 1000     32  2000
--  8   50  obj_realloc 0x5000 -> 0x6000 2000             2000     32  2000
--  9   70  mem_free 0x20000200                           2000      0  2000
-- 10   80  py_arena_free 0x20000000 1 MiB                2000      0  2000        0
DELETE FROM event_data;
DELETE FROM event_times;
DELETE FROM markers;
DELETE FROM rss_samples;
DELETE FROM stacks;
DELETE FROM frames;
DELETE FROM modules;
DELETE FROM threads;
DELETE FROM processes;
UPDATE meta SET value = 'python3 prog.py' WHERE key = 'command';
UPDATE meta SET value = 1 WHERE key = 'complete';
INSERT OR REPLACE INTO meta(key, value) VALUES ('duration_ns', 100000);

INSERT INTO processes(id, pid, ppid, parent_id, exe, cmdline, start_ts, end_ts, exit_status, complete)
VALUES (1, 500, 1, NULL, '/fixture/python3', 'python3 prog.py', 0, 100000, 0, 1);
INSERT INTO threads(id, process_id, tid, first_seq, first_ts) VALUES (1, 1, 500, 1, 5000);

-- kinds: 15 raw_malloc, 17 raw_realloc, 19 mem_malloc, 22 mem_free, 23 obj_malloc,
-- 25 obj_realloc, 26 obj_free, 27 py_arena_alloc, 28 py_arena_free; via 4 = pyobj
INSERT INTO event_rows(seq, ts, kind, thread, addr, size, old_addr, via)
VALUES (1, 5000, 27, 1, 536870912, 1048576, NULL, NULL),
       (2, 10000, 23, 1, 536871168, 64, NULL, NULL),
       (3, 15000, 19, 1, 536871424, 32, NULL, NULL),
       (4, 20000, 15, 1, 20480, 1000, NULL, 4),
       (5, 20000, 23, 1, 20480, 1000, NULL, NULL),
       (6, 40000, 26, 1, 536871168, NULL, NULL, NULL),
       (7, 50000, 17, 1, 24576, 2000, 20480, 4),
       (8, 50000, 25, 1, 24576, 2000, 20480, NULL),
       (9, 70000, 22, 1, 536871424, NULL, NULL, NULL),
       (10, 80000, 28, 1, 536870912, 1048576, NULL, NULL);
