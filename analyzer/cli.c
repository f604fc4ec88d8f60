/* cli.c - what the report subcommands share: options, opening the trace,
 * the incomplete-trace warning, pids, endings (contract in cli.h). */
#include "cli.h"

#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int mt_cli_usage_error(const mt_cli_t *c, const char *fmt, const char *arg)
{
    fprintf(stderr, "memtrace %s: ", c->cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (usage: memtrace %s %s)\n", c->cmd, c->synopsis);
    return 2;
}

int mt_cli_int(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi) return -1;
    *out = n;
    return 0;
}

int mt_cli_ms(const char *v, int64_t *ns)
{
    char *end;
    errno = 0;
    double ms = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(ms) || ms < 0 || ms * 1e6 > 9e18) return -1;
    *ns = llround(ms * 1e6);
    return 0;
}

/* Matches argv[*i] against option `name` (and its short form).  Returns 0
 * when it is not this option, 1 when it is (*val set, *i advanced past a
 * separate value), -1 when its value is missing. */
static int match(const char *name, const char *short_name, int takes_value, int argc, char **argv,
                 int *i, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (!strcmp(a, name) || (short_name && !strcmp(a, short_name))) {
        if (!takes_value) {
            *val = "1";
            return 1;
        }
        if (*i + 1 >= argc) return -1;
        *val = argv[++*i];
        return 1;
    }
    if (takes_value && !strncmp(a, name, n) && a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    return 0;
}

int mt_cli_parse(mt_cli_t *c, int argc, char **argv, const mt_cli_opt_t *opts, int nopts)
{
    int opts_done = 0;
    c->top = MT_CLI_DEFAULT_TOP;
    snprintf(c->progress, sizeof c->progress, "memtrace %s: reading events", c->cmd);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (opts_done || a[0] != '-' || !a[1]) {
            if (!c->path) c->path = a;
            else if (c->second && !c->path2) c->path2 = a;
            else return mt_cli_usage_error(c, "unexpected argument '%s'", a);
            continue;
        }
        if (!strcmp(a, "--")) {
            opts_done = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            c->usage(stdout);
            return 0;
        }
        int r = 0;
        for (int k = 0; k < nopts && !r; k++) {
            r = match(opts[k].name, opts[k].short_name, opts[k].takes_value, argc, argv, &i, &v);
            if (r == 1) *opts[k].value = v;
            else if (r < 0) return mt_cli_usage_error(c, "%s needs a value", opts[k].name);
        }
        if (r) continue;
        if (c->has_csv && !strcmp(a, "--csv")) {
            c->csv = 1;
            continue;
        }
        if (c->has_layer && (r = match("--layer", NULL, 1, argc, argv, &i, &v))) {
            if (r < 0) return mt_cli_usage_error(c, "%s needs a layer name", "--layer");
            c->layer = mt_heap_layer_code(v);
            if (c->layer < 0)
                return mt_cli_usage_error(c, "--layer must be libc, pymem_raw, pymem, pyobj or pyarena, not '%s'", v);
            continue;
        }
        if (c->has_top && (r = match("--top", NULL, 1, argc, argv, &i, &v))) {
            if (r < 0) return mt_cli_usage_error(c, "%s needs a number", "--top");
            if (mt_cli_int(v, 0, MT_CLI_MAX_TOP, &c->top)) return mt_cli_usage_error(c, "--top wants a count, not '%s'", v);
            continue;
        }
        return mt_cli_usage_error(c, "unknown option '%s'", a);
    }
    if (!c->path) return mt_cli_usage_error(c, "%s", "missing DB (a trace written by memtrace)");
    if (c->second && !c->path2)
        return mt_cli_usage_error(c, "missing %s (the second trace, to compare with the first)", c->second);
    return -1;
}

