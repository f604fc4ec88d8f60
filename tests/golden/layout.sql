-- layout.sql - a hand-made trace of the bundled allocator
-- (--allocator=bundled) for `memtrace layout`: arenas, pools in every
-- state, a pool reused for another class, a bad free, a fallback block, and
-- a fork child that starts with a copy of its parent's layout.
--
-- Process 1 (pid 500): thread 1; process 2 (pid 501, forked at seq 52, its
-- fork_child marker): thread 2.  Arena A = 0x7f0000000000, B = A + 1 MiB;
-- pool 0 of A = A, pool 1 = A + 16 KiB.  Class 0: 16-byte blocks, 1021 per
-- pool; class 2: 48 B, 340; class 5: 96 B, 170; class 31: 512 B, 31.
-- ts = seq * 1000 (seq 1 at 1 us); the trace lasts 60 us.
--
-- seq    thread event (pym code)                      afterwards
--  1     1  arena_alloc A                             A: 64 uncarved
--  2     1  pool_init A/0 class 0 FRESH               A/0 used, 0 blocks
--  3-4   1  block_alloc_newpool, _bump A/0            A/0 2 blocks
--  5     1  pool_init A/1 class 31 FRESH
--  6-36  1  block_alloc_newpool + 30 _bump A/1        A/1 31 blocks (capacity)
--  37    1  pool_full A/1                             A/1 full
--  38-39 1  block_free A/1 (30 left), pool_reuse      A/1 used, 30 blocks
--  40-41 1  block_alloc_freelist A/1, pool_full       A/1 full, 31 blocks
--  42-43 1  block_free A/0 twice (1, then 0 left)
--  44    1  pool_empty A/0                            A/0 empty (class 0)
--  45-46 1  pool_init A/0 class 2 OTHER, block_alloc_newpool   A/0 used, class 2, 1 block
--  47    1  double_free in A/0 (reason 5: not a block start)   bad frees: 1
--  48    1  fallback_alloc 1000 bytes                 (no pool)
--  49    1  arena_alloc B
--  50-51 1  pool_init B/0 class 5 FRESH, block_alloc_newpool   B/0 used, 1 block
--  52       fork_child marker of process 2: it gets a copy of A and B
--  53-54 2  block_free B/0 (0 left), pool_empty       pid 501: B/0 empty
--  55    1  block_alloc_bump B/0                      pid 500: B/0 2 blocks
--  56    1  fallback_free
--
-- At the end, pid 500: A: 2 pools in use (A/0 used, class 2, 1 block of
-- 48 B; A/1 full, 31 blocks of 512 B), 62 uncarved; B: 1 in use (B/0 class
-- 5, 2 blocks of 96 B), 63 uncarved.  Bytes in use 48 + 15872 + 192 =
-- 16112 in 3 pools (49152 bytes): 32.8% filled.  pid 501: as pid 500 was
-- at seq 52 but with B/0 empty: bytes in use 48 + 15872 = 15920 in 2 pools
-- (32768 bytes): 48.6%.
-- After seq 41 (--at 41): pid 500 only: A/0 used class 0, 2 blocks; A/1
-- full.  At 44.5 us (--time 0.0445: seq 44 applied): A/0 empty, A/1 full.
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
INSERT OR REPLACE INTO meta(key, value) VALUES ('duration_ns', 60000);
INSERT OR REPLACE INTO meta(key, value) VALUES ('allocator', 'bundled');

INSERT INTO processes(id, pid, ppid, parent_id, exe, cmdline, start_ts, end_ts, exit_status, complete)
VALUES (1, 500, 1, NULL, '/fixture/prog', 'prog', 0, 60000, 0, 1),
       (2, 501, 500, 1, '/fixture/prog', 'prog', 52000, 58000, 0, 1);
INSERT INTO threads(id, process_id, tid, first_seq, first_ts) VALUES (1, 1, 500, 1, 1000), (2, 2, 501, 52, 52000);
-- kind 4: fork_child, value = the parent's pid
INSERT INTO markers(seq, ts, thread, process_id, kind, value) VALUES (52, 52000, 2, 2, 4, 500);

