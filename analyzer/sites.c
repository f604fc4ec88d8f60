/* sites.c - allocation sites (contract and the peak snapshot in sites.h).
 *
 * One table per layer: entries in an array (in order of first use), found
 * through a keymap (process, stack) -> entry number + 1.  The entry of the
 * previous lookup is tried first: events come in runs from one site.
 */
#include "sites.h"

#include "keymap.h"
#include "mt_error.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mt_site_t s;
    int64_t snap_blocks, snap_bytes;  /* live counters at peak number snap_epoch */
    uint64_t snap_epoch;
} entry_t;

typedef struct {
    entry_t *e;
    size_t n, cap;
    mt_keymap_t ix;   /* (process, stack) -> entry number + 1 */
    uint64_t epoch;   /* peaks seen so far */
    size_t last;      /* entry of the previous lookup (valid when n > 0) */
} table_t;

struct mt_sites {
    table_t t[2];     /* MT_SITES_HEAP, MT_SITES_MAPS */
};

int mt_sites_create(mt_sites_t **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : MT_ENOMEM;
}

void mt_sites_destroy(mt_sites_t *s)
{
    if (!s) return;
    for (int l = 0; l < 2; l++) {
        free(s->t[l].e);
        mt_keymap_free(&s->t[l].ix);
    }
    free(s);
}

/* The entry of (process, stack), created when absent.  Returns 0 or MT_ENOMEM. */
static int site(table_t *t, int64_t process, int64_t stack, entry_t **out)
{
    if (t->n && t->e[t->last].s.process == process && t->e[t->last].s.stack == stack) {
        *out = &t->e[t->last];
        return 0;
    }
    uint32_t k = mt_keymap_get(&t->ix, process, stack);
    if (k) {
        t->last = k - 1;
        *out = &t->e[k - 1];
        return 0;
    }
    if (t->n >= UINT32_MAX - 1) return MT_ENOMEM;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        entry_t *e = realloc(t->e, cap * sizeof *e);
        if (!e) return MT_ENOMEM;
        t->e = e;
        t->cap = cap;
    }
    int rc = mt_keymap_put(&t->ix, process, stack, (uint32_t)(t->n + 1));
    if (rc) return rc;
    entry_t *e = &t->e[t->n];
    memset(e, 0, sizeof *e);
    e->s.process = process;
    e->s.stack = stack;
    e->snap_epoch = t->epoch; /* it had nothing at the peaks before it existed */
    t->last = t->n++;
    *out = e;
    return 0;
}

/* Before the live counters of e change: keep their value at the latest peak. */
static void touch(const table_t *t, entry_t *e)
{
    if (e->snap_epoch != t->epoch) {
        e->snap_blocks = e->s.live_blocks;
        e->snap_bytes = e->s.live_bytes;
        e->snap_epoch = t->epoch;
    }
}

static int release(table_t *t, int64_t process, int64_t stack, int64_t bytes)
{
    entry_t *e;
    int rc = site(t, process, stack, &e);
    if (rc) return rc;
    touch(t, e);
    e->s.live_blocks--;
    e->s.live_bytes -= bytes;
    return 0;
}

int mt_sites_visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    mt_sites_t *s = arg;
    table_t *t = &s->t[d->flags & MT_HEAP_FX_OS ? MT_SITES_MAPS : MT_SITES_HEAP];
    entry_t *e;
    int rc;
    if (d->flags & MT_HEAP_FX_FREE) {
        if ((rc = site(t, d->process, d->free_stack, &e))) return rc;
        touch(t, e);
        /* a munmap of the start of a region ends bytes, not the region */
        if (!(d->flags & MT_HEAP_FX_PARTIAL)) e->s.live_blocks--;
        e->s.live_bytes -= d->free_bytes;
        if (d->flags & MT_HEAP_FX_TEMPORARY) {
            e->s.temp_calls++;
            e->s.temp_bytes += d->free_bytes;
        }
    }
    if ((d->flags & MT_HEAP_FX_REPLACED) &&
        (rc = release(t, d->process, d->replaced_stack, d->replaced_bytes)))
        return rc;
    if (d->flags & MT_HEAP_FX_ALLOC) {
        if ((rc = site(t, d->process, ev->stack, &e))) return rc;
        touch(t, e);
        e->s.calls++;
        e->s.bytes += d->alloc_bytes;
        e->s.live_blocks++;
        e->s.live_bytes += d->alloc_bytes;
    }
    if (d->flags & (MT_HEAP_FX_PEAK | MT_HEAP_FX_MAP_PEAK)) t->epoch++;
    return 0;
}

int mt_sites_list(const mt_sites_t *s, int layer, mt_site_t **out, size_t *n)
{
    assert(layer == MT_SITES_HEAP || layer == MT_SITES_MAPS);
    const table_t *t = &s->t[layer];
    *out = NULL;
    *n = 0;
    if (!t->n) return 0;
    mt_site_t *v = malloc(t->n * sizeof *v);
    if (!v) return MT_ENOMEM;
    for (size_t k = 0; k < t->n; k++) {
        const entry_t *e = &t->e[k];
        v[k] = e->s;
        int at_snap = e->snap_epoch == t->epoch;
        v[k].peak_blocks = t->epoch == 0 ? 0 : at_snap ? e->snap_blocks : e->s.live_blocks;
        v[k].peak_bytes = t->epoch == 0 ? 0 : at_snap ? e->snap_bytes : e->s.live_bytes;
    }
    *out = v;
    *n = t->n;
    return 0;
}

int mt_sites_replay(mt_db_t *db, const char *progress, int layer, mt_sites_t **out, mt_heap_stats_t *stats)
{
    mt_heap_t *h = NULL;
    mt_sites_t *s = NULL;
    *out = NULL;
    int rc = mt_heap_create(&h);
    if (!rc) rc = mt_sites_create(&s);
    if (!rc) {
        mt_heap_replay_opts_t opts = {.visit = mt_sites_visit, .arg = s, .progress = progress, .layer = layer};
        rc = mt_heap_replay(h, db, &opts);
    }
    if (!rc) {
        *stats = *mt_heap_stats(h);
        *out = s;
        s = NULL;
    }
    mt_sites_destroy(s);
    mt_heap_destroy(h);
    return rc;
}

int mt_sites_heap(mt_db_t *db, const char *progress, int layer, mt_site_t **out, size_t *n,
                  mt_heap_stats_t *stats)
{
    mt_sites_t *sites = NULL;
    *out = NULL;
    *n = 0;
    int rc = mt_sites_replay(db, progress, layer, &sites, stats);
    if (!rc) rc = mt_sites_list(sites, MT_SITES_HEAP, out, n);
    mt_sites_destroy(sites);
    return rc;
}
