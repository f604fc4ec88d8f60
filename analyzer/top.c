/* top.c - `memtrace top [--by calls|bytes|peak] [--top N] [--csv] DB`: the
 * allocation call sites (stacks) that allocate most often, most bytes, or
 * hold most of the heap at its peak.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass (mt_sites_replay); every heap site (process, stack) that made at
 * least one allocation is a row, and all three measures are printed whatever
 * the sort key.  The table is built by mt_view_top (views.h), which
 * `memtrace report` shares.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "mt_util.h"
#include "sites.h"
#include "table.h"
#include "views.h"

#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--by calls|bytes|peak] [--top N] [--csv] [--layer NAME] DB"

enum { C_RANK = MT_VIEW_RANK, C_PROC = MT_VIEW_PROC, C_PID = MT_VIEW_PID,
       C_CALLS, C_BYTES, C_PBLOCKS, C_PBYTES, C_STACK, NCOLS };

static const mt_tcol_t cols[NCOLS] = {
    [C_RANK] = {"#", "rank", MT_TCOL_INT, 0, 0},
    [C_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [C_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [C_CALLS] = {"calls", "calls", MT_TCOL_INT, 0, 0},
    [C_BYTES] = {"bytes", "bytes", MT_TCOL_BYTES, 0, 0},
    [C_PBLOCKS] = {"blocks at peak", "peak_blocks", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [C_PBYTES] = {"at peak", "peak_bytes", MT_TCOL_BYTES, 0, 0},
    [C_STACK] = {"allocated at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};

void mt_usage_top(FILE *out)
{
    fprintf(out,
            "usage: memtrace top " SYNOPSIS "\n"
            "\n"
            "Ranks the allocation call sites (the stacks of heap allocations, libc\n"
            "layer, per process) by one measure and prints all three:\n"
            "\n"
            "  calls   allocations made there (malloc, calloc, realloc, reallocarray,\n"
            "          aligned allocations; a realloc counts once, as an allocation of\n"
            "          its new size)\n"
            "  bytes   bytes those allocations requested\n"
            "  peak    bytes of its blocks live at the heap's peak (see memtrace peak):\n"
            "          its contribution to the largest the heap ever was\n"
            "\n"
            "Options:\n"
            "  --by M      sort by calls, bytes (the default) or peak; with peak, sites\n"
            "              with nothing live at the peak are left out\n"
            "  --top N     show the first N sites (default %d; 0: all)\n"
            "  --csv       RFC 4180 CSV: a header row, then one row per site:\n"
            "              rank,process_id,pid,calls,bytes,peak_blocks,peak_bytes,\n"
            "              stack_id,frames (frames innermost first, joined by \" <- \")\n"
            "  --layer NAME  the layer taken as the heap: libc (default), or a CPython\n"
            "              domain: pymem_raw, pymem, pyobj, pyarena\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read, 2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace top --by calls --top 5 memtrace.myprog.1234.db\n",
            MT_CLI_DEFAULT_TOP);
}

static int cmp64(int64_t a, int64_t b) { return a > b ? -1 : a < b ? 1 : 0; } /* descending */

static int tie(const mt_site_t *x, const mt_site_t *y)
{
    if (x->process != y->process) return x->process < y->process ? -1 : 1;
    return (x->stack > y->stack) - (x->stack < y->stack);
}

static int by_calls(const void *a, const void *b)
{
    const mt_site_t *x = a, *y = b;
    int r = cmp64(x->calls, y->calls);
    if (!r) r = cmp64(x->bytes, y->bytes);
    return r ? r : tie(x, y);
}

static int by_bytes(const void *a, const void *b)
{
    const mt_site_t *x = a, *y = b;
    int r = cmp64(x->bytes, y->bytes);
    if (!r) r = cmp64(x->calls, y->calls);
    return r ? r : tie(x, y);
}

static int by_peak(const void *a, const void *b)
{
    const mt_site_t *x = a, *y = b;
    int r = cmp64(x->peak_bytes, y->peak_bytes);
    if (!r) r = cmp64(x->peak_blocks, y->peak_blocks);
    if (!r) r = cmp64(x->bytes, y->bytes);
    return r ? r : tie(x, y);
}

