/* fuzz_dbread.c - fuzz target: the analyzer reading a damaged trace.
 *
 * A small trace is made once, the same bytes every time (mt_db_create,
 * fixed rows: one process, two threads, three frames, 600 heap events).
 * Input: byte 0 picks the command (summary, leaks, peak, top, temporary,
 * growth, timeline, export, diff against the intact trace, report, layout,
 * retained, python, gc, query); then patches, each a 3-byte offset (modulo
 * the file's size), a length byte (1..16) and that many bytes written
 * there.  The command runs on the patched file as `memtrace CMD FILE`
 * would; it may fail (status 1), never crash.  Its stdout goes to
 * /dev/null.
 */
#include "fuzz.h"
#include "mt_analyzer.h"
#include "mt_db.h"
#include "mt_event.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char base_path[64], cur_path[64], out_dir[64], html_path[80];
static uint8_t *base;
static size_t base_size;

static void row(mt_db_t *db, const char *sql)
{
    CHECK(mt_db_exec(db, sql) == 0);
}

/* removes the files this target wrote (atexit) */
static void cleanup(void)
{
    unlink(base_path);
    unlink(cur_path);
    unlink(html_path);
    DIR *d = opendir(out_dir);
    if (d) {
        struct dirent *de;
        char path[512];
        while ((de = readdir(d)))
            if (de->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", out_dir, de->d_name);
                unlink(path);
            }
        closedir(d);
        rmdir(out_dir);
    }
}

