/* test_symbolize.c - unit tests of mt_symbolize() against this very program.
 *
 * Each test creates a trace in a temporary directory, describes this test
 * executable as the one module of a process (path from /proc/self/exe,
 * bias and range from dl_iterate_phdr), inserts frames whose addresses are
 * known exactly (a return address captured at a line recorded with
 * __LINE__, a function entry), runs the symbolizer and checks every column
 * with exact values.  Frames in no module, in a missing file, in an empty
 * path and in a file that is not ELF must come out unresolved but looked at.
 * The same file mapped at different bases by different processes (files
 * are opened once per trace, at bias 0) must give the same answers.
 */
#define _GNU_SOURCE
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mt_db.h"
#include "mt_error.h"
#include "../../tracer/mt_symbolize.h"

/* Keeps a function as written: not inlined, not cloned under another name. */
#if defined(__GNUC__) && !defined(__clang__)
#define TEST_KEEP __attribute__((noipa))
#else
#define TEST_KEEP __attribute__((noinline))
#endif

/* ---- the code whose addresses the frames hold ---- */

void *symb_return_address(void);
void *symb_call_site(int *line);

/* The whole function is on one line, so its entry maps to that line. */
static const int return_address_line = __LINE__ + 1;
TEST_KEEP void *symb_return_address(void) { return __builtin_return_address(0); }

/* Returns an address inside itself, just after a call; *line gets the line
 * of that call. */
TEST_KEEP void *symb_call_site(int *line)
{
    void *ra = symb_return_address(); *line = __LINE__;
    return ra;
}

/* ---- fixture ---- */

typedef struct {
    char dir[64];
    char path[96];
    mt_db_t *db;
    char exe[4096];
    uint64_t base, start, end; /* the main program's load bias and range */
} fixture_t;

static int main_program_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    fixture_t *fx = arg;
    if (info->dlpi_name && info->dlpi_name[0]) return 0; /* "" is the main program */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        if (ph->p_vaddr < lo) lo = ph->p_vaddr;
        if (ph->p_vaddr + ph->p_memsz > hi) hi = ph->p_vaddr + ph->p_memsz;
    }
    fx->base = info->dlpi_addr;
    fx->start = info->dlpi_addr + lo;
    fx->end = info->dlpi_addr + hi;
    return 1;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/mt_test_symbolize_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/trace.db", fx->dir);
    char err[256] = "";
    assert_int_equal(mt_db_create(fx->path, &fx->db, err, sizeof err), 0);
    ssize_t n = readlink("/proc/self/exe", fx->exe, sizeof fx->exe - 1);
    assert_true(n > 0);
    fx->exe[n] = '\0';
    assert_int_equal(dl_iterate_phdr(main_program_cb, fx), 1);
    assert_true(fx->start < fx->end);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    mt_db_close(fx->db);
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* ---- helpers ---- */

static int64_t add_process(mt_db_t *db, int pid)
{
    mt_stmt_t *st;
    assert_int_equal(mt_stmt_prepare(db, "INSERT INTO processes(pid) VALUES(?1)", &st), 0);
    assert_int_equal(mt_stmt_bind_int(st, 1, pid), 0);
    assert_int_equal(mt_stmt_run(st), 0);
    mt_stmt_finalize(st);
    return mt_db_last_rowid(db);
}

static int64_t add_module(mt_db_t *db, int64_t process_id, const char *path, uint64_t base,
                          uint64_t start, uint64_t end)
{
    mt_stmt_t *st;
    assert_int_equal(mt_stmt_prepare(db, "INSERT INTO modules(process_id, path, base, start, \"end\") "
                                         "VALUES(?1, ?2, ?3, ?4, ?5)", &st), 0);
    assert_int_equal(mt_stmt_bind_int(st, 1, process_id), 0);
    assert_int_equal(mt_stmt_bind_text(st, 2, path), 0);
    assert_int_equal(mt_stmt_bind_int(st, 3, (int64_t)base), 0);
    assert_int_equal(mt_stmt_bind_int(st, 4, (int64_t)start), 0);
    assert_int_equal(mt_stmt_bind_int(st, 5, (int64_t)end), 0);
    assert_int_equal(mt_stmt_run(st), 0);
    mt_stmt_finalize(st);
    return mt_db_last_rowid(db);
}

