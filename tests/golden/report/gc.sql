-- report/gc.sql - applied after basic.sql: what a CPython trace adds that
-- memtrace report shows, garbage collector runs and markers.
--
-- Two collections in process 1 (pid 100): generation 0 on thread 1 from
-- 9.5 to 9.8 us, 12 objects collected, triggered by seq 9 (malloc 5000 at
-- big_table); generation 2 on thread 2 from 12.5 to 13.7 us, 340 collected
-- and 2 uncollectable, triggered by seq 12 (malloc 50 at worker, whose
-- innermost frame has no name).  Markers: main_enter and py_init of
-- process 1, the fork child's fork_child, py_user_code (a file), py_atexit,
-- and a thread_start (which the report leaves out).
INSERT INTO gc_events(id, process_id, thread, generation, start_seq, stop_seq, start_ts, stop_ts,
                      collected, uncollectable, trigger_seq)
VALUES (1, 1, 1, 0, 9, 9, 9500, 9800, 12, 0, 9),
       (2, 1, 2, 2, 12, 12, 12500, 13700, 340, 2, 12);
INSERT INTO markers(seq, ts, thread, process_id, kind, value)
VALUES (0, 500, 1, 1, 1, NULL),
       (0, 600, 1, 1, 7, NULL),
       (0, 700, 1, 1, 8, 1),
       (7, 7000, 2, 1, 5, NULL),
       (15, 14500, 3, 2, 4, NULL),
       (24, 25000, 1, 1, 9, NULL);
