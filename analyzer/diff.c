/* diff.c - `memtrace diff [--top N] [--csv] A.db B.db`: what grew from one
 * trace to another, by allocation stack.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass over each trace (mt_sites_heap: heap model + allocation sites)
 * gives per (process, stack) the bytes allocated, leaked (live at the end)
 * and live at the heap's peak.  Stack ids mean nothing across traces, so a
 * site is named by its frames: for each frame shown (stackfmt.h: innermost
 * first, unnamed innermost frames skipped), its function, file and line,
 * or module file name + offset when it has no function name.  Sites of
 * both traces are sorted by that key and merged: sites that read the same
 * (in several processes, or several stack ids of one function line) add
 * up.  Rows whose figures differ are sorted by the growth of leaked bytes,
 * then of allocated bytes, then of bytes at the peak, then by key.
 * Memory: one entry per site of either trace.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "mt_error.h"
#include "mt_util.h"
#include "sites.h"
#include "stackfmt.h"
#include "table.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--top N] [--csv] A.db B.db"
#define KEY_FRAMES 1024 /* frames of a stack that name it */

enum { C_RANK, C_LA, C_LB, C_LD, C_LBA, C_LBB, C_BA, C_BB, C_BD, C_CA, C_CB, C_PA, C_PB, C_PD, C_FRAMES,
       NCOLS };