static int64_t add_frame(mt_db_t *db, int64_t process_id, uint64_t ip)
{
    mt_stmt_t *st;
    assert_int_equal(mt_stmt_prepare(db, "INSERT INTO frames(process_id, ip) VALUES(?1, ?2)", &st), 0);
    assert_int_equal(mt_stmt_bind_int(st, 1, process_id), 0);
    assert_int_equal(mt_stmt_bind_int(st, 2, (int64_t)ip), 0);
    assert_int_equal(mt_stmt_run(st), 0);
    mt_stmt_finalize(st);
    return mt_db_last_rowid(db);
}

typedef struct {
    int64_t module_id;  /* -1: NULL */
    int64_t ip;
    int64_t offset;     /* -1: NULL */
    char *function, *file;
    int64_t line;       /* -1: NULL */
    int64_t symbolized;
} frame_row_t;

static int64_t int_or_null(mt_stmt_t *st, int col)
{
    return mt_stmt_column_type(st, col) == MT_COL_NULL ? -1 : mt_stmt_int(st, col);
}

static char *text_or_null(mt_stmt_t *st, int col)
{
    const char *s = mt_stmt_text(st, col);
    return s ? strdup(s) : NULL;
}

static frame_row_t read_frame(mt_db_t *db, int64_t id)
{
    mt_stmt_t *st;
    frame_row_t f;
    assert_int_equal(mt_stmt_prepare(db, "SELECT module_id, ip, \"offset\", function, file, line, "
                                         "symbolized FROM frames WHERE id = ?1", &st), 0);
    assert_int_equal(mt_stmt_bind_int(st, 1, id), 0);
    assert_int_equal(mt_stmt_step(st), 1);
    f.module_id = int_or_null(st, 0);
    f.ip = mt_stmt_int(st, 1);
    f.offset = int_or_null(st, 2);
    f.function = text_or_null(st, 3);
    f.file = text_or_null(st, 4);
    f.line = int_or_null(st, 5);
    f.symbolized = mt_stmt_int(st, 6);
    mt_stmt_finalize(st);
    return f;
}

static void free_frame(frame_row_t *f)
{
    free(f->function);
    free(f->file);
}

static void assert_ends_with(const char *s, const char *suffix)
{
    assert_non_null(s);
    size_t n = strlen(s), k = strlen(suffix);
    assert_true(n >= k);
    assert_string_equal(s + n - k, suffix);
}

/* Asserts that frame `id` was resolved to `function` at `line` of this file. */
static void assert_resolved(fixture_t *fx, int64_t id, int64_t module_id, uint64_t ip,
                            const char *function, int line)
{
    frame_row_t f = read_frame(fx->db, id);
    assert_int_equal(f.module_id, module_id);
    assert_int_equal(f.ip, (int64_t)ip);
    assert_int_equal(f.offset, (int64_t)(ip - fx->base));
    assert_non_null(f.function);
    assert_string_equal(f.function, function);
    assert_ends_with(f.file, "test_symbolize.c");
    assert_true(f.file[0] == '/'); /* the full path */
    assert_int_equal(f.line, line);
    assert_int_equal(f.symbolized, 1);
    free_frame(&f);
}

/* Asserts that frame `id` was looked at and got no name, file or line. */
static void assert_unresolved(mt_db_t *db, int64_t id, int64_t module_id, uint64_t ip, int64_t offset)
{
    frame_row_t f = read_frame(db, id);
    assert_int_equal(f.module_id, module_id);
    assert_int_equal(f.ip, (int64_t)ip);
    assert_int_equal(f.offset, offset);
    assert_null(f.function);
    assert_null(f.file);
    assert_int_equal(f.line, -1);
    assert_int_equal(f.symbolized, 1);
    free_frame(&f);
}

/* ---- tests ---- */

