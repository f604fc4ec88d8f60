-- grown.sql - the next version of basic.sql's program, for `memtrace diff
-- basic.db grown.db`: what grew, what shrank, what is new and what went.
--
-- Process 1 (pid 200): threads 1 (main) and 2 (worker); process 2 (pid 201,
-- a fork child): thread 3.  libfoo.so is loaded at another address than in
-- basic (0x71000000): its unnamed frame must match by module + offset.
-- ts = seq * 1000; the trace lasts 20 us.
--
-- seq thread event                                    stack                 leaked
--   1  1  malloc 0x1000 100                           make_leak              100
--   2  1  malloc 0x2000 100                           make_leak              100
--   3  1  malloc 0x3000 100                           make_leak              100
--   4  1  realloc(NULL) -> 0x4000 100                 vec_grow
--   5  1  realloc 0x4000 -> 0x4000 150                vec_grow
--   6  1  realloc 0x4000 -> 0x6000 300                vec_grow
--   7  1  realloc 0x6000 -> 0x9000 450                vec_grow
--   8  1  free 0x9000
--   9  2  malloc 0x5000 150                           worker <- [libfoo]     150
--  10  1  malloc 0x7000 8000   PEAK 8450 (300 make_leak, 150 worker, 8000 big_table)
--  11  1  free 0x7000
--  12  1  malloc 0xa000 64                            parse (new)             64
--  13  3  malloc 0x1000 10                            child_leak
--  14  3  malloc 0x1100 20                            child_leak
--  15  3  free 0x1100
--  16  3  reallocarray 0x1000 -> 0x1200 30            main (pid 201)          30
--  17  3  malloc 0x3000 100    the child's make_leak: same frames as pid 200's  100
--  18  1  malloc 0xb000 2                             tiny (prog.c:80)         2
--  19  1  malloc 0xb100 3                             tiny (prog.c:81)         3
--
-- At the end 649 bytes are live: tiny's 2 and 3 bytes are under 1% of it,
-- so export --massif folds them into "n0: 5 in 2 places, all below
-- massif's threshold (1.00%)".
--
-- Against basic (A), by stack (frames innermost first):
--   make_leak <- main:10      leaked 200 -> 400 (+200), allocated 200 -> 400,
--                             at peak 200 -> 300 (2 processes merged in B)
--   worker <- [libfoo+0x1234] leaked 50 -> 150 (+100), allocated 1050 -> 150,
--                             at peak 1000 -> 150
--   parse <- main:10          only in B: leaked 64, allocated 64
--   tiny:81, tiny:80 <- main  only in B: leaked 3, and 2
--   big_table <- main:10      allocated 5000 -> 8000, at peak 5000 -> 8000
--   vec_grow <- main:10       allocated 1000 -> 1000, at peak 300 -> 0
--   scratch <- main:10        only in A: allocated 64
--   child_leak, main:11       the same in both (left out, counted)
-- Heap peak 6500 -> 8450.
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
INSERT OR REPLACE INTO meta(key, value) VALUES ('duration_ns', 20000);

INSERT INTO processes(id, pid, ppid, parent_id, exe, cmdline, start_ts, end_ts, exit_status, complete)
VALUES (1, 200, 1, NULL, '/fixture/prog', 'prog', 0, 20000, 0, 1),
       (2, 201, 200, 1, '/fixture/prog', 'prog', 12500, 19000, 0, 1);

INSERT INTO threads(id, process_id, tid, first_seq, first_ts)
VALUES (1, 1, 200, 1, 1000), (2, 1, 202, 9, 9000), (3, 2, 201, 13, 13000);

INSERT INTO modules(id, process_id, path, base, start, end)
VALUES (1, 1, '/fixture/prog', 0, 4096, 65536),
       (2, 1, '/lib/libfoo.so', 1895825408, 1895825408, 1895890944),
       (3, 2, '/fixture/prog', 0, 4096, 65536);

INSERT INTO frames(id, process_id, module_id, ip, offset, function, file, line, symbolized)
VALUES (1, 1, 1, 4112, 4112, 'main', 'prog.c', 10, 1),
       (2, 1, 1, 4208, 4208, 'make_leak', 'prog.c', 20, 1),
       (3, 1, 1, 4304, 4304, 'vec_grow', 'vec.c', 30, 1),
       (4, 1, 1, 4420, 4420, 'parse', 'prog.c', 45, 1),
       (5, 1, 1, 4496, 4496, 'worker', 'prog.c', 50, 1),
       (6, 1, 2, 1895829556, 4660, NULL, NULL, NULL, 1),
       (7, 1, 1, 4592, 4592, 'big_table', 'prog.c', 60, 1),
       (8, 2, 3, 4112, 4112, 'main', 'prog.c', 11, 1),
       (9, 2, 3, 4688, 4688, 'child_leak', 'odd,"name".c', 70, 1),
       (10, 2, 3, 4116, 4116, 'main', 'prog.c', 10, 1),
       (11, 2, 3, 4208, 4208, 'make_leak', 'prog.c', 20, 1),
       (12, 1, 1, 4800, 4800, 'tiny', 'prog.c', 80, 1),
       (13, 1, 1, 4804, 4804, 'tiny', 'prog.c', 81, 1);

-- id, parent, frame, depth (1 = outermost)
INSERT INTO stacks(id, parent_id, frame_id, depth)
VALUES (1, NULL, 1, 1),   -- main
       (2, 1, 2, 2),      -- main -> make_leak
       (3, 1, 3, 2),      -- main -> vec_grow
       (4, 1, 4, 2),      -- main -> parse
       (10, NULL, 6, 1),  -- [libfoo]
       (5, 10, 5, 2),     -- [libfoo] -> worker
       (6, 5, 6, 3),      -- [libfoo] -> worker -> [libfoo] (unnamed innermost: skipped)
       (7, 1, 7, 2),      -- main -> big_table
       (8, NULL, 8, 1),   -- main:11 (pid 201)
       (9, 8, 9, 2),      -- main:11 -> child_leak (pid 201)
       (11, NULL, 10, 1), -- main:10 (pid 201, another return address)
       (12, 11, 11, 2),   -- main:10 -> make_leak (pid 201)
       (13, 1, 12, 2),    -- main -> tiny:80
       (14, 1, 13, 2);    -- main -> tiny:81

-- kinds: 0 free, 1 malloc, 3 realloc, 4 reallocarray
INSERT INTO event_rows(seq, ts, kind, thread, addr, size, stack, old_addr, failed)
VALUES (1, 1000, 1, 1, 4096, 100, 2, NULL, NULL),
       (2, 2000, 1, 1, 8192, 100, 2, NULL, NULL),
       (3, 3000, 1, 1, 12288, 100, 2, NULL, NULL),
       (4, 4000, 3, 1, 16384, 100, 3, NULL, NULL),
       (5, 5000, 3, 1, 16384, 150, 3, 16384, NULL),
       (6, 6000, 3, 1, 24576, 300, 3, 16384, NULL),
       (7, 7000, 3, 1, 36864, 450, 3, 24576, NULL),
       (8, 8000, 0, 1, 36864, NULL, NULL, NULL, NULL),
       (9, 9000, 1, 2, 20480, 150, 6, NULL, NULL),
       (10, 10000, 1, 1, 28672, 8000, 7, NULL, NULL),
       (11, 11000, 0, 1, 28672, NULL, NULL, NULL, NULL),
       (12, 12000, 1, 1, 40960, 64, 4, NULL, NULL),
       (13, 13000, 1, 3, 4096, 10, 9, NULL, NULL),
       (14, 14000, 1, 3, 4352, 20, 9, NULL, NULL),
       (15, 15000, 0, 3, 4352, NULL, NULL, NULL, NULL),
       (16, 16000, 4, 3, 4608, 30, 8, 4096, NULL),
       (17, 17000, 1, 3, 12288, 100, 12, NULL, NULL),
       (18, 18000, 1, 1, 45056, 2, 13, NULL, NULL),
       (19, 19000, 1, 1, 45312, 3, 14, NULL, NULL);