static void make_base(void)
{
    const char *dir = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
    int pid = (int)getpid();
    snprintf(base_path, sizeof base_path, "%s/fuzz_dbread.%d.base.db", dir, pid);
    snprintf(cur_path, sizeof cur_path, "%s/fuzz_dbread.%d.db", dir, pid);
    snprintf(out_dir, sizeof out_dir, "%s/fuzz_dbread.%d.csv", dir, pid);
    snprintf(html_path, sizeof html_path, "%s/fuzz_dbread.%d.html", dir, pid);
    atexit(cleanup);
    char err[256];
    mt_db_t *db;
    CHECK(mt_db_create(base_path, &db, err, sizeof err) == 0);
    row(db, "INSERT INTO meta VALUES('complete', 1), ('command', 'prog'), ('duration_ns', 5000000),"
            " ('events', 600), ('start_ns', 0), ('stack_depth', 64), ('schema_version', 3)");
    row(db, "INSERT INTO processes(id, pid, ppid, exe, cmdline, start_ts, exit_status, complete)"
            " VALUES(1, 100, 1, '/bin/prog', 'prog', 0, 0, 1)");
    row(db, "INSERT INTO threads VALUES(1, 1, 100, 1, 0), (2, 1, 101, 2, 10)");
    row(db, "INSERT INTO frames(id, process_id, ip, function, file, line, symbolized) VALUES"
            " (1, 1, 4096, 'main', 'prog.c', 10, 1), (2, 1, 8192, 'work', 'prog.c', 20, 1),"
            " (3, 1, 12288, 'grow', 'prog.c', 30, 1)");
    row(db, "INSERT INTO stacks VALUES(1, NULL, 1, 1), (2, 1, 2, 2), (3, 2, 3, 3)");
    row(db, "INSERT INTO rss_samples VALUES(100, 1, 1, 1048576, 4194304), (4000000, 600, 1, 2097152, 8388608)");
    /* 600 events: malloc, realloc, then free of 200 blocks, on two threads */
    for (int i = 0; i < 600; i++) {
        mt_evrow_t e;
        memset(&e, 0, sizeof e);
        int b = i % 200;
        e.seq = i + 1;
        e.ts = 1000 + 100 * i;
        e.thread = 1 + (b & 1);
        e.stack = 1 + b % 3;
        e.size = -1;
        if (i < 200) {
            e.kind = MT_EV_malloc;
            e.addr = 0x10000 + 64 * (uint64_t)b;
            e.size = 16 + b % 48;
        } else if (i < 400) {
            e.kind = MT_EV_realloc;
            e.old_addr = 0x10000 + 64 * (uint64_t)b;
            e.addr = 0x40000 + 128 * (uint64_t)b;
            e.size = 100 + b;
        } else if (b % 7) {
            e.kind = MT_EV_free;
            e.addr = 0x40000 + 128 * (uint64_t)b;
            e.stack = 0;
        } else {
            e.kind = MT_EV_calloc; /* a few blocks stay live: leaks */
            e.addr = 0x80000 + 32 * (uint64_t)b;
            e.size = 24;
        }
        CHECK(mt_db_add_event(db, &e) == 0);
    }
    CHECK(mt_db_build_indexes(db) == 0);
    mt_db_close(db);
    FILE *f = fopen(base_path, "rb");
    CHECK(f);
    fseek(f, 0, SEEK_END);
    base_size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    base = malloc(base_size);
    CHECK(base && fread(base, 1, base_size, f) == base_size);
    fclose(f);
    int null = open("/dev/null", O_WRONLY);
    CHECK(null >= 0 && dup2(null, 1) == 1);
    close(null);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base) make_base();
    if (size < 1) return 0;
    uint8_t *cur = malloc(base_size);
    CHECK(cur);
    memcpy(cur, base, base_size);
    for (size_t o = 1; o + 4 <= size;) {
        size_t off = ((size_t)data[o] << 16 | (size_t)data[o + 1] << 8 | data[o + 2]) % base_size;
        size_t len = data[o + 3] % 16 + 1;
        o += 4;
        for (size_t k = 0; k < len && o < size && off + k < base_size; k++) cur[off + k] = data[o++];
    }
    FILE *f = fopen(cur_path, "wb");
    CHECK(f && fwrite(cur, 1, base_size, f) == base_size);
    fclose(f);
    free(cur);

    char *p = cur_path;
    char *argv[8];
    int argc = 0;
    switch (data[0] % 15) {
    case 0: argv[argc++] = "summary"; break;
    case 1: argv[argc++] = "leaks"; break;
    case 2: argv[argc++] = "peak"; break;
    case 3: argv[argc++] = "top"; break;
    case 4: argv[argc++] = "temporary"; break;
    case 5: argv[argc++] = "growth"; break;
    case 6: argv[argc++] = "timeline"; break;
    case 7: argv[argc++] = "export"; argv[argc++] = "--collapsed"; break;
    case 8: argv[argc++] = "diff"; argv[argc++] = base_path; break;
    case 9: argv[argc++] = "report"; argv[argc++] = "--csv"; argv[argc++] = out_dir;
            argv[argc++] = "--html"; argv[argc++] = html_path; break;
    case 10: argv[argc++] = "layout"; break;
    case 11: argv[argc++] = "retained"; break;
    case 12: argv[argc++] = "python"; break;
    case 13: argv[argc++] = "gc"; break;
    default: argv[argc++] = "query"; break;
    }
    argv[argc++] = p;
    if (data[0] % 15 == 14) argv[argc++] = "SELECT kind, count(*), sum(size) FROM events GROUP BY kind";
    argv[argc] = NULL;
    int rc;
    switch (data[0] % 15) {
    case 0: rc = mt_cmd_summary(argc, argv); break;
    case 1: rc = mt_cmd_leaks(argc, argv); break;
    case 2: rc = mt_cmd_peak(argc, argv); break;
    case 3: rc = mt_cmd_top(argc, argv); break;
    case 4: rc = mt_cmd_temporary(argc, argv); break;
    case 5: rc = mt_cmd_growth(argc, argv); break;
    case 6: rc = mt_cmd_timeline(argc, argv); break;
    case 7: rc = mt_cmd_export(argc, argv); break;
    case 8: rc = mt_cmd_diff(argc, argv); break;
    case 9: rc = mt_cmd_report(argc, argv); break;
    case 10: rc = mt_cmd_layout(argc, argv); break;
    case 11: rc = mt_cmd_retained(argc, argv); break;
    case 12: rc = mt_cmd_python(argc, argv); break;
    case 13: rc = mt_cmd_gc(argc, argv); break;
    default: rc = mt_cmd_query(argc, argv); break;
    }
    CHECK(rc == 0 || rc == 1);
    return 0;
}
