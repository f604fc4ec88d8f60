/* peak.c - `memtrace peak [--top N] [--csv] DB`: the moment the heap was
 * largest, and what was live then, by allocation stack.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass (mt_sites_replay): the heap model finds the peak (the first event
 * after which live heap bytes reached their maximum, over all processes
 * together) and the sites model snapshots each stack's live counters at that
 * moment without a second pass (the epoch snapshot described in sites.h).
 * The os layer's peak of mapped bytes is found and broken down the same way.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "mt_util.h"
#include "sites.h"
#include "table.h"

#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--top N] [--csv] [--layer NAME] DB"

enum { C_LAYER, C_PBYTES, C_PBLOCKS, C_PSEQ, C_PTS, C_RANK, C_PROC, C_PID, C_BLOCKS, C_BYTES, C_SHARE,
       C_STACK, NCOLS };

static const mt_tcol_t cols[NCOLS] = {
    [C_LAYER] = {"layer", "layer", MT_TCOL_TEXT, 0, MT_TCOL_ONLY_CSV},
    [C_PBYTES] = {"peak bytes", "peak_bytes", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [C_PBLOCKS] = {"peak blocks", "peak_blocks", MT_TCOL_INT, 0, MT_TCOL_ONLY_CSV},
    [C_PSEQ] = {"seq", "peak_seq", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [C_PTS] = {"ts", "peak_ts_ns", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [C_RANK] = {"#", "rank", MT_TCOL_INT, 0, 0},
    [C_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [C_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [C_BLOCKS] = {"blocks", "blocks", MT_TCOL_INT, 0, 0},
    [C_BYTES] = {"bytes", "bytes", MT_TCOL_BYTES, 0, 0},
    [C_SHARE] = {"% of peak", "percent_of_peak", MT_TCOL_REAL, 1, 0},
    [C_STACK] = {"allocated at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};

void mt_usage_peak(FILE *out)
{
    fprintf(out,
            "usage: memtrace peak " SYNOPSIS "\n"
            "\n"
            "Finds the moment the heap was largest: the first event after which the\n"
            "bytes of live heap blocks (libc layer, every process together) reached\n"
            "their maximum; prints its size, block count, seq and time, and what was\n"
            "live at that moment grouped by the stack that allocated it, most bytes\n"
            "first.  When the trace has mappings (os layer: mmap, munmap, mremap), the\n"
            "peak of mapped bytes is reported and broken down the same way.\n"
            "\n"
            "Sizes are the sizes requested from the allocator, not what it used.\n"
            "\n"
            "Options:\n"
            "  --top N     show the N stacks with the most bytes at each peak\n"
            "              (default %d; 0: all)\n"
            "  --csv       RFC 4180 CSV: a header row, then one row per layer and stack:\n"
            "              layer,peak_bytes,peak_blocks,peak_seq,peak_ts_ns,rank,\n"
            "              process_id,pid,blocks,bytes,percent_of_peak,stack_id,frames\n"
            "              (layer is libc or os; the peak_* columns repeat the moment)\n"
            "  --layer NAME  the layer taken as the heap: libc (default), or a CPython\n"
            "              domain: pymem_raw, pymem, pyobj, pyarena\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read, 2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace peak memtrace.myprog.1234.db\n",
            MT_CLI_DEFAULT_TOP);
}

static int by_peak(const void *a, const void *b)
{
    const mt_site_t *x = a, *y = b;
    if (x->peak_bytes != y->peak_bytes) return x->peak_bytes > y->peak_bytes ? -1 : 1;
    if (x->peak_blocks != y->peak_blocks) return x->peak_blocks > y->peak_blocks ? -1 : 1;
    if (x->process != y->process) return x->process < y->process ? -1 : 1;
    return (x->stack > y->stack) - (x->stack < y->stack);
}

/* One layer's peak: its moment and its sites. */
typedef struct {
    const char *layer;         /* "libc" / "os" */
    int64_t bytes, blocks, seq, ts;
    mt_site_t *v;              /* sites live at the peak, sorted */
    size_t n;
} layer_peak_t;

static int gather(const mt_sites_t *s, int which, layer_peak_t *lp)
{
    int rc = mt_sites_list(s, which, &lp->v, &lp->n);
    if (rc) return rc;
    size_t k = 0;
    int64_t blocks = 0;
    for (size_t i = 0; i < lp->n; i++) {
        if (lp->v[i].peak_blocks <= 0 && lp->v[i].peak_bytes <= 0) continue;
        blocks += lp->v[i].peak_blocks;
        lp->v[k++] = lp->v[i];
    }
    lp->n = k;
    if (k) qsort(lp->v, k, sizeof *lp->v, by_peak);
    if (which == MT_SITES_MAPS) lp->blocks = blocks; /* regions: the heap model counts no peak regions */
    return 0;
}

