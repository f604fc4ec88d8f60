/* massif.c - the massif writer (format and contract in massif.h).
 *
 * The pass: a visitor runs after the heap model applied each event.  When
 * an event lies beyond the next snapshot's time, the snapshot takes the
 * live bytes the previous event left, and, when detailed, the live bytes of
 * every site (the sites model is fed after this check, so it still shows
 * that state too).  After the pass the remaining snapshots take the final
 * state, and the peak snapshot the sites' counters at the peak.
 *
 * A detailed tree is built per snapshot from its (stack, bytes) entries: a
 * trie of frame texts, innermost first, each node the sum of the bytes of
 * the entries below it, so a parent's bytes are its children's sum.
 */
#include "massif.h"

#include "cli.h"
#include "mt_error.h"
#include "sites.h"
#include "stackfmt.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 1024

typedef struct {
    int64_t stack, bytes;
} entry_t;

enum { SNAP_EMPTY, SNAP_DETAILED, SNAP_PEAK };

typedef struct {
    int64_t t;        /* ns since the start */
    int64_t heap;     /* live heap bytes */
    int kind;         /* SNAP_* */
    entry_t *e;       /* detailed: live bytes by site */
    size_t ne;
} snap_t;

typedef struct {
    snap_t *snaps;    /* the regular ones, by time */
    size_t n, next;   /* the first not yet taken */
    mt_sites_t *sites;
    const mt_heap_stats_t *hs;
    int64_t prev_live; /* live heap bytes after the previous event */
} pass_t;

/* The sites' live (peak 0) or peak (peak 1) bytes, the non-zero ones. */
static int entries(const mt_sites_t *s, int peak, entry_t **out, size_t *n)
{
    mt_site_t *v;
    size_t ns, k = 0;
    *out = NULL;
    *n = 0;
    int rc = mt_sites_list(s, MT_SITES_HEAP, &v, &ns);
    if (rc || !ns) return rc;
    entry_t *e = malloc(ns * sizeof *e);
    if (!e) {
        free(v);
        return MT_ENOMEM;
    }
    for (size_t i = 0; i < ns; i++) {
        int64_t b = peak ? v[i].peak_bytes : v[i].live_bytes;
        if (b > 0) e[k++] = (entry_t){v[i].stack, b};
    }
    free(v);
    *out = e;
    *n = k;
    return 0;
}

/* Takes the snapshots before time ts (all when ts is INT64_MAX). */
static int take_until(pass_t *p, int64_t ts)
{
    for (; p->next < p->n && (ts == INT64_MAX || ts > p->snaps[p->next].t); p->next++) {
        snap_t *s = &p->snaps[p->next];
        s->heap = p->prev_live;
        if (s->kind == SNAP_DETAILED) {
            int rc = entries(p->sites, 0, &s->e, &s->ne);
            if (rc) return rc;
        }
    }
    return 0;
}

static int visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    pass_t *p = arg;
    int rc;
    if (p->next < p->n && ev->ts > p->snaps[p->next].t && (rc = take_until(p, ev->ts))) return rc;
    if ((rc = mt_sites_visit(p->sites, ev, d))) return rc;
    p->prev_live = p->hs->live_bytes;
    return 0;
}

/* ---- the tree of a detailed snapshot ---- */

typedef struct {
    char *label;      /* "function (file:line)", without the address */
    uint64_t ip;      /* the lowest address of the frames merged here */
    int64_t bytes;
    size_t *kids;     /* indexes in tree_t.v */
    size_t nkids, cap;
} node_t;

typedef struct {
    node_t *v;
    size_t n, cap;
} tree_t;

static void tree_free(tree_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].label);
        free(t->v[i].kids);
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* A new node; its index in *ix.  The label is copied. */
static int node_new(tree_t *t, const char *label, uint64_t ip, size_t *ix)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        node_t *v = realloc(t->v, cap * sizeof *v);
        if (!v) return MT_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    node_t *nd = &t->v[t->n];
    memset(nd, 0, sizeof *nd);
    if (!(nd->label = strdup(label))) return MT_ENOMEM;
    nd->ip = ip;
    *ix = t->n++;
    return 0;
}

