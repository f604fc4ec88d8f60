/* stackfmt.c - call stacks as text (contract in stackfmt.h).
 *
 * The cache: each stack node read from the database becomes one node_t,
 * allocated on its own so that the frame pointers handed out stay valid
 * until close, and chained into a hash table of power-of-two buckets keyed
 * by node id (load factor at most 1).  A node id absent from `stacks`
 * is cached too (as `missing`) so a damaged trace costs one query per id.
 *
 * A walk follows parent ids from the innermost node outwards, at most
 * WALK_MAX nodes: a deeper stack, or a cycle in a damaged trie, ends there.
 */
#include "stackfmt.h"

#include "mt_error.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define WALK_MAX 1024

typedef struct node {
    int64_t id;
    int64_t parent;        /* 0: outermost frame */
    int missing;           /* id not in the stacks table */
    mt_stackfmt_frame_t frame;
    struct node *next;     /* bucket chain */
} node_t;

struct mt_stackfmt {
    mt_stmt_t *st;         /* reads one node */
    node_t **buckets;
    size_t nbuckets;       /* power of two */
    size_t nnodes;
    node_t *walk[WALK_MAX];
};

static size_t bucket_of(const mt_stackfmt_t *sf, int64_t id)
{
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 32) & (sf->nbuckets - 1);
}

int mt_stackfmt_open(mt_db_t *db, mt_stackfmt_t **out)
{
    *out = NULL;
    mt_stackfmt_t *sf = calloc(1, sizeof *sf);
    if (!sf) return MT_ENOMEM;
    sf->nbuckets = 256;
    sf->buckets = calloc(sf->nbuckets, sizeof *sf->buckets);
    if (!sf->buckets) {
        free(sf);
        return MT_ENOMEM;
    }
    int rc = mt_stmt_prepare(db,
                             "SELECT s.parent_id, f.function, f.file, f.line, m.path, f.ip, f.offset"
                             " FROM stacks s JOIN frames f ON f.id = s.frame_id"
                             " LEFT JOIN modules m ON m.id = f.module_id WHERE s.id = ?1",
                             &sf->st);
    if (rc) {
        mt_stackfmt_close(sf);
        return rc;
    }
    *out = sf;
    return 0;
}

static void node_free(node_t *n)
{
    free((char *)n->frame.function);
    free((char *)n->frame.file);
    free((char *)n->frame.module);
    free(n);
}

void mt_stackfmt_close(mt_stackfmt_t *sf)
{
    if (!sf) return;
    for (size_t b = 0; sf->buckets && b < sf->nbuckets; b++) {
        for (node_t *n = sf->buckets[b], *next; n; n = next) {
            next = n->next;
            node_free(n);
        }
    }
    free(sf->buckets);
    mt_stmt_finalize(sf->st);
    free(sf);
}

/* strdup of a column, NULL for SQL NULL; *oom set when the copy failed. */
static const char *dup_col(mt_stmt_t *st, int col, int *oom)
{
    const char *v = mt_stmt_text(st, col);
    if (!v) return NULL;
    char *c = strdup(v);
    if (!c) *oom = 1;
    return c;
}

static int rehash(mt_stackfmt_t *sf)
{
    size_t nb = sf->nbuckets * 2;
    node_t **fresh = calloc(nb, sizeof *fresh);
    if (!fresh) return MT_ENOMEM;
    node_t **old = sf->buckets;
    size_t oldn = sf->nbuckets;
    sf->buckets = fresh;
    sf->nbuckets = nb;
    for (size_t b = 0; b < oldn; b++) {
        for (node_t *n = old[b], *next; n; n = next) {
            next = n->next;
            size_t i = bucket_of(sf, n->id);
            n->next = fresh[i];
            fresh[i] = n;
        }
    }
    free(old);
    return 0;
}

/* The cached node `id`, read from the database on first use. */
static int node_get(mt_stackfmt_t *sf, int64_t id, node_t **out)
{
    for (node_t *n = sf->buckets[bucket_of(sf, id)]; n; n = n->next) {
        if (n->id == id) {
            *out = n;
            return 0;
        }
    }
    if (sf->nnodes >= sf->nbuckets && rehash(sf)) return MT_ENOMEM;
    node_t *n = calloc(1, sizeof *n);
    if (!n) return MT_ENOMEM;
    n->id = id;
    n->frame.offset = -1;
    int rc = mt_stmt_bind_int(sf->st, 1, id);
    if (!rc) rc = mt_stmt_step(sf->st);
    if (rc == 1) {
        int oom = 0;
        n->parent = mt_stmt_int(sf->st, 0); /* NULL reads as 0: outermost */
        n->frame.function = dup_col(sf->st, 1, &oom);
        n->frame.file = dup_col(sf->st, 2, &oom);
        n->frame.line = mt_stmt_int(sf->st, 3);
        n->frame.module = dup_col(sf->st, 4, &oom);
        n->frame.ip = (uint64_t)mt_stmt_int(sf->st, 5);
        if (mt_stmt_column_type(sf->st, 6) != MT_COL_NULL) n->frame.offset = mt_stmt_int(sf->st, 6);
        rc = oom ? MT_ENOMEM : 0;
    } else if (rc == 0) {
        n->missing = 1;
    }
    mt_stmt_reset(sf->st);
    if (rc) {
        node_free(n);
        return rc;
    }
    size_t b = bucket_of(sf, id);
    n->next = sf->buckets[b];
    sf->buckets[b] = n;
    sf->nnodes++;
    *out = n;
    return 0;
}

