/* collector_py.c - see collector_py.h. */
#include "collector_py.h"

#include "mt_error.h"
#include "mt_event.h"

#include <stdlib.h>
#include <string.h>

int mt_pyc_gc(mt_db_t *db, mt_pygc_t *gc, int64_t thread, const mt_rec_t *rec, int64_t ts)
{
    int rc = mt_db_skip_seq(db, (int64_t)rec->seq);
    if (rc) return rc;
    if (gc->n == gc->cap) {
        size_t cap = gc->cap ? 2 * gc->cap : 256;
        mt_pyphase_t *v = realloc(gc->v, cap * sizeof *v);
        if (!v) return MT_ENOMEM;
        gc->v = v;
        gc->cap = cap;
    }
    gc->v[gc->n++] = (mt_pyphase_t){(int64_t)rec->seq, ts, thread, (int64_t)rec->size, (int64_t)rec->addr,
                                    (int64_t)rec->old_addr, rec->kind != 0};
    return 0;
}

static int by_seq(const void *a, const void *b)
{
    const mt_pyphase_t *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

int mt_pyc_gc_write(mt_db_t *db, mt_pygc_t *gc, int64_t process_id)
{
    if (!gc->n) return 0;
    qsort(gc->v, gc->n, sizeof *gc->v, by_seq);
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(db,
                             "INSERT INTO gc_events(process_id, thread, generation, start_seq, stop_seq, start_ts,"
                             " stop_ts, collected, uncollectable) VALUES(?,?,?,?,?,?,?,?,?)",
                             &st);
    const mt_pyphase_t *start = NULL;
    for (size_t i = 0; i < gc->n && !rc; i++) {
        const mt_pyphase_t *p = &gc->v[i];
        if (!p->stop) {
            start = p;
            continue;
        }
        if (!start) continue; /* a stop whose start came before the callback went in */
        mt_stmt_bind_int(st, 1, process_id);
        mt_stmt_bind_int(st, 2, start->thread);
        mt_stmt_bind_int(st, 3, start->generation);
        mt_stmt_bind_int(st, 4, start->seq);
        mt_stmt_bind_int(st, 5, p->seq);
        mt_stmt_bind_int(st, 6, start->ts);
        mt_stmt_bind_int(st, 7, p->ts);
        mt_stmt_bind_int(st, 8, p->collected);
        mt_stmt_bind_int(st, 9, p->uncollectable);
        rc = mt_stmt_run(st);
        start = NULL;
    }
    mt_stmt_finalize(st);
    mt_pyc_gc_free(gc);
    return rc;
}

void mt_pyc_gc_free(mt_pygc_t *gc)
{
    free(gc->v);
    memset(gc, 0, sizeof *gc);
}

static void bind_or_null(mt_stmt_t *st, int idx, int64_t v, int valid)
{
    if (valid) mt_stmt_bind_int(st, idx, v);
    else mt_stmt_bind_null(st, idx);
}

int mt_pyc_write_info(mt_db_t *db, int64_t process_id, mt_region_t *r)
{
    mt_pyinfo_t py = r->py; /* a copy: the target may still be writing */
    if (!py.present) return 0;
    py.version[sizeof py.version - 1] = 0;
    py.allocator[sizeof py.allocator - 1] = 0;
    py.note[sizeof py.note - 1] = 0;
    mt_stmt_t *st = NULL;
    int rc = mt_stmt_prepare(db,
                             "INSERT INTO python(process_id, version, hexversion, allocator, arena_size, pool_size,"
                             " size_classes, small_max, installs, frames, gc_threshold0, gc_threshold1,"
                             " gc_threshold2, gc_callback_seq, gc_before0, gc_before1, gc_before2, gc_after0,"
                             " gc_after1, gc_after2, stats_seq, allocated_blocks, arenas_allocated,"
                             " arenas_reclaimed, arenas_highwater, arenas_current, note, startup_rss)"
                             " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                             &st);
    if (rc) return rc;
    int stats = __atomic_load_n(&r->py.stats_valid, __ATOMIC_ACQUIRE) != 0;
    int known = py.arena_size != 0;
    int gc = py.gc_callback_seq != 0;
    mt_stmt_bind_int(st, 1, process_id);
    mt_stmt_bind_text(st, 2, py.version[0] ? py.version : NULL);
    bind_or_null(st, 3, (int64_t)py.hexversion, py.hexversion != 0);
    mt_stmt_bind_text(st, 4, py.allocator[0] ? py.allocator : NULL);
    bind_or_null(st, 5, py.arena_size, known);
    bind_or_null(st, 6, py.pool_size, known);
    bind_or_null(st, 7, py.size_classes, known);
    bind_or_null(st, 8, py.small_max, known);
    mt_stmt_bind_int(st, 9, py.installs);
    mt_stmt_bind_int(st, 10, py.frames);
    for (int g = 0; g < 3; g++) {
        bind_or_null(st, 11 + g, py.gc_threshold[g], gc && py.gc_threshold[g] >= 0);
        bind_or_null(st, 15 + g, py.gc_before[g], gc && py.gc_before[g] >= 0);
        bind_or_null(st, 18 + g, py.gc_after[g], py.gc_after[g] >= 0);
    }
    bind_or_null(st, 14, (int64_t)py.gc_callback_seq, gc);
    bind_or_null(st, 21, (int64_t)py.stats_seq, stats);
    bind_or_null(st, 22, py.allocated_blocks, stats && py.allocated_blocks >= 0);
    bind_or_null(st, 23, py.arenas_allocated, stats && py.arenas_allocated >= 0);
    bind_or_null(st, 24, py.arenas_reclaimed, stats && py.arenas_reclaimed >= 0);
    bind_or_null(st, 25, py.arenas_highwater, stats && py.arenas_highwater >= 0);
    bind_or_null(st, 26, py.arenas_current, stats && py.arenas_current >= 0);
    mt_stmt_bind_text(st, 27, py.note[0] ? py.note : NULL);
    bind_or_null(st, 28, py.startup_rss, py.startup_rss > 0);
    rc = mt_stmt_run(st);
    mt_stmt_finalize(st);
    if (rc || !stats) return rc;
    rc = mt_stmt_prepare(db, "INSERT INTO pymalloc_stats(process_id, size_class, pools, blocks_used) VALUES(?,?,?,?)",
                         &st);
    for (int k = 0; k < MT_PY_CLASSES && !rc; k++) {
        if (!py.class_pools[k] && !py.class_used[k]) continue;
        mt_stmt_bind_int(st, 1, process_id);
        mt_stmt_bind_int(st, 2, k);
        mt_stmt_bind_int(st, 3, py.class_pools[k]);
        mt_stmt_bind_int(st, 4, py.class_used[k]);
        rc = mt_stmt_run(st);
    }
    mt_stmt_finalize(st);
    return rc;
}

/* ---- names ---- */

struct mt_pynames {
    const mt_pyname_t **slot; /* open addressing by ip */
    size_t cap;
};

static size_t name_hash(uint64_t ip, size_t cap) { return (size_t)(ip * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1); }

int mt_pyc_names_load(mt_region_t *r, mt_pynames_t **out)
{
    *out = NULL;
    uint64_t used = __atomic_load_n(&r->py.names_used, __ATOMIC_ACQUIRE);
    if (used > MT_NAMES_SIZE) used = MT_NAMES_SIZE; /* never trust the target */
    if (!used) return 0;
    size_t n = 0;
    const char *base = mt_region_names(r);
    for (uint64_t o = 0; o + sizeof(mt_pyname_t) <= used;) {
        const mt_pyname_t *e = (const mt_pyname_t *)(base + o);
        uint64_t size = MT_PYNAME_SIZE(e);
        if (o + size > used) break;
        n++;
        o += size;
    }
    mt_pynames_t *m = calloc(1, sizeof *m);
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (!m || !(m->slot = calloc(cap, sizeof *m->slot))) {
        free(m);
        return MT_ENOMEM;
    }
    m->cap = cap;
    for (uint64_t o = 0; o + sizeof(mt_pyname_t) <= used;) {
        const mt_pyname_t *e = (const mt_pyname_t *)(base + o);
        uint64_t size = MT_PYNAME_SIZE(e);
        if (o + size > used) break;
        size_t h = name_hash(e->ip, cap);
        while (m->slot[h] && m->slot[h]->ip != e->ip) h = (h + 1) & (cap - 1);
        m->slot[h] = e;
        o += size;
    }
    *out = m;
    return 0;
}

const mt_pyname_t *mt_pyc_name(const mt_pynames_t *m, uint64_t ip, const char **file, const char **func)
{
    if (!m) return NULL;
    size_t h = name_hash(ip, m->cap);
    while (m->slot[h]) {
        if (m->slot[h]->ip == ip) {
            const mt_pyname_t *e = m->slot[h];
            *file = (const char *)(e + 1);
            *func = *file + e->file_len;
            return e;
        }
        h = (h + 1) & (m->cap - 1);
    }
    return NULL;
}

void mt_pyc_names_free(mt_pynames_t *m)
{
    if (!m) return;
    free(m->slot);
    free(m);
}

int mt_pyc_triggers(mt_db_t *db)
{
    mt_stmt_t *sel = NULL, *trig = NULL, *upd = NULL;
    int rc = mt_stmt_prepare(db, "SELECT id, thread, start_seq FROM gc_events WHERE trigger_seq IS NULL", &sel);
    if (!rc)
        rc = mt_stmt_prepare(db,
                             "SELECT seq FROM event_data WHERE seq < ?1 AND thread = ?2 AND kind IN (?3, ?4, ?5)"
                             " ORDER BY seq DESC LIMIT 1",
                             &trig);
    if (!rc) rc = mt_stmt_prepare(db, "UPDATE gc_events SET trigger_seq = ? WHERE id = ?", &upd);
    /* rows first, updates after: no statement reads a table being written */
    int64_t *rows = NULL;
    size_t n = 0, cap = 0;
    while (!rc && (rc = mt_stmt_step(sel)) == 1) {
        if (n + 3 > cap) {
            cap = cap ? 2 * cap : 192;
            int64_t *p = realloc(rows, cap * sizeof *rows);
            if (!p) {
                rc = MT_ENOMEM;
                break;
            }
            rows = p;
        }
        rows[n++] = mt_stmt_int(sel, 0);
        rows[n++] = mt_stmt_int(sel, 1);
        rows[n++] = mt_stmt_int(sel, 2);
        rc = 0;
    }
    for (size_t i = 0; !rc && i < n; i += 3) {
        mt_stmt_bind_int(trig, 1, rows[i + 2]);
        mt_stmt_bind_int(trig, 2, rows[i + 1]);
        mt_stmt_bind_int(trig, 3, MT_EV_obj_malloc);
        mt_stmt_bind_int(trig, 4, MT_EV_obj_calloc);
        mt_stmt_bind_int(trig, 5, MT_EV_obj_realloc);
        int r = mt_stmt_step(trig);
        int64_t seq = r == 1 ? mt_stmt_int(trig, 0) : -1;
        mt_stmt_reset(trig);
        if (r < 0) rc = r;
        if (rc || seq < 0) continue;
        mt_stmt_bind_int(upd, 1, seq);
        mt_stmt_bind_int(upd, 2, rows[i]);
        rc = mt_stmt_run(upd);
    }
    free(rows);
    mt_stmt_finalize(sel);
    mt_stmt_finalize(trig);
    mt_stmt_finalize(upd);
    return rc;
}
