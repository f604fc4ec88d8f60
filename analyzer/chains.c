/* chains.c - the realloc chain model (definitions in chains.h).
 *
 * Data structures:
 *   live[]     records of live chains, recycled through a free list; found
 *              by `at`: keymap (process, address of the chain's current
 *              block) -> record + 1
 *   sites[]    one per realloc site, found by `site_ix`: keymap (process,
 *              stack) -> site + 1
 *   hist[]     (site, factor * 10000 rounded) -> count, found by `hist_ix`;
 *              a site's median factor is read from its counts at the end
 *   kept[]     the longest chains so far, a binary heap with the least long
 *              at the root, so a longer chain replaces it in O(log keep)
 *
 * Event by event (after the heap model has applied it):
 *   step (see chains.h)   take the chain of old_addr (or begin one from the
 *                         block the heap model just ended), close its run if
 *                         the site changed, count the step, file the chain
 *                         under its new address;
 *   other end of a block  (free, realloc(p, 0), an allocation over a live
 *                         address) ends the chain of that block, if any.
 * Key invariant: every chain in `at` is at a block live in the heap model,
 * of the same size.
 */
#include "chains.h"

#include "keymap.h"
#include "mt_error.h"
#include "mt_event.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FACTOR_SCALE 10000.0

typedef struct {
    mt_chain_t c;        /* what is reported; factors[] holds only the first ones */
    uint64_t addr;       /* current block */
    int64_t size;        /* its size */
    float *all;          /* every factor so far (for the median) */
    uint32_t nall, capall;
    uint32_t run_site;   /* site of the open run + 1; 0: none */
    int64_t run_first, run_start_ts;
    int64_t next_free;   /* free list link (-1: end) when not in use */
} live_t;

typedef struct {
    int64_t site;   /* index in sites[] */
    int64_t q;      /* factor * FACTOR_SCALE, rounded */
    int64_t count;
} bin_t;

struct mt_chains {
    live_t *live;
    size_t nlive, caplive;
    int64_t free_head;            /* first free record, -1: none */
    mt_keymap_t at;
    mt_chain_site_t *sites;
    size_t nsites, capsites;
    mt_keymap_t site_ix;
    bin_t *hist;
    size_t nhist, caphist;
    mt_keymap_t hist_ix;
    mt_chain_t *kept;
    size_t nkept, capkept, keep;
    mt_chain_totals_t tot;
};

int mt_chains_create(size_t keep, mt_chains_t **out)
{
    mt_chains_t *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return MT_ENOMEM;
    c->free_head = -1;
    c->keep = keep;
    *out = c;
    return 0;
}

void mt_chains_destroy(mt_chains_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nlive; i++) free(c->live[i].all);
    free(c->live);
    mt_keymap_free(&c->at);
    free(c->sites);
    mt_keymap_free(&c->site_ix);
    free(c->hist);
    mt_keymap_free(&c->hist_ix);
    free(c->kept);
    free(c);
}

/* Grows *arr (element size `size`, *cap elements) to hold one more than n. */
static int reserve(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, nc * size);
    if (!p) return MT_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

/* Index of the site (process, stack), created when absent. */
static int site_get(mt_chains_t *c, int64_t process, int64_t stack, size_t *ix)
{
    uint32_t k = mt_keymap_get(&c->site_ix, process, stack);
    if (k) {
        *ix = k - 1;
        return 0;
    }
    if (c->nsites >= UINT32_MAX - 1) return MT_ENOMEM;
    int rc = reserve((void **)&c->sites, &c->capsites, c->nsites, sizeof *c->sites);
    if (!rc) rc = mt_keymap_put(&c->site_ix, process, stack, (uint32_t)(c->nsites + 1));
    if (rc) return rc;
    c->sites[c->nsites] = (mt_chain_site_t){.process = process, .stack = stack, .min_first = -1};
    *ix = c->nsites++;
    return 0;
}

