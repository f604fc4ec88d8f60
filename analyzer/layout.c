/* layout.c - `memtrace layout [--at SEQ | --time MS] [--by pools|classes|
 * arenas] [--csv] DB`: the bundled allocator's arenas and pools at one
 * moment of a trace recorded with --allocator=bundled.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass over the allocator events up to the moment (mt_layout_replay,
 * layout_model.h), then three tables of the one model: arenas (pools in use
 * of 64, free pools), size classes (pools used/full/empty, blocks, fill)
 * and pools (one row per carved pool: state, blocks in use, capacity),
 * with the fragmentation figure: bytes of blocks in use / bytes of the
 * pools in use.  Text prints the three; CSV one, chosen with --by (pools by
 * default).  Sorted by process, then arena and pool address or class.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "layout_model.h"
#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"
#include "table.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--at SEQ | --time MS] [--by pools|classes|arenas] [--csv] DB"

enum { BY_POOLS, BY_CLASSES, BY_ARENAS, NBY };

enum { P_PROC, P_PID, P_ARENA, P_POOL, P_INDEX, P_CLASS, P_BLOCK, P_STATE, P_USED, P_CAP, NP };
static const mt_tcol_t pool_cols[NP] = {
    [P_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [P_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [P_ARENA] = {"arena", "arena", MT_TCOL_ADDR, 0, 0},
    [P_POOL] = {"pool address", "pool", MT_TCOL_ADDR, 0, MT_TCOL_ONLY_CSV},
    [P_INDEX] = {"pool", "pool_index", MT_TCOL_INT, 0, 0},
    [P_CLASS] = {"class", "size_class", MT_TCOL_INT, 0, 0},
    [P_BLOCK] = {"block", "block_size", MT_TCOL_BYTES, 0, 0},
    [P_STATE] = {"state", "state", MT_TCOL_TEXT, 0, 0},
    [P_USED] = {"blocks used", "blocks_used", MT_TCOL_INT, 0, 0},
    [P_CAP] = {"capacity", "capacity", MT_TCOL_INT, 0, 0},
};

enum { K_PROC, K_PID, K_CLASS, K_BLOCK, K_CAP, K_USED, K_FULL, K_EMPTY, K_BUSED, K_BFREE, K_BYTES,
       K_POOLB, K_FILL, NK };
static const mt_tcol_t class_cols[NK] = {
    [K_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [K_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [K_CLASS] = {"class", "size_class", MT_TCOL_INT, 0, 0},
    [K_BLOCK] = {"block", "block_size", MT_TCOL_BYTES, 0, 0},
    [K_CAP] = {"capacity", "capacity", MT_TCOL_INT, 0, 0},
    [K_USED] = {"used", "pools_used", MT_TCOL_INT, 0, 0},
    [K_FULL] = {"full", "pools_full", MT_TCOL_INT, 0, 0},
    [K_EMPTY] = {"empty", "pools_empty", MT_TCOL_INT, 0, 0},
    [K_BUSED] = {"blocks used", "blocks_used", MT_TCOL_INT, 0, 0},
    [K_BFREE] = {"blocks free", "blocks_free", MT_TCOL_INT, 0, 0},
    [K_BYTES] = {"bytes in use", "bytes_in_use", MT_TCOL_BYTES, 0, 0},
    [K_POOLB] = {"in pools", "pool_bytes", MT_TCOL_BYTES, 0, 0},
    [K_FILL] = {"fill %", "fill_percent", MT_TCOL_REAL, 1, 0},
};

enum { A_PROC, A_PID, A_ARENA, A_INUSE, A_USED, A_FULL, A_EMPTY, A_UNCARVED, A_FREE, A_BUSED, A_BYTES,
       A_FILL, NA };
static const mt_tcol_t arena_cols[NA] = {
    [A_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [A_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [A_ARENA] = {"arena", "arena", MT_TCOL_ADDR, 0, 0},
    [A_INUSE] = {"pools in use", "pools_in_use", MT_TCOL_INT, 0, 0},
    [A_USED] = {"used", "pools_used", MT_TCOL_INT, 0, 0},
    [A_FULL] = {"full", "pools_full", MT_TCOL_INT, 0, 0},
    [A_EMPTY] = {"empty", "pools_empty", MT_TCOL_INT, 0, 0},
    [A_UNCARVED] = {"uncarved", "pools_uncarved", MT_TCOL_INT, 0, 0},
    [A_FREE] = {"free", "free_pools", MT_TCOL_INT, 0, 0},
    [A_BUSED] = {"blocks used", "blocks_used", MT_TCOL_INT, 0, 0},
    [A_BYTES] = {"bytes in use", "bytes_in_use", MT_TCOL_BYTES, 0, 0},
    [A_FILL] = {"fill %", "fill_percent", MT_TCOL_REAL, 1, 0},
};

void mt_usage_layout(FILE *out)
{
    fprintf(out,
            "usage: memtrace layout " SYNOPSIS "\n"
            "\n"
            "The bundled allocator's arenas and pools at one moment of a trace recorded\n"
            "with --allocator=bundled, rebuilt from its events (the allocator_events\n"
            "view; lib/pym.h describes the allocator):\n"
            "\n"
            "  arenas   1 MiB each, 64 pools of 16 KiB: pools in use (used: a block\n"
            "           available, full: none), free pools (empty: served a class and\n"
            "           will again, uncarved: never used), blocks and bytes in use\n"
            "  classes  per size class (block size 16 * (class + 1) bytes): pools used,\n"
            "           full and empty, blocks used and free in its used pools\n"
            "  pools    one row per pool that has served a class: its arena, number in\n"
            "           the arena (0-63), class, state, blocks used and capacity\n"
            "           ((16384 - 48) / block size)\n"
            "\n"
            "Fill (and the fragmentation line) is bytes of the blocks in use divided by\n"
            "the bytes of the pools in use (used and full): what the rest of those\n"
            "pools holds is free blocks, pool headers and tails too small for a block.\n"
            "Sizes are block sizes, not the sizes requested.  Each process has its own\n"
            "rows; a forked child starts with a copy of its parent's layout.  Without\n"
            "allocator events in the trace, one line says so on stderr (exit status 0).\n"
            "\n"
            "Options:\n"
            "  --at SEQ       the moment after the event numbered SEQ (seq), with what\n"
            "                 the allocator did inside that call (default: the end)\n"
            "  --time MS      the moment MS milliseconds into the trace (a decimal\n"
            "                 number): the events recorded up to then\n"
            "  --by WHAT      the table CSV prints, or the only one text prints: pools\n"
            "                 (the default for CSV), classes or arenas\n"
            "  --csv          RFC 4180 CSV: a header row, then one row per pool:\n"
            "                   process_id,pid,arena,pool,pool_index,size_class,block_size,\n"
            "                   state,blocks_used,capacity\n"
            "                 per class (--by classes):\n"
            "                   process_id,pid,size_class,block_size,capacity,pools_used,\n"
            "                   pools_full,pools_empty,blocks_used,blocks_free,\n"
            "                   bytes_in_use,pool_bytes,fill_percent\n"
            "                 per arena (--by arenas):\n"
            "                   process_id,pid,arena,pools_in_use,pools_used,pools_full,\n"
            "                   pools_empty,pools_uncarved,free_pools,blocks_used,\n"
            "                   bytes_in_use,fill_percent\n"
            "                 (addresses as decimal integers; state is used, full or empty)\n"
            "  -h, --help     this text\n"
            "\n"
            "Exit status: 0 done (allocator events or not), 1 the trace cannot be read,\n"
            "2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace run --allocator=bundled -o prog.db ./prog\n"
            "  memtrace layout --time 250 prog.db\n");
}

static double fill(int64_t bytes, int64_t pools)
{
    return pools > 0 ? 100.0 * (double)bytes / ((double)pools * (double)PYM_POOL_SIZE) : NAN;
}

/* Sets a fill cell, NULL when no pool is in use. */
static void fill_cell(mt_table_t *t, int col, int64_t bytes, int64_t pools)
{
    if (pools > 0) mt_table_real(t, col, fill(bytes, pools));
}

