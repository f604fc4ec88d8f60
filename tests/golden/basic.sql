-- basic.sql - a small trace whose every report is known by hand.
--
-- Applied by run.sh with the sqlite3 shell to an empty trace made by
-- `memtrace -q -o base.db /bin/true` (so the schema is memtrace's own): it
-- replaces the rows of that run with the fixture's.  ts = seq * 1000.
--
-- Process 1 (pid 100): thread 1 (tid 100, main) and thread 2 (tid 102,
-- worker); process 2 (pid 101, a fork child): thread 3.
--
-- seq thread event                                   stack       live heap
--   1  1  malloc 0x1000 100                          make_leak       100
--   2  1  malloc 0x2000 100                          make_leak       200
--   3  1  malloc 0x3000 64                           scratch         264
--   4  1  free 0x3000               (temporary)                      200
--   5  1  realloc(NULL) -> 0x4000 100  chain starts  vec_grow        300
--   6  1  realloc 0x4000 -> 0x4000 150 in place x1.5 (temporary)     350
--   7  2  malloc 0x5000 1000                         worker         1350
--   8  1  realloc 0x4000 -> 0x6000 300 moved x2.0    (temporary)    1500
--   9  1  malloc 0x7000 5000        PEAK 6500 in 5 blocks  big_table  6500
--  10  1  free 0x7000               (temporary)                     1500
--  11  2  free 0x5000               (temporary: thread 2's next call) 500
--  12  2  malloc 0x8000 50                           worker <- [unnamed]  550
--  13  1  realloc 0x6000 -> 0x9000 450 moved x1.5                     700
--  14  1  free 0x9000               (temporary) chain: 3 steps, ends  250
--  15  3  malloc 0x1000 10   (process 2: own address space)  child_leak
--  16  3  malloc 0x1100 20                           child_leak
--  17  3  free 0x1100               (temporary)
--  18  3  reallocarray 0x1000 -> 0x1200 30 moved x3.0    main (pid 101)
--  19  1  free 0xdead               (unknown block)
--  20  1  mmap 0x100000 65536                        big_table
--  21  1  mmap 0x200000 8192        MAPPED PEAK 73728              scratch
--  22  1  munmap 0x100000 4096      (the start: 61440 stay mapped)
--  23  1  munmap 0x200000 8192
--  24  2  malloc 2^40 failed                         worker
--
-- Leaks: pid 100 make_leak 2 blocks 200 bytes, worker 1 block 50 bytes;
-- pid 101 main 1 block 30 bytes.  Chains: vec_grow 3 steps (1.5, 2.0, 1.5:
-- median 1.5), 2 moves, 1 in place, 450 bytes copied, 100 -> 450 bytes in
-- 8 us; main of pid 101: 1 step x3.0, 10 bytes copied.  A file name with a
-- comma and quotes checks CSV quoting.  The trace lasts 30 us
-- (meta.duration_ns), as timeline and export --massif read it.
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
UPDATE meta SET value = 24 WHERE key = 'events';
INSERT OR REPLACE INTO meta(key, value) VALUES ('duration_ns', 30000);

INSERT INTO processes(id, pid, ppid, parent_id, exe, cmdline, start_ts, end_ts, exit_status, complete)
VALUES (1, 100, 1, NULL, '/fixture/prog', 'prog', 0, 30000, 0, 1),
       (2, 101, 100, 1, '/fixture/prog', 'prog', 14500, 29000, 0, 1);

INSERT INTO threads(id, process_id, tid, first_seq, first_ts)
VALUES (1, 1, 100, 1, 1000), (2, 1, 102, 7, 7000), (3, 2, 101, 15, 15000);

INSERT INTO modules(id, process_id, path, base, start, end)
VALUES (1, 1, '/fixture/prog', 0, 4096, 65536),
       (2, 1, '/lib/libfoo.so', 1879048192, 1879048192, 1879113728),
       (3, 2, '/fixture/prog', 0, 4096, 65536);

INSERT INTO frames(id, process_id, module_id, ip, offset, function, file, line, symbolized)
VALUES (1, 1, 1, 4112, 4112, 'main', 'prog.c', 10, 1),
       (2, 1, 1, 4208, 4208, 'make_leak', 'prog.c', 20, 1),
       (3, 1, 1, 4304, 4304, 'vec_grow', 'vec.c', 30, 1),
       (4, 1, 1, 4400, 4400, 'scratch', 'prog.c', 40, 1),
       (5, 1, 1, 4496, 4496, 'worker', 'prog.c', 50, 1),
       (6, 1, 2, 1879052852, 4660, NULL, NULL, NULL, 1),
       (7, 1, 1, 4592, 4592, 'big_table', 'prog.c', 60, 1),
       (8, 2, 3, 4112, 4112, 'main', 'prog.c', 11, 1),
       (9, 2, 3, 4688, 4688, 'child_leak', 'odd,"name".c', 70, 1);

-- id, parent, frame, depth (1 = outermost)
INSERT INTO stacks(id, parent_id, frame_id, depth)
VALUES (1, NULL, 1, 1),   -- main
       (2, 1, 2, 2),      -- main -> make_leak
       (3, 1, 3, 2),      -- main -> vec_grow
       (4, 1, 4, 2),      -- main -> scratch
       (10, NULL, 6, 1),  -- [libfoo] (thread start code without a name)
       (5, 10, 5, 2),     -- [libfoo] -> worker
       (6, 5, 6, 3),      -- [libfoo] -> worker -> [libfoo] (unnamed innermost: skipped)
       (7, 1, 7, 2),      -- main -> big_table
       (8, NULL, 8, 1),   -- main (pid 101)
       (9, 8, 9, 2);      -- main -> child_leak (pid 101)

-- kinds: 0 free, 1 malloc, 3 realloc, 4 reallocarray, 10 mmap, 11 munmap
INSERT INTO event_rows(seq, ts, kind, thread, addr, size, stack, old_addr, failed)
VALUES (1, 1000, 1, 1, 4096, 100, 2, NULL, NULL),
       (2, 2000, 1, 1, 8192, 100, 2, NULL, NULL),
       (3, 3000, 1, 1, 12288, 64, 4, NULL, NULL),
       (4, 4000, 0, 1, 12288, NULL, NULL, NULL, NULL),
       (5, 5000, 3, 1, 16384, 100, 3, NULL, NULL),
       (6, 6000, 3, 1, 16384, 150, 3, 16384, NULL),
       (7, 7000, 1, 2, 20480, 1000, 5, NULL, NULL),
       (8, 8000, 3, 1, 24576, 300, 3, 16384, NULL),
       (9, 9000, 1, 1, 28672, 5000, 7, NULL, NULL),
       (10, 10000, 0, 1, 28672, NULL, NULL, NULL, NULL),
       (11, 11000, 0, 2, 20480, NULL, NULL, NULL, NULL),
       (12, 12000, 1, 2, 32768, 50, 6, NULL, NULL),
       (13, 13000, 3, 1, 36864, 450, 3, 24576, NULL),
       (14, 14000, 0, 1, 36864, NULL, NULL, NULL, NULL),
       (15, 15000, 1, 3, 4096, 10, 9, NULL, NULL),
       (16, 16000, 1, 3, 4352, 20, 9, NULL, NULL),
       (17, 17000, 0, 3, 4352, NULL, NULL, NULL, NULL),
       (18, 18000, 4, 3, 4608, 30, 8, 4096, NULL),
       (19, 19000, 0, 1, 57005, NULL, NULL, NULL, NULL),
       (20, 20000, 10, 1, 1048576, 65536, 7, NULL, NULL),
       (21, 21000, 10, 1, 2097152, 8192, 4, NULL, NULL),
       (22, 22000, 11, 1, 1048576, 4096, NULL, NULL, NULL),
       (23, 23000, 11, 1, 2097152, 8192, NULL, NULL, NULL),
       (24, 24000, 1, 2, 0, 1099511627776, 5, NULL, 1);