static const mt_tcol_t cols[NCOLS] = {
    [C_RANK] = {"#", "rank", MT_TCOL_INT, 0, 0},
    [C_LA] = {"leaked A", "leaked_bytes_a", MT_TCOL_BYTES, 0, 0},
    [C_LB] = {"leaked B", "leaked_bytes_b", MT_TCOL_BYTES, 0, 0},
    [C_LD] = {"change", "leaked_bytes_delta", MT_TCOL_DELTA, 0, 0},
    [C_LBA] = {"blocks A", "leaked_blocks_a", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [C_LBB] = {"blocks B", "leaked_blocks_b", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [C_BA] = {"allocated A", "bytes_a", MT_TCOL_BYTES, 0, 0},
    [C_BB] = {"allocated B", "bytes_b", MT_TCOL_BYTES, 0, 0},
    [C_BD] = {"change", "bytes_delta", MT_TCOL_DELTA, 0, 0},
    [C_CA] = {"calls A", "calls_a", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [C_CB] = {"calls B", "calls_b", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [C_PA] = {"at peak A", "peak_bytes_a", MT_TCOL_BYTES, 0, 0},
    [C_PB] = {"at peak B", "peak_bytes_b", MT_TCOL_BYTES, 0, 0},
    [C_PD] = {"change", "peak_bytes_delta", MT_TCOL_DELTA, 0, 0},
    [C_FRAMES] = {"allocated at", "frames", MT_TCOL_FRAMES, 0, 0},
};

void mt_usage_diff(FILE *out)
{
    fprintf(out,
            "usage: memtrace diff " SYNOPSIS "\n"
            "\n"
            "Compares two traces (say, of two versions of a program) by allocation stack\n"
            "and lists what grew: per stack of the heap (libc layer), the bytes leaked\n"
            "(still live when their process ended), allocated (every allocation), and\n"
            "live at the trace's heap peak, in A and in B, and the change from A to B.\n"
            "Rows are sorted by the growth of leaked bytes, then of allocated bytes,\n"
            "then of bytes at the peak; stacks whose figures are the same in both are\n"
            "left out (the totals count them).  \"-\" marks a stack absent from a trace.\n"
            "\n"
            "Stacks are matched by their frames, innermost first: function, file and\n"
            "line of each, or module and offset for a frame without a function name\n"
            "(as shown: unnamed frames at the innermost end are skipped).  Stacks that\n"
            "read the same within a trace (in several processes, for instance) count as\n"
            "one.  A program rebuilt with other line numbers gives other stacks.\n"
            "\n"
            "Options:\n"
            "  --top N     show the N stacks that grew most (default %d; 0: all);\n"
            "              the totals always cover every stack\n"
            "  --csv       RFC 4180 CSV: a header row, then one row per stack:\n"
            "              rank,leaked_bytes_a,leaked_bytes_b,leaked_bytes_delta,\n"
            "              leaked_blocks_a,leaked_blocks_b,bytes_a,bytes_b,bytes_delta,\n"
            "              calls_a,calls_b,peak_bytes_a,peak_bytes_b,peak_bytes_delta,frames\n"
            "              (frames innermost first, joined by \" <- \"; empty A or B\n"
            "              fields: the stack is absent from that trace; no totals row)\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done (differences or not), 1 a trace cannot be read,\n"
            "2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace diff --top 5 before.db after.db\n",
            MT_CLI_DEFAULT_TOP);
}

/* One site of one trace, named by its frames. */
typedef struct {
    char *key;    /* identity of its frames (see frame_key) */
    char *text;   /* the frames shown, one per line */
    int side;     /* 0: A, 1: B */
    mt_site_t s;
} entry_t;

/* A stack of both traces: the merged entries of one key. */
typedef struct {
    const char *key, *text;
    int present[2];
    int64_t calls[2], bytes[2], leaked_blocks[2], leaked_bytes[2], peak_bytes[2];
} row_t;

/* Appends s (n bytes) to the growing string *buf. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (*len + n + 1 > c) c *= 2;
        char *p = realloc(*buf, c);
        if (!p) return MT_ENOMEM;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

/* The key of `stack`: its frames, each "function\x1ffile\x1fline" or
 * "\x1fmodule+0xOFFSET" (module's file name) or "\x1f0xIP", separated by
 * \x1e.  *out malloc'ed. */
static int frame_key(mt_stackfmt_t *sf, int64_t stack, char **out)
{
    const mt_stackfmt_frame_t *fr[KEY_FRAMES];
    char one[1536];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int n, rc = mt_stackfmt_frames(sf, stack, fr, KEY_FRAMES, &n, NULL);
    *out = NULL;
    if (!rc) rc = append(&buf, &len, &cap, "", 0);
    for (int i = 0; i < n && !rc; i++) {
        const mt_stackfmt_frame_t *f = fr[i];
        int w;
        if (f->function && f->function[0]) {
            w = snprintf(one, sizeof one, "%s%s\x1f%s\x1f%" PRId64, i ? "\x1e" : "", f->function,
                         f->file ? f->file : "", f->line);
        } else if (f->module && f->offset >= 0) {
            const char *base = strrchr(f->module, '/');
            w = snprintf(one, sizeof one, "%s\x1f%s+0x%" PRIx64, i ? "\x1e" : "", base ? base + 1 : f->module,
                         (uint64_t)f->offset);
        } else {
            w = snprintf(one, sizeof one, "%s\x1f" "0x%" PRIx64, i ? "\x1e" : "", f->ip);
        }
        if (w < 0) w = 0;
        rc = append(&buf, &len, &cap, one, (size_t)w < sizeof one ? (size_t)w : sizeof one - 1);
    }
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

/* The sites of one trace as entries appended to *v. */
static int gather(mt_db_t *db, const char *progress, int side, entry_t **v, size_t *n, size_t *cap,
                  mt_heap_stats_t *hs)
{
    mt_site_t *sites = NULL;
    mt_stackfmt_t *sf = NULL;
    size_t ns = 0;
    char text[4096];
    int rc = mt_sites_heap(db, progress, 0, &sites, &ns, hs);
    if (!rc) rc = mt_stackfmt_open(db, &sf);
    for (size_t i = 0; i < ns && !rc; i++) {
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 64;
            entry_t *p = realloc(*v, c * sizeof *p);
            if (!p) {
                rc = MT_ENOMEM;
                break;
            }
            *v = p;
            *cap = c;
        }
        entry_t *e = &(*v)[*n];
        memset(e, 0, sizeof *e);
        e->side = side;
        e->s = sites[i];
        if ((rc = frame_key(sf, sites[i].stack, &e->key))) break;
        rc = mt_stackfmt_join(sf, sites[i].stack, MT_TABLE_FRAMES, "\n", text, sizeof text);
        if (!rc && !(e->text = strdup(text))) rc = MT_ENOMEM;
        ++*n; /* even half-filled: freed with the others */
    }
    mt_stackfmt_close(sf);
    free(sites);
    return rc;
}

static int by_key(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->side - y->side;
}

static int cmp_i64_desc(int64_t x, int64_t y) { return (x < y) - (x > y); }

static int by_growth(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    int c = cmp_i64_desc(x->leaked_bytes[1] - x->leaked_bytes[0], y->leaked_bytes[1] - y->leaked_bytes[0]);
    if (!c) c = cmp_i64_desc(x->bytes[1] - x->bytes[0], y->bytes[1] - y->bytes[0]);
    if (!c) c = cmp_i64_desc(x->peak_bytes[1] - x->peak_bytes[0], y->peak_bytes[1] - y->peak_bytes[0]);
    return c ? c : strcmp(x->key, y->key);
}

static int changed(const row_t *r)
{
    return r->present[0] != r->present[1] || r->calls[0] != r->calls[1] || r->bytes[0] != r->bytes[1] ||
           r->leaked_blocks[0] != r->leaked_blocks[1] || r->leaked_bytes[0] != r->leaked_bytes[1] ||
           r->peak_bytes[0] != r->peak_bytes[1];
}

/* "+1.2 KiB (1,234 bytes)" / "-512 bytes" / "no change" */
static const char *signed_bytes(char *buf, size_t len, int64_t v)
{
    char a[64];
    if (!v) snprintf(buf, len, "no change");
    else snprintf(buf, len, "%s%s", v > 0 ? "+" : "", mt_cli_bytes(a, sizeof a, v));
    return buf;
}

/* One totals line: "WHAT A [in N UNITs] -> B [in M UNITs]: CHANGE". */
static void total_line(const char *what, const int64_t v[2], const int64_t *count, const char *unit)
{
    char a[64], b[64], d[64], e[32], f[32];
    printf("  %-10s %s", what, mt_cli_bytes(a, sizeof a, v[0]));
    if (count) printf(" in %s %s%s", mt_fmt_count(e, sizeof e, count[0]), unit, mt_cli_plural(count[0]));
    printf(" -> %s", mt_cli_bytes(b, sizeof b, v[1]));
    if (count) printf(" in %s %s%s", mt_fmt_count(f, sizeof f, count[1]), unit, mt_cli_plural(count[1]));
    printf(": %s\n", signed_bytes(d, sizeof d, v[1] - v[0]));
}

static void text_totals(const row_t *rows, size_t n, const mt_heap_stats_t *hs)
{
    int64_t leaked[2] = {0, 0}, blocks[2] = {0, 0}, bytes[2] = {0, 0}, calls[2] = {0, 0};
    int64_t both = 0, only[2] = {0, 0}, same = 0;
    for (size_t i = 0; i < n; i++) {
        for (int s = 0; s < 2; s++) {
            leaked[s] += rows[i].leaked_bytes[s];
            blocks[s] += rows[i].leaked_blocks[s];
            bytes[s] += rows[i].bytes[s];
            calls[s] += rows[i].calls[s];
        }
        if (rows[i].present[0] && rows[i].present[1]) both++;
        else only[rows[i].present[1]]++;
        same += !changed(&rows[i]);
    }
    int64_t peak[2] = {hs[0].peak_bytes, hs[1].peak_bytes};
    printf("\ntotal, A -> B:\n");
    total_line("leaked", leaked, blocks, "block");
    total_line("allocated", bytes, calls, "call");
    total_line("heap peak", peak, NULL, NULL);
    printf("  stacks     %" PRId64 " in both (%" PRId64 " unchanged), %" PRId64 " only in A, %" PRId64 " only in B\n",
           both, same, only[0], only[1]);
}

int mt_cmd_diff(int argc, char **argv)
{
    mt_cli_t c = {.cmd = "diff", .synopsis = SYNOPSIS, .usage = mt_usage_diff, .has_top = 1, .has_csv = 1,
                  .second = "B.db", .name_in_warning = 1};
    int status = mt_cli_parse(&c, argc, argv, NULL, 0);
    if (status >= 0) return status;
    mt_cli_t c2 = c; /* the second trace: its own open, pids and messages */
    c2.path = c.path2;
    status = 1;

    mt_db_t *db[2] = {NULL, NULL};
    mt_heap_stats_t hs[2];
    entry_t *v = NULL;
    row_t *rows = NULL;
    mt_table_t *t = NULL;
    size_t n = 0, cap = 0, nrows = 0, nchanged = 0;
    int rc, failed = 0;
    if (mt_cli_open(&c, &db[0]) || mt_cli_open(&c2, &db[1])) goto out;
    if ((rc = gather(db[0], c.progress, 0, &v, &n, &cap, &hs[0]))) goto fail;
    failed = 1;
    if ((rc = gather(db[1], c.progress, 1, &v, &n, &cap, &hs[1]))) goto fail;
    if (n) qsort(v, n, sizeof *v, by_key);

    if (n && !(rows = calloc(n, sizeof *rows))) {
        rc = MT_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (!nrows || strcmp(rows[nrows - 1].key, v[i].key)) {
            rows[nrows].key = v[i].key;
            rows[nrows].text = v[i].text; /* A's text when A has it: the entries are sorted by side */
            nrows++;
        }
        row_t *r = &rows[nrows - 1];
        int s = v[i].side;
        r->present[s] = 1;
        r->calls[s] += v[i].s.calls;
        r->bytes[s] += v[i].s.bytes;
        r->leaked_blocks[s] += v[i].s.live_blocks;
        r->leaked_bytes[s] += v[i].s.live_bytes;
        r->peak_bytes[s] += v[i].s.peak_bytes;
    }
    if (nrows) qsort(rows, nrows, sizeof *rows, by_growth);
    for (size_t i = 0; i < nrows; i++) nchanged += changed(&rows[i]);

    if ((rc = mt_table_create(cols, NCOLS, &t))) goto fail;
    size_t shown = 0;
    for (size_t i = 0; i < nrows && (!c.top || shown < (size_t)c.top); i++) {
        const row_t *r = &rows[i];
        if (!changed(r)) continue;
        if ((rc = mt_table_row(t)) || (rc = mt_table_text(t, C_FRAMES, r->text))) goto fail;
        mt_table_int(t, C_RANK, (int64_t)++shown);
        static const int cols_of[2][6] = {{C_LA, C_LBA, C_BA, C_CA, C_PA, 0}, {C_LB, C_LBB, C_BB, C_CB, C_PB, 0}};
        for (int s = 0; s < 2; s++) {
            if (!r->present[s]) continue;
            mt_table_int(t, cols_of[s][0], r->leaked_bytes[s]);
            mt_table_int(t, cols_of[s][1], r->leaked_blocks[s]);
            mt_table_int(t, cols_of[s][2], r->bytes[s]);
            mt_table_int(t, cols_of[s][3], r->calls[s]);
            mt_table_int(t, cols_of[s][4], r->peak_bytes[s]);
        }
        mt_table_int(t, C_LD, r->leaked_bytes[1] - r->leaked_bytes[0]);
        mt_table_int(t, C_BD, r->bytes[1] - r->bytes[0]);
        mt_table_int(t, C_PD, r->peak_bytes[1] - r->peak_bytes[0]);
    }

    int no_heap = hs[0].allocs == 0 && hs[1].allocs == 0;
    if (c.csv) {
        if ((rc = mt_table_write(t, NULL, 1, stdout, NULL))) goto fail;
        if (no_heap)
            fprintf(stderr, "memtrace diff: no heap allocations in %s nor in %s: nothing to compare\n", c.path,
                    c2.path);
    } else if (no_heap) {
        printf("no heap allocations in %s nor in %s: nothing to compare\n", c.path, c2.path);
    } else {
        char a[32], b[32];
        if (!nchanged) {
            printf("no differences: the %s stack%s of A = %s and B = %s allocated, leaked and held at the heap "
                   "peak the same\n",
                   mt_fmt_count(a, sizeof a, (int64_t)nrows), mt_cli_plural((int64_t)nrows), c.path, c2.path);
        } else {
            printf("heap allocation stacks that changed from A = %s to B = %s, by growth of leaked bytes", c.path,
                   c2.path);
            if (shown < nchanged)
                printf(" (top %s of %s)", mt_fmt_count(a, sizeof a, (int64_t)shown),
                       mt_fmt_count(b, sizeof b, (int64_t)nchanged));
            printf("\n\n");
            if ((rc = mt_table_write(t, NULL, 0, stdout, "  "))) goto fail;
        }
        text_totals(rows, nrows, hs);
    }
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(failed ? &c2 : &c, db[failed], rc);
out:
    mt_table_destroy(t);
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].text);
    }
    free(v);
    free(rows);
    mt_db_close(db[0]);
    mt_db_close(db[1]);
    mt_cli_free(&c);
    mt_cli_free(&c2);
    return status;
}