static int hist_add(mt_chains_t *c, size_t site, double factor)
{
    double scaled = factor * FACTOR_SCALE;
    int64_t q = scaled < 9.0e18 ? llround(scaled) : INT64_MAX;
    uint32_t k = mt_keymap_get(&c->hist_ix, (int64_t)site, q);
    if (k) {
        c->hist[k - 1].count++;
        return 0;
    }
    if (c->nhist >= UINT32_MAX - 1) return MT_ENOMEM;
    int rc = reserve((void **)&c->hist, &c->caphist, c->nhist, sizeof *c->hist);
    if (!rc) rc = mt_keymap_put(&c->hist_ix, (int64_t)site, q, (uint32_t)(c->nhist + 1));
    if (rc) return rc;
    c->hist[c->nhist++] = (bin_t){(int64_t)site, q, 1};
    return 0;
}

/* A fresh live record (zeroed), from the free list or the end. */
static int live_new(mt_chains_t *c, size_t *ix)
{
    size_t i;
    if (c->free_head >= 0) {
        i = (size_t)c->free_head;
        c->free_head = c->live[i].next_free;
    } else {
        if (c->nlive >= UINT32_MAX - 1) return MT_ENOMEM;
        int rc = reserve((void **)&c->live, &c->caplive, c->nlive, sizeof *c->live);
        if (rc) return rc;
        i = c->nlive++;
    }
    memset(&c->live[i], 0, sizeof c->live[i]);
    *ix = i;
    return 0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Ranks chains: 1 when a is longer than b (more steps, more copied, earlier). */
static int longer(const mt_chain_t *a, const mt_chain_t *b)
{
    if (a->steps != b->steps) return a->steps > b->steps;
    if (a->copied != b->copied) return a->copied > b->copied;
    return a->first_seq < b->first_seq;
}

/* Offers a finished chain to the kept ones (min-heap on `longer`, grown as
 * chains come, up to `keep`).  Returns 0 or MT_ENOMEM. */
static int keep_chain(mt_chains_t *c, const mt_chain_t *ch)
{
    size_t i;
    if (!c->keep) return 0;
    if (c->nkept < c->keep) {
        int rc = reserve((void **)&c->kept, &c->capkept, c->nkept, sizeof *c->kept);
        if (rc) return rc;
        mt_chain_t *h = c->kept;
        for (i = c->nkept++; i > 0 && longer(&h[(i - 1) / 2], ch); i = (i - 1) / 2) h[i] = h[(i - 1) / 2];
        h[i] = *ch;
        return 0;
    }
    mt_chain_t *h = c->kept;
    if (!longer(ch, &h[0])) return 0;
    /* replace the root and sift down */
    for (i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const mt_chain_t *mv = ch;
        if (l < c->nkept && longer(mv, &h[l])) m = l, mv = &h[l];
        if (r < c->nkept && longer(mv, &h[r])) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = *ch;
    return 0;
}

static void close_run(mt_chains_t *c, live_t *l)
{
    if (!l->run_site) return;
    mt_chain_site_t *s = &c->sites[l->run_site - 1];
    if (s->min_first < 0 || l->run_first < s->min_first) s->min_first = l->run_first;
    if (l->size > s->max_last) s->max_last = l->size;
    s->duration_ns += l->c.last_ts - l->run_start_ts;
    l->run_site = 0;
}

/* Ends the live chain at record ix (already removed from `at`).  Returns 0
 * or MT_ENOMEM (the chain is ended all the same, but not kept). */
static int chain_end(mt_chains_t *c, size_t ix)
{
    live_t *l = &c->live[ix];
    close_run(c, l);
    l->c.last_size = l->size;
    if (l->nall) {
        qsort(l->all, l->nall, sizeof *l->all, cmp_float);
        l->c.median_factor = ((double)l->all[(l->nall - 1) / 2] + (double)l->all[l->nall / 2]) / 2.0;
    }
    c->tot.chains++;
    int rc = keep_chain(c, &l->c);
    free(l->all);
    l->all = NULL;
    l->next_free = c->free_head;
    c->free_head = (int64_t)ix;
    return rc;
}

/* Ends the chain of the block at (process, addr), if there is one.
 * Returns 0 or MT_ENOMEM. */
static int end_at(mt_chains_t *c, int64_t process, uint64_t addr)
{
    uint32_t k = addr ? mt_keymap_del(&c->at, process, (int64_t)addr) : 0;
    return k ? chain_end(c, k - 1) : 0;
}

static int step(mt_chains_t *c, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    int64_t old = d->free_bytes, now = d->alloc_bytes;
    size_t ix, site;
    int rc;
    if ((rc = site_get(c, d->process, ev->stack, &site))) return rc;
    uint32_t k = mt_keymap_get(&c->at, d->process, (int64_t)ev->old_addr);
    if (k) {
        ix = k - 1;
    } else {
        if ((rc = live_new(c, &ix))) return rc;
        live_t *l = &c->live[ix];
        l->c.process = d->process;
        l->c.first_seq = d->free_seq;
        l->c.first_ts = l->c.last_ts = d->free_ts;
        l->c.first_size = l->size = old;
        l->c.site = ev->stack;
        l->addr = ev->old_addr;
        l->next_free = -1;
        if ((rc = mt_keymap_put(&c->at, d->process, (int64_t)ev->old_addr, (uint32_t)(ix + 1)))) return rc;
    }
    live_t *l = &c->live[ix];
    double factor = old > 0 ? (double)now / (double)old : -1.0;
    if (factor >= 0 && l->nall == l->capall) {
        uint32_t cap = l->capall ? l->capall * 2 : 8;
        float *p = realloc(l->all, cap * sizeof *p);
        if (!p) return MT_ENOMEM;
        l->all = p;
        l->capall = cap;
    }
    if (factor >= 0 && (rc = hist_add(c, site, factor))) return rc;
    if ((d->flags & MT_HEAP_FX_REPLACED) && (rc = end_at(c, d->process, ev->addr))) return rc;
    mt_keymap_del(&c->at, d->process, (int64_t)ev->old_addr);
    if ((rc = mt_keymap_put(&c->at, d->process, (int64_t)ev->addr, (uint32_t)(ix + 1)))) return rc;

    if (l->run_site && l->run_site != site + 1) close_run(c, l);
    mt_chain_site_t *s = &c->sites[site];
    if (!l->run_site) {
        l->run_site = (uint32_t)(site + 1);
        l->run_first = old;
        l->run_start_ts = l->c.last_ts;
        s->chains++;
    }
    int moved = ev->addr != ev->old_addr;
    int64_t copied = moved ? (old < now ? old : now) : 0;
    s->steps++;
    s->moves += moved;
    s->in_place += !moved;
    s->copied += copied;
    l->c.steps++;
    l->c.moves += moved;
    l->c.in_place += !moved;
    l->c.copied += copied;
    c->tot.steps++;
    c->tot.moves += moved;
    c->tot.in_place += !moved;
    c->tot.copied += copied;
    if (factor >= 0) {
        s->factors++;
        l->all[l->nall++] = (float)factor;
        if (l->c.nfactors < MT_CHAIN_SHOWN) l->c.factors[l->c.nfactors++] = (float)factor;
        else l->c.more_factors++;
    }
    l->c.last_ts = ev->ts;
    l->addr = ev->addr;
    l->size = now;
    return 0;
}

int mt_chains_visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    mt_chains_t *c = arg;
    if (d->flags & MT_HEAP_FX_OS) return 0;
    unsigned kf = mt_kind_flags(ev->kind);
    int resize = (kf & MT_KF_ALLOC) && (kf & MT_KF_FREE); /* realloc-like, any layer */
    if (resize && ev->old_addr && (d->flags & MT_HEAP_FX_FREE) && (d->flags & MT_HEAP_FX_ALLOC))
        return step(c, ev, d);
    int rc = 0;
    if (d->flags & MT_HEAP_FX_FREE) rc = end_at(c, d->process, resize ? ev->old_addr : ev->addr);
    if (!rc && (d->flags & MT_HEAP_FX_REPLACED)) rc = end_at(c, d->process, ev->addr);
    return rc;
}

static int by_site_factor(const void *a, const void *b)
{
    const bin_t *x = a, *y = b;
    if (x->site != y->site) return x->site < y->site ? -1 : 1;
    return (x->q > y->q) - (x->q < y->q);
}

int mt_chains_finish(mt_chains_t *c)
{
    int rc = 0;
    for (size_t i = 0; c->at.bits && i < (size_t)1 << c->at.bits && !rc; i++) {
        uint32_t k = c->at.slots[i].val;
        if (k) rc = chain_end(c, k - 1);
    }
    if (rc) return rc;
    mt_keymap_free(&c->at);
    mt_keymap_free(&c->hist_ix);
    /* each site's median: the middle of its bins, sorted by (site, factor) */
    if (c->nhist) qsort(c->hist, c->nhist, sizeof *c->hist, by_site_factor);
    for (size_t i = 0; i < c->nhist;) {
        mt_chain_site_t *s = &c->sites[c->hist[i].site];
        int64_t lo = (s->factors - 1) / 2, hi = s->factors / 2, at = 0;
        double vlo = 0, vhi = 0;
        for (; i < c->nhist && &c->sites[c->hist[i].site] == s; i++) {
            if (lo >= at && lo < at + c->hist[i].count) vlo = (double)c->hist[i].q;
            if (hi >= at && hi < at + c->hist[i].count) vhi = (double)c->hist[i].q;
            at += c->hist[i].count;
        }
        s->median_factor = (vlo + vhi) / 2.0 / FACTOR_SCALE;
    }
    return 0;
}

int mt_chains_sites(const mt_chains_t *c, mt_chain_site_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!c->nsites) return 0;
    if (!(*out = malloc(c->nsites * sizeof **out))) return MT_ENOMEM;
    memcpy(*out, c->sites, c->nsites * sizeof **out);
    *n = c->nsites;
    return 0;
}

