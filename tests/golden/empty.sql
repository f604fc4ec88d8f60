-- empty.sql - a trace with no heap events (a program that allocates
-- nothing): the reports say so instead of printing zeros.  The empty trace
-- of /bin/true is kept; only its process is given a fixed pid.
DELETE FROM event_data;
UPDATE meta SET value = 'prog' WHERE key = 'command';
UPDATE meta SET value = 1 WHERE key = 'complete';
UPDATE processes SET pid = 300, ppid = 1, exe = '/fixture/prog', cmdline = 'prog';
UPDATE threads SET tid = 300;