static int read_procs(mt_cli_t *c, mt_db_t *db)
{
    mt_stmt_t *st;
    size_t cap = 0;
    int rc = mt_stmt_prepare(db, "SELECT id, pid FROM processes ORDER BY id", &st);
    if (rc) return rc;
    while ((rc = mt_stmt_step(st)) == 1) {
        if (c->nprocs == cap) {
            cap = cap ? cap * 2 : 8;
            struct mt_cli_proc *p = realloc(c->procs, cap * sizeof *p);
            if (!p) {
                rc = MT_ENOMEM;
                break;
            }
            c->procs = p;
        }
        c->procs[c->nprocs].id = mt_stmt_int(st, 0);
        c->procs[c->nprocs].pid = mt_stmt_int(st, 1);
        c->nprocs++;
    }
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

int mt_cli_open(mt_cli_t *c, mt_db_t **db)
{
    char err[512];
    int64_t complete;
    char *reason = NULL;
    *db = NULL;
    if (mt_db_open(c->path, MT_DB_READONLY, db, err, sizeof err)) {
        fprintf(stderr, "memtrace %s: %s\n", c->cmd, err);
        return 1;
    }
    int rc = mt_db_meta_get_int(*db, "complete", &complete);
    if (rc == MT_ENOENT) complete = -1;
    else if (rc) goto fail;
    c->complete = (int)complete;
    if (complete == 0) {
        if ((rc = mt_db_meta_get_text(*db, "incomplete_reason", &reason))) goto fail;
        fprintf(stderr, "memtrace: warning: trace %s%sis incomplete: %s\n", c->name_in_warning ? c->path : "",
                c->name_in_warning ? " " : "", reason && *reason ? reason : "no reason recorded");
        free(reason);
    }
    if ((rc = read_procs(c, *db))) goto fail;
    return 0;
fail:
    mt_cli_fail(c, *db, rc);
    mt_db_close(*db);
    *db = NULL;
    return 1;
}

int64_t mt_cli_pid(const mt_cli_t *c, int64_t process)
{
    for (size_t i = 0; i < c->nprocs; i++)
        if (c->procs[i].id == process) return c->procs[i].pid;
    return -1;
}

int mt_cli_fail(const mt_cli_t *c, mt_db_t *db, int rc)
{
    if (rc == MT_ENOMEM) fprintf(stderr, "memtrace %s: out of memory\n", c->cmd);
    else fprintf(stderr, "memtrace %s: %s: %s\n", c->cmd, c->path, mt_db_errmsg(db));
    return 1;
}

int mt_cli_no_heap(const mt_cli_t *c, const mt_heap_stats_t *hs)
{
    char a[32];
    if (hs->allocs > 0) return 0;
    FILE *out = c->csv ? stderr : stdout;
    if (c->csv) fprintf(out, "memtrace %s: ", c->cmd);
    if (c->layer != MT_DOM_libc && hs->unknown_frees == 0)
        fprintf(out, "no %s events in %s: the trace does not hold this layer (%s)\n", mt_domain_name(c->layer),
                c->path, mt_domain_description(c->layer));
    else if (hs->unknown_frees == 0)
        fprintf(out, "no heap events in %s: no malloc, calloc, realloc or free was recorded\n", c->path);
    else
        fprintf(out, "no %s allocations in %s: only %s free%s of blocks allocated before tracing started\n",
                c->layer == MT_DOM_libc ? "heap" : mt_domain_name(c->layer), c->path,
                mt_fmt_count(a, sizeof a, hs->unknown_frees), mt_cli_plural(hs->unknown_frees));
    return 1;
}

int mt_cli_duration(mt_db_t *db, int64_t *ns)
{
    int rc = mt_db_meta_get_int(db, "duration_ns", ns);
    if (rc != MT_ENOENT) return rc;
    mt_stmt_t *st;
    *ns = 0;
    if ((rc = mt_stmt_prepare(db, "SELECT ts FROM event_times ORDER BY seq DESC LIMIT 1", &st))) return rc;
    if ((rc = mt_stmt_step(st)) == 1) *ns = mt_stmt_int(st, 0);
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

int mt_cli_flush(const mt_cli_t *c, FILE *out)
{
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "memtrace %s: cannot write the output\n", c->cmd);
        return 1;
    }
    return 0;
}

void mt_cli_free(mt_cli_t *c)
{
    free(c->procs);
    c->procs = NULL;
    c->nprocs = 0;
}

const char *mt_cli_bytes(char *buf, size_t len, int64_t v)
{
    char a[32], b[32];
    if (v < 1024 && v > -1024) snprintf(buf, len, "%s byte%s", mt_fmt_count(b, sizeof b, v), mt_cli_plural(v));
    else snprintf(buf, len, "%s (%s bytes)", mt_fmt_bytes(a, sizeof a, (double)v), mt_fmt_count(b, sizeof b, v));
    return buf;
}

const char *mt_cli_plural(int64_t n) { return n == 1 ? "" : "s"; }