static int named(const node_t *n) { return n->frame.function && n->frame.function[0]; }

int mt_stackfmt_frames(mt_stackfmt_t *sf, int64_t stack, const mt_stackfmt_frame_t **out,
                       int max, int *n, int *omitted)
{
    int count = 0, first_named = -1;
    *n = 0;
    if (omitted) *omitted = 0;
    for (int64_t id = stack; id != 0 && count < WALK_MAX;) {
        node_t *node;
        int rc = node_get(sf, id, &node);
        if (rc) return rc;
        if (node->missing) break;
        if (first_named < 0 && named(node)) first_named = count;
        sf->walk[count++] = node;
        id = node->parent;
    }
    int from = first_named < 0 ? 0 : first_named;
    int shown = count - from < max ? count - from : max;
    if (shown < 0) shown = 0;
    for (int i = 0; i < shown; i++) out[i] = &sf->walk[from + i]->frame;
    *n = shown;
    if (omitted) *omitted = count - from - shown;
    return 0;
}

static const char *basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

char *mt_stackfmt_frame_text(const mt_stackfmt_frame_t *f, char *buf, size_t len)
{
    if (f->function && f->function[0]) {
        if (f->file && f->line > 0)
            snprintf(buf, len, "%s (%s:%" PRId64 ")", f->function, f->file, f->line);
        else if (f->file)
            snprintf(buf, len, "%s (%s)", f->function, f->file);
        else if (f->module)
            snprintf(buf, len, "%s (%s)", f->function, basename_of(f->module));
        else
            snprintf(buf, len, "%s", f->function);
    } else if (f->module && f->offset >= 0) {
        snprintf(buf, len, "0x%" PRIx64 " (%s+0x%" PRIx64 ")", f->ip, basename_of(f->module),
                 (uint64_t)f->offset);
    } else if (f->module) {
        snprintf(buf, len, "0x%" PRIx64 " (%s)", f->ip, basename_of(f->module));
    } else {
        snprintf(buf, len, "0x%" PRIx64, f->ip);
    }
    return buf;
}

int mt_stackfmt_print(mt_stackfmt_t *sf, int64_t stack, int max, FILE *out, const char *indent)
{
    const mt_stackfmt_frame_t *fr[WALK_MAX];
    int n, omitted;
    if (max > WALK_MAX) max = WALK_MAX;
    int rc = mt_stackfmt_frames(sf, stack, fr, max, &n, &omitted);
    if (rc) return rc;
    char line[1024];
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%s\n", indent, mt_stackfmt_frame_text(fr[i], line, sizeof line));
    if (!n) fprintf(out, "%s(no stack)\n", indent);
    if (omitted) fprintf(out, "%s... %d more frame%s\n", indent, omitted, omitted == 1 ? "" : "s");
    return 0;
}

int mt_stackfmt_join(mt_stackfmt_t *sf, int64_t stack, int max, const char *sep, char *buf,
                     size_t len)
{
    const mt_stackfmt_frame_t *fr[WALK_MAX];
    int n, omitted;
    if (max > WALK_MAX) max = WALK_MAX;
    int rc = mt_stackfmt_frames(sf, stack, fr, max, &n, &omitted);
    if (rc) return rc;
    size_t used = 0;
    char frame[1024];
    if (len) buf[0] = 0;
    for (int i = 0; i < n + (omitted > 0) && used + 1 < len; i++) {
        if (i < n) mt_stackfmt_frame_text(fr[i], frame, sizeof frame);
        else snprintf(frame, sizeof frame, "... %d more frame%s", omitted, omitted == 1 ? "" : "s");
        int w = snprintf(buf + used, len - used, "%s%s", i ? sep : "", frame);
        if (w < 0) break;
        used += (size_t)w < len - used ? (size_t)w : len - used - 1;
    }
    return 0;
}