static void test_resolves_own_functions(void **state)
{
    fixture_t *fx = *state;
    int call_line = 0;
    uint64_t ra = (uint64_t)(uintptr_t)symb_call_site(&call_line);
    uint64_t entry = (uint64_t)(uintptr_t)&symb_return_address;
    assert_true(ra > fx->start && ra < fx->end);

    int64_t p = add_process(fx->db, 4242);
    int64_t m = add_module(fx->db, p, fx->exe, fx->base, fx->start, fx->end);
    int64_t f_call = add_frame(fx->db, p, ra);
    int64_t f_entry = add_frame(fx->db, p, entry + 1); /* ip - 1 is the entry */
    int64_t f_none = add_frame(fx->db, p, 0x10);       /* in no module */

    long nresolved = -1;
    assert_int_equal(mt_symbolize(fx->db, &nresolved), 0);
    assert_int_equal(nresolved, 2);

    assert_resolved(fx, f_call, m, ra, "symb_call_site", call_line);
    assert_resolved(fx, f_entry, m, entry + 1, "symb_return_address", return_address_line);
    assert_unresolved(fx->db, f_none, -1, 0x10, -1);
}

static void test_unusable_modules(void **state)
{
    fixture_t *fx = *state;
    int64_t p = add_process(fx->db, 7);
    /* Ranges far below any real mapping; none of these files can be read
     * as ELF: missing, empty path, the vdso name, not ELF (the trace). */
    int64_t m_missing = add_module(fx->db, p, "/nonexistent/libgone.so", 0x1000, 0x1000, 0x2000);
    int64_t m_empty = add_module(fx->db, p, "", 0x2000, 0x2000, 0x3000);
    int64_t m_vdso = add_module(fx->db, p, "linux-vdso.so.1", 0x3000, 0x3000, 0x4000);
    int64_t m_notelf = add_module(fx->db, p, fx->path, 0x4000, 0x4000, 0x5000);
    int64_t f_missing = add_frame(fx->db, p, 0x1800);
    int64_t f_empty = add_frame(fx->db, p, 0x2010);
    int64_t f_vdso = add_frame(fx->db, p, 0x3000);
    int64_t f_notelf = add_frame(fx->db, p, 0x4fff);
    int64_t f_after = add_frame(fx->db, p, 0x5000); /* end is exclusive */
    int64_t f_zero = add_frame(fx->db, p, 0);

    long nresolved = -1;
    assert_int_equal(mt_symbolize(fx->db, &nresolved), 0);
    assert_int_equal(nresolved, 0);

    assert_unresolved(fx->db, f_missing, m_missing, 0x1800, 0x800);
    assert_unresolved(fx->db, f_empty, m_empty, 0x2010, 0x10);
    assert_unresolved(fx->db, f_vdso, m_vdso, 0x3000, 0);
    assert_unresolved(fx->db, f_notelf, m_notelf, 0x4fff, 0xfff);
    assert_unresolved(fx->db, f_after, -1, 0x5000, -1);
    assert_unresolved(fx->db, f_zero, -1, 0, -1);
}

static void test_processes_overlaps_and_rerun(void **state)
{
    fixture_t *fx = *state;
    int call_line = 0;
    uint64_t ra = (uint64_t)(uintptr_t)symb_call_site(&call_line);

    /* Process 1: the executable listed twice (same bias), inside a missing
     * file that spans it, with another missing file ending just at ip: the
     * row with the greatest start that holds ip wins (ties: the last id). */
    int64_t p1 = add_process(fx->db, 100);
    add_module(fx->db, p1, "/nonexistent/outer.so", fx->start - 0x1000, fx->start - 0x1000,
               fx->end + 0x1000);
    add_module(fx->db, p1, fx->exe, fx->base, fx->start, fx->end);
    int64_t m1 = add_module(fx->db, p1, fx->exe, fx->base, fx->start, fx->end);
    add_module(fx->db, p1, "/nonexistent/inner.so", ra - 2, ra - 2, ra);
    int64_t f1 = add_frame(fx->db, p1, ra);
    /* Process 2: the same address, its own module row. */
    int64_t p2 = add_process(fx->db, 200);
    int64_t m2 = add_module(fx->db, p2, fx->exe, fx->base, fx->start, fx->end);
    int64_t f2 = add_frame(fx->db, p2, ra);
    /* Process 3: a frame but no modules at all. */
    int64_t p3 = add_process(fx->db, 300);
    int64_t f3 = add_frame(fx->db, p3, ra);
    /* Already symbolized: must not be touched. */
    mt_stmt_t *st;
    assert_int_equal(mt_stmt_prepare(fx->db, "INSERT INTO frames(process_id, ip, function, symbolized) "
                                             "VALUES(?1, ?2, 'kept', 1)", &st), 0);
    assert_int_equal(mt_stmt_bind_int(st, 1, p2), 0);
    assert_int_equal(mt_stmt_bind_int(st, 2, (int64_t)ra), 0);
    assert_int_equal(mt_stmt_run(st), 0);
    mt_stmt_finalize(st);
    int64_t f_kept = mt_db_last_rowid(fx->db);

    long nresolved = -1;
    assert_int_equal(mt_symbolize(fx->db, &nresolved), 0);
    assert_int_equal(nresolved, 2);
    assert_resolved(fx, f1, m1, ra, "symb_call_site", call_line);
    assert_resolved(fx, f2, m2, ra, "symb_call_site", call_line);
    assert_unresolved(fx->db, f3, -1, ra, -1);
    frame_row_t k = read_frame(fx->db, f_kept);
    assert_string_equal(k.function, "kept");
    assert_int_equal(k.module_id, -1);
    free_frame(&k);

    /* A second run finds nothing left to do and changes nothing. */
    nresolved = -1;
    assert_int_equal(mt_symbolize(fx->db, &nresolved), 0);
    assert_int_equal(nresolved, 0);
    assert_resolved(fx, f1, m1, ra, "symb_call_site", call_line);
}