static int add_rows(const mt_cli_t *c, mt_table_t *t, const layer_peak_t *lp)
{
    size_t shown = c->top && (size_t)c->top < lp->n ? (size_t)c->top : lp->n;
    for (size_t i = 0; i < shown; i++) {
        const mt_site_t *s = &lp->v[i];
        int rc = mt_table_row(t);
        if (!rc) rc = mt_table_text(t, C_LAYER, lp->layer);
        if (rc) return rc;
        mt_table_int(t, C_PBYTES, lp->bytes);
        mt_table_int(t, C_PBLOCKS, lp->blocks);
        mt_table_int(t, C_PSEQ, lp->seq);
        mt_table_int(t, C_PTS, lp->ts);
        mt_table_int(t, C_RANK, (int64_t)i + 1);
        mt_table_int(t, C_PROC, s->process);
        int64_t pid = mt_cli_pid(c, s->process);
        if (pid >= 0) mt_table_int(t, C_PID, pid);
        mt_table_int(t, C_BLOCKS, s->peak_blocks);
        mt_table_int(t, C_BYTES, s->peak_bytes);
        mt_table_real(t, C_SHARE, lp->bytes > 0 ? 100.0 * (double)s->peak_bytes / (double)lp->bytes : 0.0);
        mt_table_int(t, C_STACK, s->stack);
    }
    return 0;
}

/* Text: the moment, then the table of what was live. */
static int text_layer(const mt_cli_t *c, const layer_peak_t *lp, const char *title, const char *unit,
                      mt_stackfmt_t *sf)
{
    char a[64], b[32], d[32], e[32], f[32];
    printf("%s\n  %s in %s %s%s, first reached at seq %s, %s into the trace\n", title,
           mt_cli_bytes(a, sizeof a, lp->bytes), mt_fmt_count(b, sizeof b, lp->blocks), unit,
           mt_cli_plural(lp->blocks), mt_fmt_count(d, sizeof d, lp->seq), mt_fmt_ns(e, sizeof e, lp->ts));
    /* the same columns, named for regions in the os layer */
    mt_tcol_t named[NCOLS];
    memcpy(named, cols, sizeof named);
    if (!strcmp(lp->layer, "os")) {
        named[C_BLOCKS].title = "regions";
        named[C_STACK].title = "mapped at";
    }
    mt_table_t *t;
    int rc = mt_table_create(named, NCOLS, &t);
    if (!rc) rc = add_rows(c, t, lp);
    if (!rc) {
        size_t shown = mt_table_rows(t);
        printf("\n  live at that moment, by %s stack", strcmp(lp->layer, "os") ? "allocation" : "mapping");
        if (shown < lp->n)
            printf(" (top %s of %s)", mt_fmt_count(b, sizeof b, (int64_t)shown),
                   mt_fmt_count(f, sizeof f, (int64_t)lp->n));
        printf("\n\n");
        rc = mt_table_write(t, sf, 0, stdout, "  ");
    }
    mt_table_destroy(t);
    return rc;
}

int mt_cmd_peak(int argc, char **argv)
{
    mt_cli_t c = {.cmd = "peak", .synopsis = SYNOPSIS, .usage = mt_usage_peak, .has_top = 1, .has_csv = 1,
                  .has_layer = 1};
    int status = mt_cli_parse(&c, argc, argv, NULL, 0);
    if (status >= 0) return status;
    status = 1;

    mt_db_t *db = NULL;
    mt_sites_t *sites = NULL;
    mt_stackfmt_t *sf = NULL;
    mt_table_t *t = NULL;
    mt_heap_stats_t hs;
    layer_peak_t heap = {.layer = "libc"}, maps = {.layer = "os"};
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_sites_replay(db, c.progress, c.layer, &sites, &hs))) goto fail;
    heap.bytes = hs.peak_bytes;
    heap.blocks = hs.peak_blocks;
    heap.seq = hs.peak_seq;
    heap.ts = hs.peak_ts;
    maps.bytes = hs.peak_mapped_bytes;
    maps.seq = hs.peak_mapped_seq;
    maps.ts = hs.peak_mapped_ts;
    if ((rc = gather(sites, MT_SITES_HEAP, &heap)) || (rc = gather(sites, MT_SITES_MAPS, &maps))) goto fail;
    mt_sites_destroy(sites);
    sites = NULL;
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;

    int has_heap = hs.peak_seq >= 0, has_maps = hs.peak_mapped_seq >= 0;
    if (c.csv) {
        if ((rc = mt_table_create(cols, NCOLS, &t))) goto fail;
        if (has_heap && (rc = add_rows(&c, t, &heap))) goto fail;
        if (has_maps && (rc = add_rows(&c, t, &maps))) goto fail;
        if ((rc = mt_table_write(t, sf, 1, stdout, NULL))) goto fail;
        if (!has_heap && !has_maps && !mt_cli_no_heap(&c, &hs))
            fprintf(stderr, "memtrace peak: no peak in %s: every heap block had 0 bytes\n", c.path);
    } else if (!has_heap && !has_maps) {
        if (!mt_cli_no_heap(&c, &hs)) printf("no peak in %s: every heap block had 0 bytes\n", c.path);
    } else {
        if (has_heap) {
            if ((rc = text_layer(&c, &heap, "heap peak (libc layer)", "block", sf))) goto fail;
        } else {
            printf("heap peak (libc layer): none, no heap block of more than 0 bytes was allocated\n");
        }
        if (has_maps) {
            printf("\n");
            if ((rc = text_layer(&c, &maps, "mapped peak (os layer)", "region", sf))) goto fail;
        }
    }
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_table_destroy(t);
    mt_stackfmt_close(sf);
    free(heap.v);
    free(maps.v);
    mt_sites_destroy(sites);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