static int pool_rows(const mt_cli_t *c, mt_table_t *t, const mt_layout_pool_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = mt_table_row(t);
        if (!rc) rc = mt_table_text(t, P_STATE, mt_pool_state_name(v[i].state));
        if (rc) return rc;
        int64_t pid = mt_cli_pid(c, v[i].process);
        mt_table_int(t, P_PROC, v[i].process);
        if (pid >= 0) mt_table_int(t, P_PID, pid);
        mt_table_int(t, P_ARENA, (int64_t)v[i].arena);
        mt_table_int(t, P_POOL, (int64_t)v[i].pool);
        mt_table_int(t, P_INDEX, v[i].index);
        mt_table_int(t, P_CLASS, v[i].size_class);
        mt_table_int(t, P_BLOCK, (int64_t)PYM_CLASS_SIZE(v[i].size_class));
        mt_table_int(t, P_USED, v[i].blocks_used);
        mt_table_int(t, P_CAP, v[i].capacity);
    }
    return 0;
}

static int class_rows(const mt_cli_t *c, mt_table_t *t, const mt_layout_t *m, const int64_t *procs, size_t np)
{
    for (size_t k = 0; k < np; k++) {
        pym_stats_t s;
        mt_layout_stats(m, procs[k], &s);
        int64_t pid = mt_cli_pid(c, procs[k]);
        for (int cl = 0; cl < PYM_NCLASSES; cl++) {
            const pym_class_stats_t *cs = &s.cls[cl];
            if (!cs->pools_used && !cs->pools_full && !cs->pools_empty) continue;
            int rc = mt_table_row(t);
            if (rc) return rc;
            int64_t bytes = (int64_t)(cs->blocks_used * PYM_CLASS_SIZE(cl));
            int64_t inuse = (int64_t)cs->pools_used + cs->pools_full;
            mt_table_int(t, K_PROC, procs[k]);
            if (pid >= 0) mt_table_int(t, K_PID, pid);
            mt_table_int(t, K_CLASS, cl);
            mt_table_int(t, K_BLOCK, (int64_t)PYM_CLASS_SIZE(cl));
            mt_table_int(t, K_CAP, cs->blocks_per_pool);
            mt_table_int(t, K_USED, cs->pools_used);
            mt_table_int(t, K_FULL, cs->pools_full);
            mt_table_int(t, K_EMPTY, cs->pools_empty);
            mt_table_int(t, K_BUSED, (int64_t)cs->blocks_used);
            mt_table_int(t, K_BFREE, (int64_t)cs->blocks_free);
            mt_table_int(t, K_BYTES, bytes);
            mt_table_int(t, K_POOLB, inuse * (int64_t)PYM_POOL_SIZE);
            fill_cell(t, K_FILL, bytes, inuse);
        }
    }
    return 0;
}

