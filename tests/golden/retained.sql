-- retained.sql - a hand-made trace of the bundled allocator
-- (--allocator=bundled) with the program's own malloc/calloc/free events,
-- for `memtrace retained`: memory freed but kept, and what pins it.
--
-- One process (pid 600), thread 1.  Arena A = 0x7f0000000000, B = A + 1 MiB;
-- pool k of A (A/k) = A + k * 16 KiB; a pool's blocks start 48 bytes in.
-- Class 0: 16-byte blocks, capacity 1021; class 1: 32 B, 510; class 3:
-- 64 B, 255; class 31: 512 B, 31.  As memtrace records it, each malloc/free
-- comes right after the allocator events it caused.  Stacks: 1 main,
-- 2 main -> cache_add, 3 main -> parse, 4 main -> tree_node.  The trace
-- lasts 40 us; --points 4 samples at 10, 20, 30 and 40 us.
--
-- seq    ts (us)  event
--  1     1        arena_alloc A
--  2-8   1.5-4.1  pool_init A/0 class 1; 3 blocks: A+48 malloc(24) parse,
--                 A+80 malloc(30) cache_add, A+112 malloc(32) parse
--  9-13  5-6.1    pool_init A/1 class 3; 2 blocks: A/1+48 malloc(64),
--                 A/1+112 calloc(60), both tree_node
--  14    7        mmap 64 KiB
--  15-20 11-13.1  block_free + free: A+48, A+112 (parse), A/1+48
--  21    14       munmap the 64 KiB
--  22-30 21-21.8  pool_init A/2 class 31; 4 blocks from tree_node:
--                 malloc(500), malloc(500), malloc(512), malloc(512)
--  31-34 22-22.3  arena_alloc B; pool_init B/0 class 0; B+48 malloc(16)
--                 from cache_add
--  35-38 31-32.1  block_free + free: A/2+48, A/2+560 (the two 500s)
--  39    33       block_alloc_bump B+64: a block without a malloc event
--
-- Over time (--points 4), arenas, pools in use (x 16384), blocks in use
-- (block sizes), kept free = arenas - blocks = free blocks (pools -
-- blocks) + free pools (arenas - pools):
--  10 us, seq 14: heap 24+30+32+64+60 = 210; arenas 1048576; pools 2 =
--    32768; blocks 3*32 + 2*64 = 224; kept 1048352 = 32544 + 1015808;
--    mapped 65536
--  20 us, seq 21: heap 30+60 = 90; pools 2 = 32768; blocks 32+64 = 96;
--    kept 1048480 = 32672 + 1015808; mapped 0
--  30 us, seq 34: heap 90+500+500+512+512+16 = 2130; arenas 2097152;
--    pools 4 = 65536; blocks 32+64+4*512+16 = 2160; kept 2094992 =
--    63376 + 2031616
--  40 us, seq 39: heap 2130-1000 = 1130; pools 65536; blocks 32+64+2*512
--    +2*16 = 1152; kept 2096000 = 64384 + 2031616
-- Pinning at the end: all 4 pools in use hold few blocks (A/0 1 of 510,
-- A/1 1 of 255, A/2 2 of 31, B/0 2 of 1021): 64 KiB kept by 6 blocks, 5
-- of them with a live allocation (B+64 has none).  By stack: tree_node 2
-- pools (A/1, A/2) by 3 blocks (60+512+512 = 1084 bytes requested);
-- cache_add 2 pools (A/0, B/0) by 2 blocks (30+16 = 46).  Arenas: A 3
-- pools in use (3 < 6.4), 61 free, 4 blocks, 32+64+1024 = 1120 bytes; B 1
-- pool in use, 63 free, 2 blocks, 32 bytes: both kept, 2 MiB.
-- After seq 34 (--at 34): A/2 holds 4 of 31 blocks, not few; A/0, A/1, B/0
-- pin (3 blocks, all traced): cache_add 2 pools by 2 blocks, tree_node 1
-- pool by 1 block (A/1+112).
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
INSERT OR REPLACE INTO meta(key, value) VALUES ('duration_ns', 40000);
INSERT OR REPLACE INTO meta(key, value) VALUES ('allocator', 'bundled');

INSERT INTO processes(id, pid, ppid, parent_id, exe, cmdline, start_ts, end_ts, exit_status, complete)
VALUES (1, 600, 1, NULL, '/fixture/prog', 'prog', 0, 40000, 0, 1);
INSERT INTO threads(id, process_id, tid, first_seq, first_ts) VALUES (1, 1, 600, 1, 1000);
INSERT INTO modules(id, process_id, path, base, start, end) VALUES (1, 1, '/fixture/prog', 0, 4096, 65536);
INSERT INTO frames(id, process_id, module_id, ip, offset, function, file, line, symbolized)
VALUES (1, 1, 1, 4112, 4112, 'main', 'prog.c', 10, 1),
       (2, 1, 1, 4208, 4208, 'cache_add', 'cache.c', 20, 1),
       (3, 1, 1, 4304, 4304, 'parse', 'parse.c', 30, 1),
       (4, 1, 1, 4400, 4400, 'tree_node', 'tree.c', 40, 1);
