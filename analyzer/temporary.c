/* temporary.c - `memtrace temporary [--top N] [--csv] DB`: allocations
 * whose block is released by the very next heap call of the same thread,
 * by the stack that allocated them.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * The heap model flags a temporary when the block its thread's previous heap
 * event created is the block this event ends (heapmodel.h; the definition is
 * heaptrack's, written out in docs/analyzer.md); the sites model charges it
 * to the allocating site.  One pass (mt_sites_replay); the table is built
 * by mt_view_temporary (views.h), which `memtrace report` shares.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "mt_util.h"
#include "sites.h"
#include "table.h"
#include "views.h"

#include <stdlib.h>

#define SYNOPSIS "[--top N] [--csv] [--layer NAME] DB"

enum { C_RANK = MT_VIEW_RANK, C_PROC = MT_VIEW_PROC, C_PID = MT_VIEW_PID,
       C_TEMP, C_CALLS, C_PCT, C_BYTES, C_STACK, NCOLS };

static const mt_tcol_t cols[NCOLS] = {
    [C_RANK] = {"#", "rank", MT_TCOL_INT, 0, 0},
    [C_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [C_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [C_TEMP] = {"temporary", "temporary", MT_TCOL_INT, 0, 0},
    [C_CALLS] = {"of calls", "calls", MT_TCOL_INT, 0, 0},
    [C_PCT] = {"%", "percent", MT_TCOL_REAL, 1, 0},
    [C_BYTES] = {"bytes", "temporary_bytes", MT_TCOL_BYTES, 0, 0},
    [C_STACK] = {"allocated at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};

void mt_usage_temporary(FILE *out)
{
    fprintf(out,
            "usage: memtrace temporary " SYNOPSIS "\n"
            "\n"
            "Lists temporary allocations by the stack that made them, most first.  An\n"
            "allocation is temporary when the very next heap call of the same thread\n"
            "releases its block: malloc then free with no other malloc, free or\n"
            "realloc of that thread in between (heaptrack's definition).  A realloc\n"
            "of the block just allocated also ends it, so each step of a realloc loop\n"
            "counts as a temporary of the step before.  Such blocks could often live\n"
            "on the stack or be reused.\n"
            "\n"
            "Columns: temporary allocations, all allocations of the stack (calls), the\n"
            "share of them that was temporary, and the bytes of the temporary ones.\n"
            "\n"
            "Options:\n"
            "  --top N     show the N stacks with the most temporary allocations\n"
            "              (default %d; 0: all)\n"
            "  --csv       RFC 4180 CSV: a header row, then one row per stack:\n"
            "              rank,process_id,pid,temporary,calls,percent,temporary_bytes,\n"
            "              stack_id,frames (frames innermost first, joined by \" <- \")\n"
            "  --layer NAME  the layer taken as the heap: libc (default), or a CPython\n"
            "              domain: pymem_raw, pymem, pyobj, pyarena\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read, 2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace temporary --top 5 memtrace.myprog.1234.db\n",
            MT_CLI_DEFAULT_TOP);
}

static int by_temp(const void *a, const void *b)
{
    const mt_site_t *x = a, *y = b;
    if (x->temp_calls != y->temp_calls) return x->temp_calls > y->temp_calls ? -1 : 1;
    if (x->temp_bytes != y->temp_bytes) return x->temp_bytes > y->temp_bytes ? -1 : 1;
    if (x->process != y->process) return x->process < y->process ? -1 : 1;
    return (x->stack > y->stack) - (x->stack < y->stack);
}

static double pct(int64_t part, int64_t whole)
{
    return whole > 0 ? 100.0 * (double)part / (double)whole : 0.0;
}

static void temp_cells(mt_table_t *t, const mt_site_t *s)
{
    mt_table_int(t, C_TEMP, s->temp_calls);
    mt_table_int(t, C_CALLS, s->calls);
    mt_table_real(t, C_PCT, pct(s->temp_calls, s->calls));
    mt_table_int(t, C_BYTES, s->temp_bytes);
}

int mt_view_temporary(const mt_cli_t *c, mt_site_t *v, size_t n, size_t *nrows, mt_table_t **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].temp_calls > 0) v[k++] = v[i];
    *nrows = k;
    return mt_view_site_table(c, v, k, by_temp, cols, NCOLS, temp_cells, out);
}

int mt_cmd_temporary(int argc, char **argv)
{
    mt_cli_t c = {.cmd = "temporary", .synopsis = SYNOPSIS, .usage = mt_usage_temporary, .has_top = 1,
                  .has_csv = 1, .has_layer = 1};
    int status = mt_cli_parse(&c, argc, argv, NULL, 0);
    if (status >= 0) return status;
    status = 1;

    mt_db_t *db = NULL;
    mt_site_t *v = NULL;
    mt_table_t *t = NULL;
    mt_stackfmt_t *sf = NULL;
    mt_heap_stats_t hs;
    size_t n = 0, k = 0;
    int64_t bytes = 0;
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_sites_heap(db, c.progress, c.layer, &v, &n, &hs))) goto fail;
    for (size_t i = 0; i < n; i++) bytes += v[i].temp_bytes;
    if ((rc = mt_view_temporary(&c, v, n, &k, &t))) goto fail;
    size_t shown = mt_table_rows(t);
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;

    char a[32], b[32], d[64];
    if (c.csv && (rc = mt_table_write(t, sf, 1, stdout, NULL))) goto fail;
    if (hs.allocs == 0) {
        mt_cli_no_heap(&c, &hs);
    } else if (c.csv) {
        /* the table says it all */
    } else if (!k) {
        printf("no temporary allocations in %s (of %s allocation%s)\n", c.path,
               mt_fmt_count(a, sizeof a, hs.allocs), mt_cli_plural(hs.allocs));
    } else {
        printf("temporary allocations in %s (freed by the next heap call of their thread), by stack", c.path);
        if (shown < k)
            printf(" (top %s of %s)", mt_fmt_count(a, sizeof a, (int64_t)shown),
                   mt_fmt_count(b, sizeof b, (int64_t)k));
        printf("\n\n");
        if ((rc = mt_table_write(t, sf, 0, stdout, "  "))) goto fail;
        printf("\ntotal: %s of %s allocations temporary (%.1f%%), %s, from %zu stack%s\n",
               mt_fmt_count(a, sizeof a, hs.temporary), mt_fmt_count(b, sizeof b, hs.allocs),
               pct(hs.temporary, hs.allocs), mt_cli_bytes(d, sizeof d, bytes), k, mt_cli_plural((int64_t)k));
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