-- kinds: 32 + the pym code (32 arena_alloc ... 44 double_free); addr is the
-- block, else the pool, else the arena; size the event's value
INSERT INTO event_rows(seq, ts, kind, thread, addr, size, pool, size_class)
VALUES
       (1, 1000, 32, 1, 139637976727552, 1048576, NULL, NULL),
       (2, 2000, 34, 1, 139637976727552, 0, 139637976727552, 0),
       (3, 3000, 40, 1, 139637976727600, 10, 139637976727552, 0),
       (4, 4000, 39, 1, 139637976727616, 16, 139637976727552, 0),
       (5, 5000, 34, 1, 139637976743936, 0, 139637976743936, 31),
       (6, 6000, 40, 1, 139637976743984, 500, 139637976743936, 31),
       (7, 7000, 39, 1, 139637976744496, 512, 139637976743936, 31),
       (8, 8000, 39, 1, 139637976745008, 512, 139637976743936, 31),
       (9, 9000, 39, 1, 139637976745520, 512, 139637976743936, 31),
       (10, 10000, 39, 1, 139637976746032, 512, 139637976743936, 31),
       (11, 11000, 39, 1, 139637976746544, 512, 139637976743936, 31),
       (12, 12000, 39, 1, 139637976747056, 512, 139637976743936, 31),
       (13, 13000, 39, 1, 139637976747568, 512, 139637976743936, 31),
       (14, 14000, 39, 1, 139637976748080, 512, 139637976743936, 31),
       (15, 15000, 39, 1, 139637976748592, 512, 139637976743936, 31),
       (16, 16000, 39, 1, 139637976749104, 512, 139637976743936, 31),
       (17, 17000, 39, 1, 139637976749616, 512, 139637976743936, 31),
       (18, 18000, 39, 1, 139637976750128, 512, 139637976743936, 31),
       (19, 19000, 39, 1, 139637976750640, 512, 139637976743936, 31),
       (20, 20000, 39, 1, 139637976751152, 512, 139637976743936, 31),
       (21, 21000, 39, 1, 139637976751664, 512, 139637976743936, 31),
       (22, 22000, 39, 1, 139637976752176, 512, 139637976743936, 31),
       (23, 23000, 39, 1, 139637976752688, 512, 139637976743936, 31),
       (24, 24000, 39, 1, 139637976753200, 512, 139637976743936, 31),
       (25, 25000, 39, 1, 139637976753712, 512, 139637976743936, 31),
       (26, 26000, 39, 1, 139637976754224, 512, 139637976743936, 31),
       (27, 27000, 39, 1, 139637976754736, 512, 139637976743936, 31),
       (28, 28000, 39, 1, 139637976755248, 512, 139637976743936, 31),
       (29, 29000, 39, 1, 139637976755760, 512, 139637976743936, 31),
       (30, 30000, 39, 1, 139637976756272, 512, 139637976743936, 31),
       (31, 31000, 39, 1, 139637976756784, 512, 139637976743936, 31),
       (32, 32000, 39, 1, 139637976757296, 512, 139637976743936, 31),
       (33, 33000, 39, 1, 139637976757808, 512, 139637976743936, 31),
       (34, 34000, 39, 1, 139637976758320, 512, 139637976743936, 31),
       (35, 35000, 39, 1, 139637976758832, 512, 139637976743936, 31),
       (36, 36000, 39, 1, 139637976759344, 512, 139637976743936, 31),
       (37, 37000, 35, 1, 139637976743936, 31, 139637976743936, 31),
       (38, 38000, 41, 1, 139637976743984, 30, 139637976743936, 31),
       (39, 39000, 36, 1, 139637976743936, 30, 139637976743936, 31),
       (40, 40000, 38, 1, 139637976743984, 400, 139637976743936, 31),
       (41, 41000, 35, 1, 139637976743936, 31, 139637976743936, 31),
       (42, 42000, 41, 1, 139637976727600, 1, 139637976727552, 0),
       (43, 43000, 41, 1, 139637976727616, 0, 139637976727552, 0),
       (44, 44000, 37, 1, 139637976727552, 0, 139637976727552, 0),
       (45, 45000, 34, 1, 139637976727552, 2, 139637976727552, 2),
       (46, 46000, 40, 1, 139637976727600, 40, 139637976727552, 2),
       (47, 47000, 44, 1, 139637976731552, 5, 139637976727552, 2),
       (48, 48000, 42, 1, 89477120, 1000, NULL, NULL),
       (49, 49000, 32, 1, 139637977776128, 1048576, NULL, NULL),
       (50, 50000, 34, 1, 139637977776128, 0, 139637977776128, 5),
       (51, 51000, 40, 1, 139637977776176, 90, 139637977776128, 5),
       (53, 53000, 41, 2, 139637977776176, 0, 139637977776128, 5),
       (54, 54000, 37, 2, 139637977776128, 0, 139637977776128, 5),
       (55, 55000, 39, 1, 139637977776272, 96, 139637977776128, 5),
       (56, 56000, 43, 1, 89477120, NULL, NULL, NULL);