static int arena_rows(const mt_cli_t *c, mt_table_t *t, const mt_layout_arena_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = mt_table_row(t);
        if (rc) return rc;
        int64_t pid = mt_cli_pid(c, v[i].process);
        int64_t inuse = v[i].pools_used + v[i].pools_full;
        mt_table_int(t, A_PROC, v[i].process);
        if (pid >= 0) mt_table_int(t, A_PID, pid);
        mt_table_int(t, A_ARENA, (int64_t)v[i].arena);
        mt_table_int(t, A_INUSE, inuse);
        mt_table_int(t, A_USED, v[i].pools_used);
        mt_table_int(t, A_FULL, v[i].pools_full);
        mt_table_int(t, A_EMPTY, v[i].pools_empty);
        mt_table_int(t, A_UNCARVED, v[i].pools_uncarved);
        mt_table_int(t, A_FREE, v[i].pools_empty + v[i].pools_uncarved);
        mt_table_int(t, A_BUSED, v[i].blocks_used);
        mt_table_int(t, A_BYTES, v[i].bytes_in_use);
        fill_cell(t, A_FILL, v[i].bytes_in_use, inuse);
    }
    return 0;
}

/* The totals and fragmentation lines of one process. */
static void text_totals(const mt_cli_t *c, const mt_layout_t *m, int64_t process, int named)
{
    char a[64], b[64], d[32], e[32];
    pym_stats_t s;
    mt_layout_stats(m, process, &s);
    const char *ind = named ? "  " : "";
    if (named) printf("pid %" PRId64 ":\n", mt_cli_pid(c, process));
    int64_t inuse = (int64_t)(s.pools_used + s.pools_full);
    printf("%s%" PRIu64 " arena%s (%s), %" PRId64 " pool%s in use (%" PRIu64 " used, %" PRIu64
           " full), %" PRIu64 " empty, %" PRIu64 " uncarved; %s block%s in use, %s free in used pools\n",
           ind, s.arenas, mt_cli_plural((int64_t)s.arenas), mt_fmt_bytes(d, sizeof d, (double)s.arena_bytes),
           inuse, mt_cli_plural(inuse), s.pools_used, s.pools_full, s.pools_empty, s.pools_uncarved,
           mt_fmt_count(e, sizeof e, (int64_t)s.blocks_used), mt_cli_plural((int64_t)s.blocks_used),
           mt_fmt_count(b, sizeof b, (int64_t)s.blocks_free));
    printf("%sfragmentation: %s of blocks in use in %s of pools in use", ind,
           mt_cli_bytes(a, sizeof a, (int64_t)s.bytes_in_use),
           mt_cli_bytes(b, sizeof b, inuse * (int64_t)PYM_POOL_SIZE));
    if (inuse) printf(" (%.1f%% filled)", fill((int64_t)s.bytes_in_use, inuse));
    printf("\n");
    if (s.bad_frees)
        printf("%sbad frees (double_free events) so far: %" PRIu64 "\n", ind, s.bad_frees);
}

