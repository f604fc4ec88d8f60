-- incomplete.sql - a trace whose process was killed: meta.complete = 0.
-- Every report still runs, with one warning line on stderr; leaks calls
-- what is left "live when the trace ended".
--
-- seq thread event
--   1  1  malloc 0x1000 24   keep
--   2  1  malloc 0x2000 48   keep
--   3  1  free 0x1000
-- (killed by signal 9 here: 0x2000, 48 bytes, is still live; the trace
-- lasts 5 us)
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
UPDATE meta SET value = 0 WHERE key = 'complete';
INSERT OR REPLACE INTO meta(key, value) VALUES ('incomplete_reason', 'process 200 (prog) was killed by signal 9');
INSERT OR REPLACE INTO meta(key, value) VALUES ('duration_ns', 5000);

INSERT INTO processes(id, pid, ppid, exe, cmdline, start_ts, end_ts, exit_signal, complete)
VALUES (1, 200, 1, '/fixture/prog', 'prog', 0, 5000, 9, 0);
INSERT INTO threads(id, process_id, tid, first_seq, first_ts) VALUES (1, 1, 200, 1, 1000);
INSERT INTO modules(id, process_id, path, base, start, end) VALUES (1, 1, '/fixture/prog', 0, 4096, 65536);
INSERT INTO frames(id, process_id, module_id, ip, offset, function, file, line, symbolized)
VALUES (1, 1, 1, 4112, 4112, 'main', 'prog.c', 5, 1),
       (2, 1, 1, 4208, 4208, 'keep', 'prog.c', 9, 1);
INSERT INTO stacks(id, parent_id, frame_id, depth) VALUES (1, NULL, 1, 1), (2, 1, 2, 2);
INSERT INTO event_rows(seq, ts, kind, thread, addr, size, stack)
VALUES (1, 1000, 1, 1, 4096, 24, 2),
       (2, 2000, 1, 1, 8192, 48, 2);
INSERT INTO event_rows(seq, ts, kind, thread, addr) VALUES (3, 3000, 0, 1, 4096);
