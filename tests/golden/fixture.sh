# fixture.sh - applies golden fixtures (tests/golden/*.sql) to a database.
# Sourced by tests/golden/run.sh, report_check.sh and tests/browser/browser.sh.
#
# Fixtures write events with their times into event_rows, a temporary
# view whose trigger puts each event into event_data and its time into
# event_times (a row per event: every event keeps its own time).

EVENT_ROWS_SQL="
CREATE TEMP VIEW event_rows(seq, ts, kind, thread, addr, size, stack, via, old_addr, failed, pool, size_class)
    AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL;
CREATE TEMP TRIGGER event_rows_insert INSTEAD OF INSERT ON event_rows BEGIN
    INSERT INTO event_data(seq, kind, thread, addr, size, stack, via, old_addr, failed, pool, size_class)
    VALUES (NEW.seq, NEW.kind, NEW.thread, NEW.addr, NEW.size, NEW.stack, NEW.via, NEW.old_addr, NEW.failed,
            NEW.pool, NEW.size_class);
    INSERT INTO event_times(seq, ts) VALUES (NEW.seq, NEW.ts);
END;"

# apply_fixture DB SQL...: runs the SQL files, in order, on DB in one session.
apply_fixture() {
    local db=$1
    shift
    { echo "$EVENT_ROWS_SQL"; cat "$@"; } | sqlite3 -bail "$db"
}