/* The child of `parent` labelled `label`, created when absent. */
static int child(tree_t *t, size_t parent, const char *label, uint64_t ip, size_t *out)
{
    node_t *p = &t->v[parent];
    for (size_t i = 0; i < p->nkids; i++) {
        node_t *k = &t->v[p->kids[i]];
        if (!strcmp(k->label, label)) {
            if (ip < k->ip) k->ip = ip;
            *out = p->kids[i];
            return 0;
        }
    }
    if (p->nkids == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        size_t *kids = realloc(p->kids, cap * sizeof *kids);
        if (!kids) return MT_ENOMEM;
        p->kids = kids;
        p->cap = cap;
    }
    size_t ix;
    int rc = node_new(t, label, ip, &ix); /* may move t->v: p is stale after it */
    if (rc) return rc;
    p = &t->v[parent];
    p->kids[p->nkids++] = ix;
    *out = ix;
    return 0;
}

/* massif's text of a frame, after "0xADDR: ". */
static void label_of(const mt_stackfmt_frame_t *f, char *buf, size_t len)
{
    if (f->function && f->function[0]) {
        if (f->file && f->line > 0) snprintf(buf, len, "%s (%s:%" PRId64 ")", f->function, f->file, f->line);
        else if (f->module) snprintf(buf, len, "%s (in %s)", f->function, f->module);
        else snprintf(buf, len, "%s", f->function);
    } else if (f->module) {
        snprintf(buf, len, "??? (in %s)", f->module);
    } else {
        snprintf(buf, len, "???");
    }
    /* one line each: massif's reader splits on line ends, and drops a '#' and all after it */
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '#') *c = ' ';
}

static int tree_build(tree_t *t, mt_stackfmt_t *sf, const entry_t *e, size_t ne)
{
    const mt_stackfmt_frame_t *fr[MAX_FRAMES];
    char label[1024];
    size_t root;
    int rc = node_new(t, "", 0, &root);
    for (size_t i = 0; i < ne && !rc; i++) {
        int n;
        if ((rc = mt_stackfmt_frames(sf, e[i].stack, fr, MAX_FRAMES, &n, NULL))) break;
        size_t at = root;
        t->v[root].bytes += e[i].bytes;
        if (!n) {
            if (!(rc = child(t, at, "[no stack]", 0, &at))) t->v[at].bytes += e[i].bytes;
            continue;
        }
        for (int k = 0; k < n && !rc; k++) {
            label_of(fr[k], label, sizeof label);
            if (!(rc = child(t, at, label, fr[k]->ip, &at))) t->v[at].bytes += e[i].bytes;
        }
    }
    return rc;
}

static const tree_t *sort_tree; /* qsort has no context argument */

static int by_bytes(const void *a, const void *b)
{
    const node_t *x = &sort_tree->v[*(const size_t *)a], *y = &sort_tree->v[*(const size_t *)b];
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    int c = strcmp(x->label, y->label);
    return c ? c : (x->ip > y->ip) - (x->ip < y->ip);
}

/* Significant as massif (and ms_print) count it: at least 1% of the total. */
static int significant(int64_t bytes, int64_t total) { return total > 0 && bytes * 100 >= total; }

static void tree_print(tree_t *t, size_t ix, int depth, int64_t total, FILE *out)
{
    node_t *nd = &t->v[ix];
    size_t sig = 0, insig = 0;
    int64_t insig_bytes = 0;
    sort_tree = t;
    if (nd->nkids) qsort(nd->kids, nd->nkids, sizeof *nd->kids, by_bytes);
    for (size_t i = 0; i < nd->nkids; i++) {
        const node_t *k = &t->v[nd->kids[i]];
        if (significant(k->bytes, total)) sig++;
        else {
            insig++;
            insig_bytes += k->bytes;
        }
    }
    fprintf(out, "%*sn%zu: %" PRId64, depth, "", sig + (insig > 0), nd->bytes);
    if (depth == 0) fprintf(out, " (heap allocation functions) malloc/new/new[], --alloc-fns, etc.\n");
    else fprintf(out, " 0x%" PRIX64 ": %s\n", nd->ip, nd->label);
    for (size_t i = 0; i < nd->nkids; i++)
        if (significant(t->v[nd->kids[i]].bytes, total)) tree_print(t, nd->kids[i], depth + 1, total, out);
    if (insig)
        fprintf(out, "%*sn0: %" PRId64 " in %zu place%s, %sbelow massif's threshold (1.00%%)\n", depth + 1, "",
                insig_bytes, insig, insig == 1 ? "" : "s", insig == 1 ? "" : "all ");
}

