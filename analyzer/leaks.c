/* leaks.c - `memtrace leaks [--top N] [--csv] DB`: heap blocks still live
 * when their process ended, grouped by the stack that allocated them.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass (mt_sites_replay: heap model + allocation sites); a site whose
 * live counters are not zero at the end holds leaked blocks.  Sites are
 * (process, stack) pairs, so each process's leaks are counted apart.
 * Sorted by bytes, then blocks, then process and stack id (a total order:
 * the output is deterministic).  The table itself is built by
 * mt_view_leaks (views.h), which `memtrace report` shares.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "mt_util.h"
#include "sites.h"
#include "table.h"
#include "views.h"

#include <inttypes.h>
#include <stdlib.h>

#define SYNOPSIS "[--top N] [--csv] [--layer NAME] DB"

enum { C_RANK = MT_VIEW_RANK, C_PROC = MT_VIEW_PROC, C_PID = MT_VIEW_PID,
       C_BLOCKS, C_BYTES, C_STACK, NCOLS };

static const mt_tcol_t cols[NCOLS] = {
    [C_RANK] = {"#", "rank", MT_TCOL_INT, 0, 0},
    [C_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [C_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [C_BLOCKS] = {"blocks", "blocks", MT_TCOL_INT, 0, 0},
    [C_BYTES] = {"bytes", "bytes", MT_TCOL_BYTES, 0, 0},
    [C_STACK] = {"allocated at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};

void mt_usage_leaks(FILE *out)
{
    fprintf(out,
            "usage: memtrace leaks " SYNOPSIS "\n"
            "\n"
            "Lists the heap blocks (libc layer: malloc, calloc, realloc, aligned\n"
            "allocations) still allocated when their process ended, grouped by the\n"
            "call stack that allocated them, most bytes first, and a totals line.\n"
            "Stacks show the innermost function first, as \"function (file:line)\".\n"
            "\n"
            "A block is leaked when no free, realloc or reallocarray released it before\n"
            "its process ended.  Each process is counted apart (a forked child has its\n"
            "own rows).  In an incomplete trace (memtrace warns: a process was killed,\n"
            "or recording stopped early) these are the blocks live when the trace\n"
            "ended, not necessarily leaks.\n"
            "\n"
            "Options:\n"
            "  --top N     show the N stacks with the most bytes (default %d; 0: all);\n"
            "              the totals always cover every stack\n"
            "  --csv       RFC 4180 CSV: a header row, then one row per stack:\n"
            "              rank,process_id,pid,blocks,bytes,stack_id,frames\n"
            "              (frames innermost first, joined by \" <- \"; no totals row)\n"
            "  --layer NAME  the layer taken as the heap: libc (default), or a CPython\n"
            "              domain: pymem_raw, pymem, pyobj, pyarena\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done (leaks or not), 1 the trace cannot be read, 2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace leaks --top 3 memtrace.myprog.1234.db\n",
            MT_CLI_DEFAULT_TOP);
}

static int by_bytes(const void *a, const void *b)
{
    const mt_site_t *x = a, *y = b;
    if (x->live_bytes != y->live_bytes) return x->live_bytes > y->live_bytes ? -1 : 1;
    if (x->live_blocks != y->live_blocks) return x->live_blocks > y->live_blocks ? -1 : 1;
    if (x->process != y->process) return x->process < y->process ? -1 : 1;
    return (x->stack > y->stack) - (x->stack < y->stack);
}

static void leak_cells(mt_table_t *t, const mt_site_t *s)
{
    mt_table_int(t, C_BLOCKS, s->live_blocks);
    mt_table_int(t, C_BYTES, s->live_bytes);
}

int mt_view_leaks(const mt_cli_t *c, mt_site_t *v, size_t n, size_t *nrows, mt_table_t **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].live_blocks > 0) v[k++] = v[i];
    *nrows = k;
    return mt_view_site_table(c, v, k, by_bytes, cols, NCOLS, leak_cells, out);
}

/* Totals of the leaks (v[0..n)), and per process when several leaked. */
static void text_totals(const mt_cli_t *c, const mt_site_t *v, size_t n)
{
    char a[64], b[32], d[32];
    int64_t blocks = 0, bytes = 0, nproc = 0;
    for (size_t i = 0; i < n; i++) {
        blocks += v[i].live_blocks;
        bytes += v[i].live_bytes;
    }
    for (size_t p = 0; p < c->nprocs; p++) {
        for (size_t i = 0; i < n; i++)
            if (v[i].process == c->procs[p].id) {
                nproc++;
                break;
            }
    }
    printf("\ntotal: %s block%s, %s, from %s stack%s", mt_fmt_count(b, sizeof b, blocks), mt_cli_plural(blocks),
           mt_cli_bytes(a, sizeof a, bytes), mt_fmt_count(d, sizeof d, (int64_t)n), mt_cli_plural((int64_t)n));
    if (nproc > 1) printf(" in %" PRId64 " processes", nproc);
    printf("\n");
    if (nproc < 2) return;
    for (size_t p = 0; p < c->nprocs; p++) {
        int64_t pb = 0, pbytes = 0, ps = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i].process != c->procs[p].id) continue;
            pb += v[i].live_blocks;
            pbytes += v[i].live_bytes;
            ps++;
        }
        if (ps)
            printf("  pid %" PRId64 ": %s block%s, %s, from %" PRId64 " stack%s\n", c->procs[p].pid,
                   mt_fmt_count(b, sizeof b, pb), mt_cli_plural(pb), mt_cli_bytes(a, sizeof a, pbytes), ps,
                   mt_cli_plural(ps));
    }
}

int mt_cmd_leaks(int argc, char **argv)
{
    mt_cli_t c = {.cmd = "leaks", .synopsis = SYNOPSIS, .usage = mt_usage_leaks, .has_top = 1, .has_csv = 1,
                  .has_layer = 1};
    int status = mt_cli_parse(&c, argc, argv, NULL, 0);
    if (status >= 0) return status;
    status = 1;

    mt_db_t *db = NULL;
    mt_site_t *v = NULL;
    mt_table_t *t = NULL;
    mt_stackfmt_t *sf = NULL;
    mt_heap_stats_t hs;
    size_t n = 0, nleak = 0;
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_sites_heap(db, c.progress, c.layer, &v, &n, &hs))) goto fail;
    if ((rc = mt_view_leaks(&c, v, n, &nleak, &t))) goto fail;
    size_t shown = mt_table_rows(t);
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;

    if (hs.allocs == 0) {
        if (c.csv) rc = mt_table_write(t, sf, 1, stdout, NULL);
        mt_cli_no_heap(&c, &hs);
    } else if (!nleak) {
        char a[32];
        if (c.csv) rc = mt_table_write(t, sf, 1, stdout, NULL);
        else printf("no leaks in %s: all %s heap block%s allocated during the trace were freed\n", c.path,
                    mt_fmt_count(a, sizeof a, hs.allocs), mt_cli_plural(hs.allocs));
    } else if (c.csv) {
        rc = mt_table_write(t, sf, 1, stdout, NULL);
    } else {
        char a[32], b[32];
        printf("heap blocks still live %s in %s, by allocation stack",
               c.complete == 0 ? "when the (incomplete) trace ended" : "at the end of their process", c.path);
        if (shown < nleak)
            printf(" (top %s of %s)", mt_fmt_count(a, sizeof a, (int64_t)shown),
                   mt_fmt_count(b, sizeof b, (int64_t)nleak));
        printf("\n\n");
        if (!(rc = mt_table_write(t, sf, 0, stdout, "  "))) text_totals(&c, v, nleak);
    }
    if (rc) goto fail;
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