/* 1 when the trace has no allocator event at all, said on stderr.  `alloc`
 * is meta.allocator (NULL when absent); a trace of another allocator has
 * none; otherwise, when the replay met none before the moment, the table
 * is asked whether it has any.  *rc: 0 or a database error. */
static int no_allocator(const mt_cli_t *c, mt_db_t *db, const char *alloc, int replayed_any, int *rc)
{
    int none = 0;
    *rc = 0;
    if (alloc && strcmp(alloc, "bundled") != 0) {
        none = 1;
    } else if (!replayed_any) {
        mt_stmt_t *st;
        if (!(*rc = mt_stmt_prepare(db, "SELECT EXISTS (SELECT 1 FROM event_data WHERE kind >= ?1)", &st))) {
            if (!(*rc = mt_stmt_bind_int(st, 1, MT_KIND_PYM_BASE)) && (*rc = mt_stmt_step(st)) == 1) {
                none = mt_stmt_int(st, 0) == 0;
                *rc = 0;
            }
            mt_stmt_finalize(st);
        }
        if (*rc) return 0;
    }
    if (none)
        fprintf(stderr,
                "memtrace layout: no allocator events in %s: it was recorded with the %s allocator; "
                "record with --allocator=bundled to see arenas and pools\n",
                c->path, alloc ? alloc : "C library's");
    return none;
}