/* ---- writing ---- */

/* "12.345678" for ns, as ms to the ns, trailing zeros dropped. */
static void write_ms(FILE *out, int64_t ns)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%" PRId64 ".%06" PRId64, ns / 1000000, ns % 1000000);
    size_t n = strlen(buf);
    while (buf[n - 1] == '0') buf[--n] = 0;
    if (buf[n - 1] == '.') buf[--n] = 0;
    fputs(buf, out);
}

static int write_snapshot(FILE *out, int num, const snap_t *s, mt_stackfmt_t *sf)
{
    static const char *const kinds[] = {"empty", "detailed", "peak"};
    fprintf(out, "#-----------\nsnapshot=%d\n#-----------\ntime=", num);
    write_ms(out, s->t);
    fprintf(out, "\nmem_heap_B=%" PRId64 "\nmem_heap_extra_B=0\nmem_stacks_B=0\nheap_tree=%s\n", s->heap,
            kinds[s->kind]);
    if (s->kind == SNAP_EMPTY) return 0;
    tree_t t = {0};
    int rc = tree_build(&t, sf, s->e, s->ne);
    if (!rc) tree_print(&t, 0, 0, s->heap, out);
    tree_free(&t);
    return rc;
}

int mt_massif_write(mt_db_t *db, FILE *out, const char *progress, int layer, mt_heap_stats_t *stats)
{
    pass_t p = {0};
    mt_heap_t *h = NULL;
    mt_stackfmt_t *sf = NULL;
    snap_t peak = {.kind = SNAP_PEAK};
    char *cmd = NULL;
    int64_t duration;
    int rc = mt_cli_duration(db, &duration);
    if (!rc) rc = mt_db_meta_get_text(db, "command", &cmd);
    if (rc) goto out;
    if (duration < 0) duration = 0;
    if (!(p.snaps = calloc(MT_MASSIF_SNAPSHOTS, sizeof *p.snaps))) {
        rc = MT_ENOMEM;
        goto out;
    }
    p.n = MT_MASSIF_SNAPSHOTS;
    for (size_t i = 0; i < p.n; i++) {
        int64_t d = MT_MASSIF_SNAPSHOTS - 1;
        p.snaps[i].t = duration / d * (int64_t)i + duration % d * (int64_t)i / d;
        p.snaps[i].kind = i % MT_MASSIF_DETAIL == MT_MASSIF_DETAIL - 1 ? SNAP_DETAILED : SNAP_EMPTY;
    }
    if ((rc = mt_heap_create(&h)) || (rc = mt_sites_create(&p.sites))) goto out;
    p.hs = mt_heap_stats(h);
    mt_heap_replay_opts_t ro = {.visit = visit, .arg = &p, .progress = progress, .layer = layer};
    if ((rc = mt_heap_replay(h, db, &ro)) || (rc = take_until(&p, INT64_MAX))) goto out;
    *stats = *p.hs;
    if (p.hs->peak_seq >= 0) {
        peak.t = p.hs->peak_ts < duration ? p.hs->peak_ts : duration; /* ms_print wants no time past the end */
        peak.heap = p.hs->peak_bytes;
        if ((rc = entries(p.sites, 1, &peak.e, &peak.ne))) goto out;
    }
    if ((rc = mt_stackfmt_open(db, &sf))) goto out;

    fprintf(out, "desc: memtrace export --massif: live heap bytes (libc layer, requested sizes, every process)\n");
    for (char *c = cmd; c && *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '#') *c = ' ';
    fprintf(out, "cmd: %s\ntime_unit: ms\n", cmd && *cmd ? cmd : "(unknown)");
    int num = 0, peak_done = p.hs->peak_seq < 0;
    for (size_t i = 0; i < p.n && !rc; i++) {
        if (!peak_done && peak.t <= p.snaps[i].t) {
            rc = write_snapshot(out, num++, &peak, sf);
            peak_done = 1;
        }
        if (!rc) rc = write_snapshot(out, num++, &p.snaps[i], sf);
    }
out:
    for (size_t i = 0; i < p.n; i++) free(p.snaps[i].e);
    free(p.snaps);
    free(peak.e);
    free(cmd);
    mt_stackfmt_close(sf);
    mt_sites_destroy(p.sites);
    mt_heap_destroy(h);
    return rc;
}
