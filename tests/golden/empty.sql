-- empty.sql - a trace with no heap events (a program that allocates
-- nothing): the reports say so instead of printing zeros.  The empty trace
-- of /bin/true is kept; only its process is given a fixed pid (and RSS
-- samples, which a slow machine may have taken, are dropped).
DELETE FROM event_data;
DELETE FROM event_times;
DELETE FROM rss_samples;
UPDATE meta SET value = 'prog' WHERE key = 'command';
UPDATE meta SET value = 1 WHERE key = 'complete';
UPDATE processes SET pid = 300, ppid = 1, exe = '/fixture/prog', cmdline = 'prog';
UPDATE threads SET tid = 300;