INSERT INTO stacks(id, parent_id, frame_id, depth)
VALUES (1, NULL, 1, 1), (2, 1, 2, 2), (3, 1, 3, 2), (4, 1, 4, 2);

-- kinds: 0 free, 1 malloc, 2 calloc, 10 mmap, 11 munmap; 32 + the pym code
-- for the allocator's (32 arena_alloc, 34 pool_init, 39 block_alloc_bump,
-- 40 block_alloc_newpool, 41 block_free)
INSERT INTO event_rows(seq, ts, kind, thread, addr, size, stack, pool, size_class)
VALUES
       (1, 1000, 32, 1, 139637976727552, 1048576, NULL, NULL, NULL),
       (2, 1500, 34, 1, 139637976727552, 0, NULL, 139637976727552, 1),
       (3, 2000, 40, 1, 139637976727600, 24, NULL, 139637976727552, 1),
       (4, 2100, 1, 1, 139637976727600, 24, 3, NULL, NULL),
       (5, 3000, 39, 1, 139637976727632, 30, NULL, 139637976727552, 1),
       (6, 3100, 1, 1, 139637976727632, 30, 2, NULL, NULL),
       (7, 4000, 39, 1, 139637976727664, 32, NULL, 139637976727552, 1),
       (8, 4100, 1, 1, 139637976727664, 32, 3, NULL, NULL),
       (9, 5000, 34, 1, 139637976743936, 0, NULL, 139637976743936, 3),
       (10, 5500, 40, 1, 139637976743984, 64, NULL, 139637976743936, 3),
       (11, 5600, 1, 1, 139637976743984, 64, 4, NULL, NULL),
       (12, 6000, 39, 1, 139637976744048, 60, NULL, 139637976743936, 3),
       (13, 6100, 2, 1, 139637976744048, 60, 4, NULL, NULL),
       (14, 7000, 10, 1, 139706696204288, 65536, 1, NULL, NULL),
       (15, 11000, 41, 1, 139637976727600, 2, NULL, 139637976727552, 1),
       (16, 11100, 0, 1, 139637976727600, NULL, NULL, NULL, NULL),
       (17, 12000, 41, 1, 139637976727664, 1, NULL, 139637976727552, 1),
       (18, 12100, 0, 1, 139637976727664, NULL, NULL, NULL, NULL),
       (19, 13000, 41, 1, 139637976743984, 1, NULL, 139637976743936, 3),
       (20, 13100, 0, 1, 139637976743984, NULL, NULL, NULL, NULL),
       (21, 14000, 11, 1, 139706696204288, 65536, 1, NULL, NULL),
       (22, 21000, 34, 1, 139637976760320, 0, NULL, 139637976760320, 31),
       (23, 21100, 40, 1, 139637976760368, 500, NULL, 139637976760320, 31),
       (24, 21200, 1, 1, 139637976760368, 500, 4, NULL, NULL),
       (25, 21300, 39, 1, 139637976760880, 500, NULL, 139637976760320, 31),
       (26, 21400, 1, 1, 139637976760880, 500, 4, NULL, NULL),
       (27, 21500, 39, 1, 139637976761392, 512, NULL, 139637976760320, 31),
       (28, 21600, 1, 1, 139637976761392, 512, 4, NULL, NULL),
       (29, 21700, 39, 1, 139637976761904, 512, NULL, 139637976760320, 31),
       (30, 21800, 1, 1, 139637976761904, 512, 4, NULL, NULL),
       (31, 22000, 32, 1, 139637977776128, 1048576, NULL, NULL, NULL),
       (32, 22100, 34, 1, 139637977776128, 0, NULL, 139637977776128, 0),
       (33, 22200, 40, 1, 139637977776176, 16, NULL, 139637977776128, 0),
       (34, 22300, 1, 1, 139637977776176, 16, 2, NULL, NULL),
       (35, 31000, 41, 1, 139637976760368, 3, NULL, 139637976760320, 31),
       (36, 31100, 0, 1, 139637976760368, NULL, NULL, NULL, NULL),
       (37, 32000, 41, 1, 139637976760880, 2, NULL, 139637976760320, 31),
       (38, 32100, 0, 1, 139637976760880, NULL, NULL, NULL, NULL),
       (39, 33000, 39, 1, 139637977776192, 16, NULL, 139637977776128, 0);