static int by_length(const void *a, const void *b)
{
    const mt_chain_t *x = a, *y = b;
    return longer(x, y) ? -1 : longer(y, x) ? 1 : 0;
}

int mt_chains_longest(const mt_chains_t *c, mt_chain_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!c->nkept) return 0;
    if (!(*out = malloc(c->nkept * sizeof **out))) return MT_ENOMEM;
    memcpy(*out, c->kept, c->nkept * sizeof **out);
    qsort(*out, c->nkept, sizeof **out, by_length);
    *n = c->nkept;
    return 0;
}

mt_chain_totals_t mt_chains_totals(const mt_chains_t *c) { return c->tot; }

int mt_chains_replay(mt_db_t *db, const char *progress, int layer, size_t keep, mt_chains_t **out,
                     mt_heap_stats_t *stats)
{
    mt_heap_t *h = NULL;
    mt_chains_t *c = NULL;
    *out = NULL;
    int rc = mt_heap_create(&h);
    if (!rc) rc = mt_chains_create(keep, &c);
    if (!rc) {
        mt_heap_replay_opts_t opts = {.visit = mt_chains_visit, .arg = c, .progress = progress, .layer = layer};
        rc = mt_heap_replay(h, db, &opts);
    }
    if (!rc) rc = mt_chains_finish(c);
    if (!rc) {
        *stats = *mt_heap_stats(h);
        *out = c;
        c = NULL;
    }
    mt_chains_destroy(c);
    mt_heap_destroy(h);
    return rc;
}