int mt_cmd_layout(int argc, char **argv)
{
    static const char *const by_names[NBY] = {"pools", "classes", "arenas"};
    mt_cli_t c = {.cmd = "layout", .synopsis = SYNOPSIS, .usage = mt_usage_layout, .has_csv = 1};
    const char *at_arg = NULL, *time_arg = NULL, *by_arg = NULL;
    const mt_cli_opt_t opts[] = {
        {"--at", NULL, 1, &at_arg},
        {"--time", NULL, 1, &time_arg},
        {"--by", NULL, 1, &by_arg},
    };
    int status = mt_cli_parse(&c, argc, argv, opts, 3);
    if (status >= 0) return status;
    mt_layout_replay_opts_t ro = {.at_seq = -1, .at_ts = -1, .progress = c.progress};
    int by = -1;
    if (at_arg && time_arg) return mt_cli_usage_error(&c, "%s", "give --at or --time, not both");
    if (at_arg && mt_cli_int(at_arg, 0, INT64_MAX, &ro.at_seq))
        return mt_cli_usage_error(&c, "--at wants a seq (an event's number, 0 or more), not '%s'", at_arg);
    if (time_arg && mt_cli_ms(time_arg, &ro.at_ts))
        return mt_cli_usage_error(&c, "--time wants milliseconds (0 or more), not '%s'", time_arg);
    if (by_arg) {
        for (by = 0; by < NBY && strcmp(by_arg, by_names[by]); by++) {
        }
        if (by == NBY) return mt_cli_usage_error(&c, "--by wants pools, classes or arenas, not '%s'", by_arg);
    }
    status = 1;

    mt_db_t *db = NULL;
    mt_layout_t *m = NULL;
    mt_layout_pool_t *pools = NULL;
    mt_layout_arena_t *arenas = NULL;
    int64_t *procs = NULL;
    size_t npools = 0, narenas = 0, nprocs = 0;
    mt_table_t *tp = NULL, *tk = NULL, *ta = NULL;
    char *alloc = NULL; /* meta.allocator */
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_db_meta_get_text(db, "allocator", &alloc))) goto fail;
    if ((rc = mt_layout_create(&m))) goto fail;
    if ((!alloc || !strcmp(alloc, "bundled")) && (rc = mt_layout_replay(m, db, &ro))) goto fail;
    mt_layout_info_t info = mt_layout_info(m);
    if ((rc = mt_layout_pools(m, &pools, &npools)) || (rc = mt_layout_arenas(m, &arenas, &narenas)) ||
        (rc = mt_layout_processes(m, &procs, &nprocs)))
        goto fail;
    if ((rc = mt_table_create(pool_cols, NP, &tp)) || (rc = mt_table_create(class_cols, NK, &tk)) ||
        (rc = mt_table_create(arena_cols, NA, &ta)))
        goto fail;

    int none = no_allocator(&c, db, alloc, info.events > 0 || info.forks > 0, &rc);
    if (rc) goto fail;
    if (!none) {
        if ((rc = pool_rows(&c, tp, pools, npools)) || (rc = class_rows(&c, tk, m, procs, nprocs)) ||
            (rc = arena_rows(&c, ta, arenas, narenas)))
            goto fail;
    }
    if (info.anomalies)
        fprintf(stderr,
                "memtrace layout: warning: %" PRId64 " allocator event%s of %s contradict%s the layout rebuilt "
                "from the events before (a damaged or hand-made trace?)\n",
                info.anomalies, mt_cli_plural(info.anomalies), c.path, info.anomalies == 1 ? "s" : "");

    if (c.csv) {
        mt_table_t *t = by == BY_CLASSES ? tk : by == BY_ARENAS ? ta : tp;
        if ((rc = mt_table_write(t, NULL, 1, stdout, NULL))) goto fail;
    } else if (!none) {
        char a[32], b[32], d[32];
        printf("bundled allocator layout in %s ", c.path);
        if (ro.at_seq >= 0) printf("after seq %s", mt_fmt_count(a, sizeof a, ro.at_seq));
        else if (ro.at_ts >= 0) printf("at %s ms", time_arg);
        else printf("at the end of the trace");
        if (info.events)
            printf(" (%s allocator event%s, the last at seq %s, %.3f ms)\n", mt_fmt_count(b, sizeof b, info.events),
                   mt_cli_plural(info.events), mt_fmt_count(d, sizeof d, info.last_seq), (double)info.last_ts / 1e6);
        else printf(" (no allocator event before it)\n");
        if (!narenas) {
            printf("\nno arena mapped at this moment\n");
        } else {
            if (by < 0 || by == BY_ARENAS) {
                printf("\narenas (%s, 64 pools each)\n\n", mt_fmt_count(a, sizeof a, (int64_t)narenas));
                if ((rc = mt_table_write(ta, NULL, 0, stdout, "  "))) goto fail;
            }
            if (by < 0 || by == BY_CLASSES) {
                printf("\nsize classes with pools (%s)\n\n", mt_fmt_count(a, sizeof a, (int64_t)mt_table_rows(tk)));
                if ((rc = mt_table_write(tk, NULL, 0, stdout, "  "))) goto fail;
            }
            if (by < 0 || by == BY_POOLS) {
                printf("\npools that served a class (%s)\n\n", mt_fmt_count(a, sizeof a, (int64_t)npools));
                if ((rc = mt_table_write(tp, NULL, 0, stdout, "  "))) goto fail;
            }
        }
        printf("\n");
        for (size_t k = 0; k < nprocs; k++) text_totals(&c, m, procs[k], nprocs > 1);
    }
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_table_destroy(tp);
    mt_table_destroy(tk);
    mt_table_destroy(ta);
    free(pools);
    free(arenas);
    free(procs);
    free(alloc);
    mt_layout_destroy(m);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