static void top_cells(mt_table_t *t, const mt_site_t *s)
{
    mt_table_int(t, C_CALLS, s->calls);
    mt_table_int(t, C_BYTES, s->bytes);
    mt_table_int(t, C_PBLOCKS, s->peak_blocks);
    mt_table_int(t, C_PBYTES, s->peak_bytes);
}

int mt_view_top(const mt_cli_t *c, int by, mt_site_t *v, size_t n, size_t *nrows, mt_table_t **out)
{
    static int (*const cmp[])(const void *, const void *) = {by_calls, by_bytes, by_peak};
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].calls > 0 && (by != MT_TOP_PEAK || v[i].peak_blocks > 0)) v[k++] = v[i];
    *nrows = k;
    return mt_view_site_table(c, v, k, cmp[by], cols, NCOLS, top_cells, out);
}

int mt_cmd_top(int argc, char **argv)
{
    static const char *const names[] = {[MT_TOP_CALLS] = "calls", [MT_TOP_BYTES] = "bytes", [MT_TOP_PEAK] = "peak"};
    static const char *const words[] = {[MT_TOP_CALLS] = "number of allocations",
                                        [MT_TOP_BYTES] = "bytes allocated",
                                        [MT_TOP_PEAK] = "bytes live at the heap peak"};
    mt_cli_t c = {.cmd = "top", .synopsis = SYNOPSIS, .usage = mt_usage_top, .has_top = 1, .has_csv = 1,
                  .has_layer = 1};
    const char *by_arg = NULL;
    const mt_cli_opt_t opts[] = {{"--by", NULL, 1, &by_arg}};
    int status = mt_cli_parse(&c, argc, argv, opts, 1);
    if (status >= 0) return status;
    int by = MT_TOP_BYTES;
    if (by_arg) {
        for (by = 0; by < 3 && strcmp(by_arg, names[by]); by++) {
        }
        if (by == 3) return mt_cli_usage_error(&c, "--by wants calls, bytes or peak, not '%s'", by_arg);
    }
    status = 1;

    mt_db_t *db = NULL;
    mt_site_t *v = NULL;
    mt_table_t *t = NULL;
    mt_stackfmt_t *sf = NULL;
    mt_heap_stats_t hs;
    size_t n = 0, k = 0;
    int64_t calls = 0, bytes = 0;
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_sites_heap(db, c.progress, c.layer, &v, &n, &hs))) goto fail;
    for (size_t i = 0; i < n; i++) {
        calls += v[i].calls;
        bytes += v[i].bytes;
    }
    if ((rc = mt_view_top(&c, by, v, n, &k, &t))) goto fail;
    size_t shown = mt_table_rows(t);
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;

    if (c.csv && (rc = mt_table_write(t, sf, 1, stdout, NULL))) goto fail;
    if (hs.allocs == 0) {
        mt_cli_no_heap(&c, &hs);
    } else if (!c.csv) {
        char a[32], b[32], d[64], e[64];
        printf("allocation sites in %s by %s", c.path, words[by]);
        if (shown < k)
            printf(" (top %s of %s)", mt_fmt_count(a, sizeof a, (int64_t)shown),
                   mt_fmt_count(b, sizeof b, (int64_t)k));
        printf("\n\n");
        if ((rc = mt_table_write(t, sf, 0, stdout, "  "))) goto fail;
        printf("\ntotal: %s allocation%s, %s, from %s stack%s; heap peak %s\n", mt_fmt_count(a, sizeof a, calls),
               mt_cli_plural(calls), mt_cli_bytes(d, sizeof d, bytes), mt_fmt_count(b, sizeof b, (int64_t)n),
               mt_cli_plural((int64_t)n), mt_cli_bytes(e, sizeof e, hs.peak_bytes));
    }
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_table_destroy(t);
    mt_stackfmt_close(sf);
    free(v);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