/* Frames of two processes that mapped the same file at different bases
 * (the symbolizer opens it once for both) resolve alike. */
static void test_same_file_at_different_bases(void **state)
{
    fixture_t *fx = *state;
    if (fx->base == 0) skip(); /* not PIE: its addresses are fixed */
    const uint64_t shift = 0x10000000;
    assert_true(fx->end - fx->start < shift);
    int call_line = 0;
    uint64_t ra = (uint64_t)(uintptr_t)symb_call_site(&call_line);
    uint64_t entry = (uint64_t)(uintptr_t)&symb_return_address;

    int64_t p1 = add_process(fx->db, 11);
    int64_t p2 = add_process(fx->db, 12);
    int64_t m2 = add_module(fx->db, p2, fx->exe, fx->base + shift, fx->start + shift, fx->end + shift);
    int64_t m1 = add_module(fx->db, p1, fx->exe, fx->base, fx->start, fx->end);
    uint64_t ips[2] = {ra, entry + 1};
    int64_t f1[2], f2[2];
    for (int i = 0; i < 2; i++) {
        f2[i] = add_frame(fx->db, p2, ips[i] + shift);
        f1[i] = add_frame(fx->db, p1, ips[i]);
    }
    int64_t f_unshifted = add_frame(fx->db, p2, ra); /* below p2's mapping */

    long nresolved = -1;
    assert_int_equal(mt_symbolize(fx->db, &nresolved), 0);
    assert_int_equal(nresolved, 4);

    assert_resolved(fx, f1[0], m1, ra, "symb_call_site", call_line);
    assert_resolved(fx, f1[1], m1, entry + 1, "symb_return_address", return_address_line);
    for (int i = 0; i < 2; i++) {
        frame_row_t a = read_frame(fx->db, f1[i]);
        frame_row_t b = read_frame(fx->db, f2[i]);
        assert_int_equal(b.module_id, m2);
        assert_int_equal(b.ip, (int64_t)(ips[i] + shift));
        assert_int_equal(b.offset, a.offset);
        assert_non_null(b.function);
        assert_string_equal(b.function, a.function);
        assert_non_null(b.file);
        assert_string_equal(b.file, a.file);
        assert_int_equal(b.line, a.line);
        assert_int_equal(b.symbolized, 1);
        free_frame(&a);
        free_frame(&b);
    }
    assert_unresolved(fx->db, f_unshifted, -1, ra, -1);
}

static void test_no_frames(void **state)
{
    fixture_t *fx = *state;
    long nresolved = -1;
    assert_int_equal(mt_symbolize(fx->db, &nresolved), 0);
    assert_int_equal(nresolved, 0);
    add_process(fx->db, 1);
    assert_int_equal(mt_symbolize(fx->db, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resolves_own_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_modules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_overlaps_and_rerun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_file_at_different_bases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_frames, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
