/* growth.c - `memtrace growth [--chains] [--top N] [--csv] DB`: realloc
 * chains, by the stack of the realloc call, or the longest chains one by one.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass (mt_chains_replay: heap model + chain model, definitions in
 * chains.h), then one of two tables:
 *   sites    one row per realloc site: chains, steps, median growth factor,
 *            moves and in-place resizes, bytes copied, size range, mean time
 *            of a chain there; sorted by bytes copied (what the growth cost)
 *   chains   (--chains) the longest chains: steps, first and last size, the
 *            factors step by step, moves, bytes copied, duration
 * The sites table is built by mt_view_growth_sites (views.h), which
 * `memtrace report` shares.
 */
#include "mt_analyzer.h"

#include "chains.h"
#include "cli.h"
#include "mt_util.h"
#include "table.h"
#include "views.h"

#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--chains] [--top N] [--csv] [--layer NAME] DB"

enum { S_RANK, S_PROC, S_PID, S_CHAINS, S_STEPS, S_FACTOR, S_MOVES, S_INPLACE, S_COPIED, S_SIZES, S_FIRST,
       S_LAST, S_TIME, S_DURATION, S_STACK, S_NCOLS };

static const mt_tcol_t site_cols[S_NCOLS] = {
    [S_RANK] = {"#", "rank", MT_TCOL_INT, 0, 0},
    [S_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [S_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [S_CHAINS] = {"chains", "chains", MT_TCOL_INT, 0, 0},
    [S_STEPS] = {"steps", "steps", MT_TCOL_INT, 0, 0},
    [S_FACTOR] = {"median factor", "median_factor", MT_TCOL_REAL, 2, 0},
    [S_MOVES] = {"moves", "moves", MT_TCOL_INT, 0, 0},
    [S_INPLACE] = {"in place", "in_place", MT_TCOL_INT, 0, 0},
    [S_COPIED] = {"copied", "bytes_copied", MT_TCOL_BYTES, 0, 0},
    [S_SIZES] = {"sizes", "sizes", MT_TCOL_TEXT, 0, MT_TCOL_ONLY_TEXT},
    [S_FIRST] = {"first", "min_first_size", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [S_LAST] = {"last", "max_last_size", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [S_TIME] = {"mean time", "mean_time", MT_TCOL_TEXT, 0, MT_TCOL_ONLY_TEXT},
    [S_DURATION] = {"duration", "duration_ns", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [S_STACK] = {"realloc at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};

enum { K_RANK, K_PROC, K_PID, K_SEQ, K_TS, K_STEPS, K_FIRST, K_LAST, K_FACTOR, K_MOVES, K_INPLACE, K_COPIED,
       K_TIME, K_DURATION, K_FACTORS, K_STACK, K_NCOLS };

static const mt_tcol_t chain_cols[K_NCOLS] = {
    [K_RANK] = {"#", "rank", MT_TCOL_INT, 0, 0},
    [K_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [K_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [K_SEQ] = {"seq", "first_seq", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [K_TS] = {"ts", "first_ts_ns", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [K_STEPS] = {"steps", "steps", MT_TCOL_INT, 0, 0},
    [K_FIRST] = {"first", "first_size", MT_TCOL_BYTES, 0, 0},
    [K_LAST] = {"last", "last_size", MT_TCOL_BYTES, 0, 0},
    [K_FACTOR] = {"median factor", "median_factor", MT_TCOL_REAL, 2, 0},
    [K_MOVES] = {"moves", "moves", MT_TCOL_INT, 0, 0},
    [K_INPLACE] = {"in place", "in_place", MT_TCOL_INT, 0, 0},
    [K_COPIED] = {"copied", "bytes_copied", MT_TCOL_BYTES, 0, 0},
    [K_TIME] = {"time", "time", MT_TCOL_TEXT, 0, MT_TCOL_ONLY_TEXT},
    [K_DURATION] = {"duration", "duration_ns", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [K_FACTORS] = {"factors", "factors", MT_TCOL_TEXT, 0, 0},
    [K_STACK] = {"first resized at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};

void mt_usage_growth(FILE *out)
{
    fprintf(out,
            "usage: memtrace growth " SYNOPSIS "\n"
            "\n"
            "Follows realloc chains: a block from its allocation through every realloc\n"
            "or reallocarray that resized it (each one a step) until it is freed.  A\n"
            "step's factor is new size / old size; it moved when the block changed\n"
            "address, and a move copied min(old size, new size) bytes.\n"
            "\n"
            "By default one row per realloc call site (the stack of the realloc), so a\n"
            "growing vector shows as one line: the chains that took steps there, the\n"
            "steps, their median factor, moves and in-place resizes, bytes copied, the\n"
            "smallest size before and the largest after, and the mean time a chain\n"
            "spent growing there.  Sorted by bytes copied.  Heap layer (libc) only.\n"
            "\n"
            "Options:\n"
            "  --chains    one row per chain instead, the longest first (most steps):\n"
            "              first and last size, median factor, the first %d factors\n"
            "              step by step, moves, bytes copied, and its duration from\n"
            "              the allocation to its last step\n"
            "  --top N     show the first N rows (default %d; 0: all sites; with\n"
            "              --chains 0 is not allowed)\n"
            "  --csv       RFC 4180 CSV with a header row; per site:\n"
            "              rank,process_id,pid,chains,steps,median_factor,moves,\n"
            "              in_place,bytes_copied,min_first_size,max_last_size,\n"
            "              duration_ns,stack_id,frames   (duration summed over chains)\n"
            "              per chain (--chains):\n"
            "              rank,process_id,pid,first_seq,first_ts_ns,steps,first_size,\n"
            "              last_size,median_factor,moves,in_place,bytes_copied,\n"
            "              duration_ns,factors,stack_id,frames\n"
            "  --layer NAME  the layer taken as the heap: libc (default), or a CPython\n"
            "              domain: pymem_raw, pymem, pyobj, pyarena\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read, 2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace growth memtrace.myprog.1234.db\n"
            "  memtrace growth --chains --top 5 memtrace.myprog.1234.db\n",
            MT_CHAIN_SHOWN, MT_CLI_DEFAULT_TOP);
}

static int site_rows(const mt_cli_t *c, mt_table_t *t, mt_chain_site_t *v, size_t n);

static int by_copied(const void *a, const void *b)
{
    const mt_chain_site_t *x = a, *y = b;
    if (x->copied != y->copied) return x->copied > y->copied ? -1 : 1;
    if (x->steps != y->steps) return x->steps > y->steps ? -1 : 1;
    if (x->process != y->process) return x->process < y->process ? -1 : 1;
    return (x->stack > y->stack) - (x->stack < y->stack);
}

int mt_view_growth_sites(const mt_cli_t *c, mt_chain_site_t *v, size_t n, mt_table_t **out)
{
    mt_table_t *t;
    int rc = mt_table_create(site_cols, S_NCOLS, &t);
    if (rc) return rc;
    if ((rc = site_rows(c, t, v, n))) {
        mt_table_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int site_rows(const mt_cli_t *c, mt_table_t *t, mt_chain_site_t *v, size_t n)
{
    char a[32], b[32], text[96];
    if (n) qsort(v, n, sizeof *v, by_copied);
    size_t shown = c->top && (size_t)c->top < n ? (size_t)c->top : n;
    for (size_t i = 0; i < shown; i++) {
        const mt_chain_site_t *s = &v[i];
        int rc = mt_table_row(t);
        if (rc) return rc;
        mt_table_int(t, S_RANK, (int64_t)i + 1);
        mt_table_int(t, S_PROC, s->process);
        int64_t pid = mt_cli_pid(c, s->process);
        if (pid >= 0) mt_table_int(t, S_PID, pid);
        mt_table_int(t, S_CHAINS, s->chains);
        mt_table_int(t, S_STEPS, s->steps);
        if (s->factors) mt_table_real(t, S_FACTOR, s->median_factor);
        mt_table_int(t, S_MOVES, s->moves);
        mt_table_int(t, S_INPLACE, s->in_place);
        mt_table_int(t, S_COPIED, s->copied);
        snprintf(text, sizeof text, "%s -> %s", mt_fmt_bytes(a, sizeof a, (double)s->min_first),
                 mt_fmt_bytes(b, sizeof b, (double)s->max_last));
        if ((rc = mt_table_text(t, S_SIZES, text))) return rc;
        mt_table_int(t, S_FIRST, s->min_first);
        mt_table_int(t, S_LAST, s->max_last);
        int64_t mean = s->chains ? s->duration_ns / s->chains : 0;
        if ((rc = mt_table_text(t, S_TIME, mt_fmt_ns(a, sizeof a, mean)))) return rc;
        mt_table_int(t, S_DURATION, s->duration_ns);
        mt_table_int(t, S_STACK, s->stack);
    }
    return 0;
}

/* "1.50 1.50 1.44 ... (+12)" */
static void factor_text(const mt_chain_t *ch, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < ch->nfactors && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%.2f", i ? " " : "", (double)ch->factors[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    if (ch->more_factors && used < len) snprintf(buf + used, len - used, " ... (+%lld)", (long long)ch->more_factors);
}

static int chain_rows(const mt_cli_t *c, mt_table_t *t, const mt_chain_t *v, size_t n)
{
    char a[32], text[MT_CHAIN_SHOWN * 12 + 32];
    for (size_t i = 0; i < n; i++) {
        const mt_chain_t *ch = &v[i];
        int rc = mt_table_row(t);
        if (rc) return rc;
        mt_table_int(t, K_RANK, (int64_t)i + 1);
        mt_table_int(t, K_PROC, ch->process);
        int64_t pid = mt_cli_pid(c, ch->process);
        if (pid >= 0) mt_table_int(t, K_PID, pid);
        mt_table_int(t, K_SEQ, ch->first_seq);
        mt_table_int(t, K_TS, ch->first_ts);
        mt_table_int(t, K_STEPS, ch->steps);
        mt_table_int(t, K_FIRST, ch->first_size);
        mt_table_int(t, K_LAST, ch->last_size);
        if (ch->nfactors) mt_table_real(t, K_FACTOR, ch->median_factor);
        mt_table_int(t, K_MOVES, ch->moves);
        mt_table_int(t, K_INPLACE, ch->in_place);
        mt_table_int(t, K_COPIED, ch->copied);
        if ((rc = mt_table_text(t, K_TIME, mt_fmt_ns(a, sizeof a, ch->last_ts - ch->first_ts)))) return rc;
        mt_table_int(t, K_DURATION, ch->last_ts - ch->first_ts);
        factor_text(ch, text, sizeof text);
        if ((rc = mt_table_text(t, K_FACTORS, text))) return rc;
        mt_table_int(t, K_STACK, ch->site);
    }
    return 0;
}

int mt_cmd_growth(int argc, char **argv)
{
    mt_cli_t c = {.cmd = "growth", .synopsis = SYNOPSIS, .usage = mt_usage_growth, .has_top = 1, .has_csv = 1,
                  .has_layer = 1};
    const char *chains_flag = NULL;
    const mt_cli_opt_t opts[] = {{"--chains", NULL, 0, &chains_flag}};
    int status = mt_cli_parse(&c, argc, argv, opts, 1);
    if (status >= 0) return status;
    int per_chain = chains_flag != NULL;
    if (per_chain && c.top == 0)
        return mt_cli_usage_error(&c, "%s", "--chains needs --top N with N > 0 (the longest chains are kept in memory)");
    status = 1;

    mt_db_t *db = NULL;
    mt_chains_t *model = NULL;
    mt_chain_site_t *sites = NULL;
    mt_chain_t *longest = NULL;
    mt_table_t *t = NULL;
    mt_stackfmt_t *sf = NULL;
    mt_heap_stats_t hs;
    size_t nsites = 0, nlong = 0;
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_chains_replay(db, c.progress, c.layer, per_chain ? (size_t)c.top : 0, &model, &hs))) goto fail;
    mt_chain_totals_t tot = mt_chains_totals(model);
    if ((rc = mt_chains_sites(model, &sites, &nsites))) goto fail;
    if (per_chain && (rc = mt_chains_longest(model, &longest, &nlong))) goto fail;
    mt_chains_destroy(model);
    model = NULL;

    if (per_chain) {
        if ((rc = mt_table_create(chain_cols, K_NCOLS, &t)) || (rc = chain_rows(&c, t, longest, nlong))) goto fail;
    } else if ((rc = mt_view_growth_sites(&c, sites, nsites, &t))) {
        goto fail;
    }
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;

    char a[32], b[32], d[64], e[32], f[32];
    if (c.csv && (rc = mt_table_write(t, sf, 1, stdout, NULL))) goto fail;
    if (hs.allocs == 0) {
        mt_cli_no_heap(&c, &hs);
    } else if (c.csv) {
        /* the table says it all */
    } else if (!tot.chains) {
        printf("no realloc chains in %s: no realloc resized a block allocated during the trace\n", c.path);
    } else {
        size_t rows = mt_table_rows(t), of = per_chain ? (size_t)tot.chains : nsites;
        if (per_chain) printf("the longest realloc chains in %s", c.path);
        else printf("realloc chains in %s, by the stack of the realloc", c.path);
        if (rows < of)
            printf(" (top %s of %s)", mt_fmt_count(a, sizeof a, (int64_t)rows), mt_fmt_count(b, sizeof b, (int64_t)of));
        printf("\n\n");
        if ((rc = mt_table_write(t, sf, 0, stdout, "  "))) goto fail;
        printf("\ntotal: %s chain%s, %s step%s (%s move%s, %s in place), %s copied\n",
               mt_fmt_count(a, sizeof a, tot.chains), mt_cli_plural(tot.chains), mt_fmt_count(b, sizeof b, tot.steps),
               mt_cli_plural(tot.steps), mt_fmt_count(e, sizeof e, tot.moves), mt_cli_plural(tot.moves),
               mt_fmt_count(f, sizeof f, tot.in_place), mt_cli_bytes(d, sizeof d, tot.copied));
    }
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_table_destroy(t);
    mt_stackfmt_close(sf);
    free(sites);
    free(longest);
    mt_chains_destroy(model);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
