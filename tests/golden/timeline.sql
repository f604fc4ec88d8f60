-- timeline.sql - every layer `memtrace timeline` shows, at known moments:
-- the heap, a mapping, the bundled allocator's arenas, and RSS samples of
-- two processes, one of which ends before the trace does.  The trace lasts
-- 100 us (meta.duration_ns); with --points 10 the points are at 10, 20, ...
-- 100 us, and a point at t shows the events with ts <= t.
--
-- Process 1 (pid 400): thread 1; process 2 (pid 401, a fork child, 50 to
-- 80 us): thread 2.  Arena events are the bundled allocator's (kind 32
-- arena_alloc, 33 arena_free; value = 1 MiB).
--
-- seq  ts(us) thread event                    heap  blocks  mapped  arenas
--   1     5   1  arena_alloc 0x10000000          0       0       0  1 MiB
--   2     6   1  malloc 0x1000 1000           1000       1       0  1 MiB
--   3    12   1  malloc 0x2000 3000           4000       2       0
--   4    12   1  mmap 0x100000 65536          4000       2   65536
--   5    25   1  free 0x1000                  3000       1   65536
--   6    30   1  malloc 0x3000 500            3500       2   65536   (in the 30 us point)
--   7    55   2  malloc 0x1000 200            3700       3   65536
--   8    61   1  munmap 0x100000 65536        3700       3       0
--   9    62   1  arena_alloc 0x10100000       3700       3       0  2 MiB
--  10    75   1  free 0x2000                   700       2       0
--  11    79   1  arena_free 0x10000000         700       2       0  1 MiB
--  12    90   1  malloc 0x4000 700            1400       3       0
--  13    95   1  free 0x3000                   900       2       0
-- Heap peak 4000 bytes in 2 blocks at seq 3 (12 us); mapped peak 65536 at
-- seq 4; arenas peak 2 MiB at seq 9 (62 us).
--
-- RSS samples (ts us, process, bytes); process 2 ends at 80 us, process 1
-- at 100 us (a process counts up to its end, included):
--   10 p1 1000000 | 20 p1 1200000 | 40 p1 1500000 | 52 p2 300000
--   60 p1 1400000 | 60 p2 400000  | 85 p1 1100000
-- so rss at 10: 1,000,000; 20, 30: 1,200,000; 40, 50: 1,500,000;
-- 60, 70, 80: 1,800,000 (the peak, first reached at 52 us: 1,500,000 +
-- 300,000); 90, 100: 1,100,000 (process 2 gone).  With --interval 0.03
-- (points at 30, 60, 90 and 100 us) the 80 us end shows at 90.
DELETE FROM event_data;
DELETE FROM event_times;
DELETE FROM markers;
DELETE FROM rss_samples;
DELETE FROM stacks;
DELETE FROM frames;
DELETE FROM modules;
DELETE FROM threads;
DELETE FROM processes;
UPDATE meta SET value = 'prog' WHERE key = 'command';
UPDATE meta SET value = 1 WHERE key = 'complete';
INSERT OR REPLACE INTO meta(key, value) VALUES ('duration_ns', 100000);

INSERT INTO processes(id, pid, ppid, parent_id, exe, cmdline, start_ts, end_ts, exit_status, complete)
VALUES (1, 400, 1, NULL, '/fixture/prog', 'prog', 0, 100000, 0, 1),
       (2, 401, 400, 1, '/fixture/prog', 'prog', 50000, 80000, 0, 1);
INSERT INTO threads(id, process_id, tid, first_seq, first_ts) VALUES (1, 1, 400, 1, 5000), (2, 2, 401, 7, 55000);
INSERT INTO modules(id, process_id, path, base, start, end) VALUES (1, 1, '/fixture/prog', 0, 4096, 65536);
INSERT INTO frames(id, process_id, module_id, ip, offset, function, file, line, symbolized)
VALUES (1, 1, 1, 4112, 4112, 'main', 'prog.c', 10, 1);
INSERT INTO stacks(id, parent_id, frame_id, depth) VALUES (1, NULL, 1, 1);

-- kinds: 0 free, 1 malloc, 10 mmap, 11 munmap, 32 arena_alloc, 33 arena_free
INSERT INTO event_rows(seq, ts, kind, thread, addr, size, stack)
VALUES (1, 5000, 32, 1, 268435456, 1048576, NULL),
       (2, 6000, 1, 1, 4096, 1000, 1),
       (3, 12000, 1, 1, 8192, 3000, 1),
       (4, 12000, 10, 1, 1048576, 65536, 1),
       (5, 25000, 0, 1, 4096, NULL, NULL),
       (6, 30000, 1, 1, 12288, 500, 1),
       (7, 55000, 1, 2, 4096, 200, 1),
       (8, 61000, 11, 1, 1048576, 65536, NULL),
       (9, 62000, 32, 1, 269484032, 1048576, NULL),
       (10, 75000, 0, 1, 8192, NULL, NULL),
       (11, 79000, 33, 1, 268435456, 1048576, NULL),
       (12, 90000, 1, 1, 16384, 700, 1),
       (13, 95000, 0, 1, 12288, NULL, NULL);

INSERT INTO rss_samples(ts, seq, process_id, rss_bytes, vm_bytes)
VALUES (10000, 4, 1, 1000000, 9000000),
       (20000, 5, 1, 1200000, 9000000),
       (40000, 7, 1, 1500000, 9000000),
       (52000, 7, 2, 300000, 9000000),
       (60000, 8, 1, 1400000, 9000000),
       (60000, 8, 2, 400000, 9000000),
       (85000, 12, 1, 1100000, 9000000);
