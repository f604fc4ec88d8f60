/* summary.c - `memtrace summary [--top N] [--csv] DB`: what a user reads
 * first about a trace.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * It builds one model of the trace (summary_t), then renders it as text or
 * as CSV, so the two outputs cannot disagree:
 *
 *   1. header      meta (command, completeness, duration), processes,
 *                  threads: a few small queries;
 *   2. the pass    ONE streaming pass over event_data in seq order
 *                  (mt_heap_replay): the heap model keeps the live blocks,
 *                  the peak and the temporary allocations, and tally_event
 *                  counts calls and bytes per kind and per layer;
 *   3. leaks       live blocks at the end grouped by stack (mt_heap_leaks),
 *                  the top N printed with their frames (stackfmt).
 *
 * Cost: the pass is linear in the events with O(1) hash-map work each;
 * memory is proportional to the blocks live at any one time.
 */
#include "mt_analyzer.h"

#include "heapmodel.h"
#include "cli.h"
#include "mt_db.h"
#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"
#include "stackfmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TOP 5
#define MAX_TOP 1000000
#define CSV_FRAME_SEP " <- "

/* Calls and bytes of one kind or one layer. */
typedef struct {
    int64_t calls;
    int64_t failed;
    int64_t requested;  /* size asked for by successful allocations */
    int64_t released;   /* size of the known blocks/regions ended */
} tally_t;

typedef struct {
    int64_t id, pid;
    char *exe;
    int64_t exit_status, exit_signal;  /* -1: NULL */
    int complete;
} proc_info_t;

/* Everything the renderers print. */
typedef struct {
    const char *path;
    int top;
    /* header */
    char *command, *reason, *version;
    int64_t complete;      /* meta.complete; -1 when absent */
    int64_t duration_ns;   /* meta.duration_ns, else the last event's ts */
    proc_info_t *procs;
    size_t nprocs;
    int64_t nthreads, free_null, lost_events;
    /* the pass */
    tally_t kinds[MT_KIND_MAX]; /* the C library's, the OS's, the bundled allocator's */
    tally_t unknown_kinds;  /* codes this memtrace does not know */
    tally_t layers[MT_DOM_COUNT];
    mt_heap_stats_t heap;
    mt_heap_group_t *leaks;
    size_t nleaks;
} summary_t;

void mt_usage_summary(FILE *out)
{
    fprintf(out,
            "usage: memtrace summary [--top N] [--csv] DB\n"
            "\n"
            "What to read first about a trace: the command and whether the trace is\n"
            "complete, calls and bytes per kind and per layer, the peak of live heap\n"
            "bytes, temporary allocations, frees of unknown blocks, failed calls, and\n"
            "the stacks of the blocks still live at the end (leaks), largest first.\n"
            "\n"
            "  --top N   show the N stacks with the most live bytes at the end (default %d)\n"
            "  --csv     machine-readable output: one CSV table per section (overview,\n"
            "            processes, kinds, layers, heap, leaks), each with a header row,\n"
            "            separated by a blank line\n"
            "  -h, --help  this text\n",
            DEFAULT_TOP);
}

/* ---- gathering ---- */

/* Layers whose freed sizes the heap model knows (the others' frees carry no
 * size: their released bytes are unknown here; `memtrace python` and
 * --layer reports model them). */
static int released_known(int dom) { return dom == MT_DOM_libc || dom == MT_DOM_os; }

static int tally_event(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    summary_t *s = arg;
    int known = ev->kind >= 0 && ev->kind < MT_KIND_MAX && mt_kind_name(ev->kind);
    tally_t *k = known ? &s->kinds[ev->kind] : &s->unknown_kinds;
    int dom = known ? mt_kind_domain(ev->kind) : -1;
    tally_t *l = dom >= 0 && dom < MT_DOM_COUNT ? &s->layers[dom] : NULL;
    int64_t req = 0;
    k->calls++;
    if (ev->failed) {
        k->failed++;
    } else {
        if (known && (mt_kind_flags(ev->kind) & MT_KF_ALLOC) && ev->size > 0) req = ev->size;
        k->requested += req;
        k->released += d->free_bytes;
    }
    if (l) {
        l->calls++;
        l->failed += ev->failed != 0;
        l->requested += req;
        l->released += d->free_bytes;
    }
    return 0;
}

static int read_header(summary_t *s, mt_db_t *db)
{
    mt_stmt_t *st = NULL;
    int rc;
    if ((rc = mt_db_meta_get_text(db, "command", &s->command))) return rc;
    if ((rc = mt_db_meta_get_text(db, "incomplete_reason", &s->reason))) return rc;
    if ((rc = mt_db_meta_get_text(db, "memtrace_version", &s->version))) return rc;
    rc = mt_db_meta_get_int(db, "complete", &s->complete);
    if (rc == MT_ENOENT) s->complete = -1;
    else if (rc) return rc;
    rc = mt_db_meta_get_int(db, "duration_ns", &s->duration_ns);
    if (rc == MT_ENOENT) s->duration_ns = -1;
    else if (rc) return rc;

    if ((rc = mt_stmt_prepare(db, "SELECT count(*) FROM threads", &st))) return rc;
    if ((rc = mt_stmt_step(st)) == 1) s->nthreads = mt_stmt_int(st, 0);
    mt_stmt_finalize(st);
    if (rc < 0) return rc;

    rc = mt_stmt_prepare(db,
                         "SELECT id, pid, exe, exit_status, exit_signal, complete, free_null,"
                         " lost_events FROM processes ORDER BY id",
                         &st);
    if (rc) return rc;
    size_t cap = 0;
    while ((rc = mt_stmt_step(st)) == 1) {
        if (s->nprocs == cap) {
            cap = cap ? cap * 2 : 8;
            proc_info_t *p = realloc(s->procs, cap * sizeof *p);
            if (!p) {
                rc = MT_ENOMEM;
                break;
            }
            s->procs = p;
        }
        proc_info_t *p = &s->procs[s->nprocs++];
        const char *exe = mt_stmt_text(st, 2);
        p->id = mt_stmt_int(st, 0);
        p->pid = mt_stmt_int(st, 1);
        p->exe = exe ? strdup(exe) : NULL;
        p->exit_status = mt_stmt_int_or(st, 3, -1);
        p->exit_signal = mt_stmt_int_or(st, 4, -1);
        p->complete = mt_stmt_int(st, 5) != 0;
        s->free_null += mt_stmt_int(st, 6);
        s->lost_events += mt_stmt_int(st, 7);
    }
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

static void summary_free(summary_t *s)
{
    free(s->command);
    free(s->reason);
    free(s->version);
    for (size_t i = 0; i < s->nprocs; i++) free(s->procs[i].exe);
    free(s->procs);
    free(s->leaks);
}

/* ---- shared wording ---- */

static const char *exit_text(const proc_info_t *p, char *buf, size_t len)
{
    if (p->exit_signal >= 0) snprintf(buf, len, "killed by signal %" PRId64, p->exit_signal);
    else if (p->exit_status >= 0) snprintf(buf, len, "exit status %" PRId64, p->exit_status);
    else snprintf(buf, len, "no exit seen");
    return buf;
}

static const char *plural(int64_t n) { return n == 1 ? "" : "s"; }

static double pct(int64_t part, int64_t whole)
{
    return whole > 0 ? 100.0 * (double)part / (double)whole : 0.0;
}

/* ---- text ---- */

/* "97.7 KiB (100,000 bytes)" */
static const char *bytes_exact(char *buf, size_t len, int64_t v)
{
    char a[32], b[32];
    if (v < 1024) snprintf(buf, len, "%s bytes", mt_fmt_count(b, sizeof b, v));
    else snprintf(buf, len, "%s (%s bytes)", mt_fmt_bytes(a, sizeof a, (double)v),
                  mt_fmt_count(b, sizeof b, v));
    return buf;
}

static void text_header(const summary_t *s, FILE *out)
{
    char a[64], b[64];
    fprintf(out, "memtrace summary of %s\n", s->path);
    fprintf(out, "  command      %s\n", s->command ? s->command : "(unknown)");
    int64_t dur = s->duration_ns >= 0 ? s->duration_ns : s->heap.last_ts;
    fprintf(out, "  duration     %s\n", mt_fmt_ns(a, sizeof a, dur));
    fprintf(out, "  processes    %zu", s->nprocs);
    for (size_t i = 0; i < s->nprocs && i < 4; i++)
        fprintf(out, "%s pid %" PRId64 " %s", i ? ";" : ":", s->procs[i].pid,
                exit_text(&s->procs[i], a, sizeof a));
    if (s->nprocs > 4) fprintf(out, "; %zu more", s->nprocs - 4);
    fprintf(out, "\n  threads      %" PRId64 "\n", s->nthreads);
    if (s->complete == 1)
        fprintf(out, "  trace        complete\n");
    else if (s->complete == 0)
        fprintf(out, "  trace        INCOMPLETE%s%s\n", s->reason ? ": " : "", s->reason ? s->reason : "");
    else
        fprintf(out, "  trace        completeness unknown (no meta.complete)\n");
    fprintf(out, "  events       %s\n", mt_fmt_count(a, sizeof a, s->heap.events));
    if (s->lost_events)
        fprintf(out, "  lost events  %s (not recorded: the numbers below undercount)\n",
                mt_fmt_count(b, sizeof b, s->lost_events));
}

static void text_kinds(const summary_t *s, FILE *out)
{
    char a[32], b[32], c[32];
    int any_failed = 0;
    if (!s->heap.events) {
        fprintf(out, "\nno events recorded\n");
        return;
    }
    for (int k = 0; k < MT_KIND_MAX; k++) any_failed |= s->kinds[k].failed != 0;
    fprintf(out, "\ncalls by kind\n  %-19s %-7s %11s", "kind", "layer", "calls");
    if (any_failed) fprintf(out, " %10s", "failed");
    fprintf(out, " %12s\n", "bytes");
    for (int k = 0; k < MT_KIND_MAX; k++) {
        const tally_t *t = &s->kinds[k];
        if (!t->calls) continue;
        unsigned fl = mt_kind_flags(k);
        fprintf(out, "  %-19s %-7s %11s", mt_kind_name(k), mt_domain_name(mt_kind_domain(k)),
                mt_fmt_count(a, sizeof a, t->calls));
        if (any_failed) fprintf(out, " %10s", mt_fmt_count(b, sizeof b, t->failed));
        if (fl & MT_KF_ALLOC) fprintf(out, " %12s\n", mt_fmt_bytes(c, sizeof c, (double)t->requested));
        else if ((fl & MT_KF_FREE) && released_known(mt_kind_domain(k)))
            fprintf(out, " %12s  released\n", mt_fmt_bytes(c, sizeof c, (double)t->released));
        else fprintf(out, " %12s\n", "-");
    }
    if (s->unknown_kinds.calls)
        fprintf(out, "  %-19s %-7s %11s\n", "(unknown kind)", "?",
                mt_fmt_count(a, sizeof a, s->unknown_kinds.calls));
    fprintf(out, "  bytes: requested by allocations; released: size of the known blocks freed\n");

    fprintf(out, "\ncalls by layer\n  %-10s %14s %14s %14s\n", "layer", "calls", "allocated", "released");
    for (int d = 0; d < MT_DOM_COUNT; d++) {
        const tally_t *t = &s->layers[d];
        if (!t->calls) continue;
        char r[32];
        fprintf(out, "  %-10s %14s %14s %14s\n", mt_domain_name(d), mt_fmt_count(a, sizeof a, t->calls),
                mt_fmt_bytes(b, sizeof b, (double)t->requested),
                released_known(d) ? mt_fmt_bytes(r, sizeof r, (double)t->released) : "-");
    }
    if (s->layers[MT_DOM_pyobj].calls || s->layers[MT_DOM_pymem_raw].calls)
        fprintf(out, "  CPython layers in detail: memtrace python DB\n");
}

static void text_heap(const summary_t *s, FILE *out)
{
    const mt_heap_stats_t *h = &s->heap;
    char a[64], b[64], c[64], d[64];
    fprintf(out, "\nheap (libc layer)\n");
    if (h->peak_seq >= 0)
        fprintf(out, "  peak           %s in %s block%s, first reached at seq %s (%s)\n",
                bytes_exact(a, sizeof a, h->peak_bytes), mt_fmt_count(b, sizeof b, h->peak_blocks),
                plural(h->peak_blocks), mt_fmt_count(c, sizeof c, h->peak_seq),
                mt_fmt_ns(d, sizeof d, h->peak_ts));
    else
        fprintf(out, "  peak           none (no heap allocation)\n");
    fprintf(out, "  allocations    %s\n", mt_fmt_count(a, sizeof a, h->allocs));
    fprintf(out, "  temporary      %s (%.1f%% of allocations: freed by the next heap call of their"
                 " thread)\n",
            mt_fmt_count(a, sizeof a, h->temporary), pct(h->temporary, h->allocs));
    fprintf(out, "  leaked         %s block%s, %s, from %s stack%s%s\n",
            mt_fmt_count(a, sizeof a, h->live_blocks), plural(h->live_blocks),
            bytes_exact(b, sizeof b, h->live_bytes), mt_fmt_count(c, sizeof c, (int64_t)s->nleaks),
            plural((int64_t)s->nleaks), s->complete == 1 ? "" : " (live when the trace ended)");
    fprintf(out, "  unknown frees  %s (blocks allocated before tracing started)\n",
            mt_fmt_count(a, sizeof a, h->unknown_frees));
    if (h->replaced_live)
        fprintf(out, "  reallocated    %s allocations at a live address (their free was not seen)\n",
                mt_fmt_count(a, sizeof a, h->replaced_live));
    fprintf(out, "  free(NULL)     %s\n", mt_fmt_count(a, sizeof a, s->free_null));
    fprintf(out, "  failed calls   %s\n", mt_fmt_count(a, sizeof a, h->failed));
    if (s->layers[MT_DOM_os].calls) {
        fprintf(out, "\nmappings (os layer)\n");
        if (h->peak_mapped_seq >= 0)
            fprintf(out, "  peak mapped    %s, first reached at seq %s (%s)\n",
                    bytes_exact(a, sizeof a, h->peak_mapped_bytes),
                    mt_fmt_count(b, sizeof b, h->peak_mapped_seq), mt_fmt_ns(c, sizeof c, h->peak_mapped_ts));
        fprintf(out, "  mapped at end  %s in %s region%s\n", bytes_exact(a, sizeof a, h->mapped_bytes),
                mt_fmt_count(b, sizeof b, h->mapped_regions), plural(h->mapped_regions));
        if (h->unknown_unmaps)
            fprintf(out, "  unknown unmaps %s (regions mapped before tracing, or partly unmapped)\n",
                    mt_fmt_count(a, sizeof a, h->unknown_unmaps));
    }
}

static int text_leaks(const summary_t *s, mt_stackfmt_t *sf, FILE *out)
{
    char a[64], b[64], c[32];
    if (!s->nleaks) {
        fprintf(out, "\nno leaks: every heap block allocated during the trace was freed\n");
        return 0;
    }
    if (!s->top) return 0;
    size_t n = (size_t)s->top < s->nleaks ? (size_t)s->top : s->nleaks;
    fprintf(out, "\ntop %zu of %s stack%s still live at the end, by bytes\n", n,
            mt_fmt_count(c, sizeof c, (int64_t)s->nleaks), plural((int64_t)s->nleaks));
    for (size_t i = 0; i < n; i++) {
        const mt_heap_group_t *g = &s->leaks[i];
        fprintf(out, "  #%-3zu %s block%s, %s\n", i + 1, mt_fmt_count(a, sizeof a, g->blocks),
                plural(g->blocks), bytes_exact(b, sizeof b, g->bytes));
        int rc = mt_stackfmt_print(sf, g->stack, MT_STACKFMT_DEPTH, out, "        ");
        if (rc) return rc;
    }
    return 0;
}

/* ---- CSV (RFC 4180 quoting; LF line ends) ---- */

static void csv_field(FILE *out, const char *v)
{
    if (v) mt_csv_field(out, v, strlen(v));
}

static void csv_kv_text(FILE *out, const char *key, const char *v)
{
    fprintf(out, "%s,", key);
    csv_field(out, v);
    fputc('\n', out);
}

/* v < 0 prints an empty (NULL) value when `neg_is_null`. */
static void csv_kv_int(FILE *out, const char *key, int64_t v, int neg_is_null)
{
    if (v < 0 && neg_is_null) fprintf(out, "%s,\n", key);
    else fprintf(out, "%s,%" PRId64 "\n", key, v);
}

static int render_csv(const summary_t *s, mt_stackfmt_t *sf, FILE *out)
{
    const mt_heap_stats_t *h = &s->heap;
    char buf[64];
    fprintf(out, "key,value\n");
    csv_kv_text(out, "database", s->path);
    csv_kv_text(out, "command", s->command);
    csv_kv_text(out, "memtrace_version", s->version);
    csv_kv_int(out, "duration_ns", s->duration_ns >= 0 ? s->duration_ns : h->last_ts, 0);
    csv_kv_int(out, "processes", (int64_t)s->nprocs, 0);
    csv_kv_int(out, "threads", s->nthreads, 0);
    csv_kv_int(out, "complete", s->complete, 1);
    csv_kv_text(out, "incomplete_reason", s->reason);
    csv_kv_int(out, "events", h->events, 0);
    csv_kv_int(out, "lost_events", s->lost_events, 0);

    fprintf(out, "\nprocess_id,pid,exe,exit_status,exit_signal,complete\n");
    for (size_t i = 0; i < s->nprocs; i++) {
        const proc_info_t *p = &s->procs[i];
        fprintf(out, "%" PRId64 ",%" PRId64 ",", p->id, p->pid);
        csv_field(out, p->exe);
        if (p->exit_status >= 0) fprintf(out, ",%" PRId64, p->exit_status);
        else fputc(',', out);
        if (p->exit_signal >= 0) fprintf(out, ",%" PRId64, p->exit_signal);
        else fputc(',', out);
        fprintf(out, ",%d\n", p->complete);
    }

    fprintf(out, "\nkind,layer,calls,failed,requested_bytes,released_bytes\n");
    for (int k = 0; k < MT_KIND_MAX; k++) {
        const tally_t *t = &s->kinds[k];
        /* every C-library and OS kind; the other layers' when present */
        int dom = mt_kind_domain(k);
        if (!mt_kind_name(k) || (dom != MT_DOM_libc && dom != MT_DOM_os && !t->calls)) continue;
        fprintf(out, "%s,%s,%" PRId64 ",%" PRId64 ",%" PRId64 ",", mt_kind_name(k), mt_domain_name(dom), t->calls,
                t->failed, t->requested);
        if (released_known(dom)) fprintf(out, "%" PRId64, t->released);
        fputc('\n', out);
    }
    if (s->unknown_kinds.calls)
        fprintf(out, "unknown,,%" PRId64 ",%" PRId64 ",0,0\n", s->unknown_kinds.calls,
                s->unknown_kinds.failed);

    fprintf(out, "\nlayer,calls,failed,allocated_bytes,released_bytes\n");
    for (int d = 0; d < MT_DOM_COUNT; d++) {
        const tally_t *t = &s->layers[d];
        fprintf(out, "%s,%" PRId64 ",%" PRId64 ",%" PRId64 ",", mt_domain_name(d), t->calls, t->failed,
                t->requested);
        if (released_known(d)) fprintf(out, "%" PRId64, t->released);
        fputc('\n', out);
    }

    fprintf(out, "\nmeasure,value\n");
    csv_kv_int(out, "peak_bytes", h->peak_bytes, 0);
    csv_kv_int(out, "peak_blocks", h->peak_blocks, 0);
    csv_kv_int(out, "peak_seq", h->peak_seq, 1);
    csv_kv_int(out, "peak_ts_ns", h->peak_seq >= 0 ? h->peak_ts : -1, 1);
    csv_kv_int(out, "allocations", h->allocs, 0);
    csv_kv_int(out, "frees", h->frees, 0);
    csv_kv_int(out, "temporary", h->temporary, 0);
    snprintf(buf, sizeof buf, "%.2f", pct(h->temporary, h->allocs));
    csv_kv_text(out, "temporary_pct", buf);
    csv_kv_int(out, "leaked_blocks", h->live_blocks, 0);
    csv_kv_int(out, "leaked_bytes", h->live_bytes, 0);
    csv_kv_int(out, "leak_stacks", (int64_t)s->nleaks, 0);
    csv_kv_int(out, "unknown_frees", h->unknown_frees, 0);
    csv_kv_int(out, "replaced_live", h->replaced_live, 0);
    csv_kv_int(out, "free_null", s->free_null, 0);
    csv_kv_int(out, "failed_calls", h->failed, 0);
    csv_kv_int(out, "os_maps", h->maps, 0);
    csv_kv_int(out, "os_unmaps", h->unmaps, 0);
    csv_kv_int(out, "os_unknown_unmaps", h->unknown_unmaps, 0);
    csv_kv_int(out, "os_peak_mapped_bytes", h->peak_mapped_bytes, 0);
    csv_kv_int(out, "os_peak_mapped_seq", h->peak_mapped_seq, 1);
    csv_kv_int(out, "os_mapped_bytes_end", h->mapped_bytes, 0);
    csv_kv_int(out, "os_mapped_regions_end", h->mapped_regions, 0);

    fprintf(out, "\nrank,stack_id,blocks,bytes,first_seq,frames\n");
    size_t n = (size_t)s->top < s->nleaks ? (size_t)s->top : s->nleaks;
    for (size_t i = 0; i < n; i++) {
        const mt_heap_group_t *g = &s->leaks[i];
        char frames[4096];
        int rc = mt_stackfmt_join(sf, g->stack, MT_STACKFMT_DEPTH, CSV_FRAME_SEP, frames, sizeof frames);
        if (rc) return rc;
        fprintf(out, "%zu,%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",", i + 1, g->stack, g->blocks,
                g->bytes, g->first_seq);
        csv_field(out, frames);
        fputc('\n', out);
    }
    return 0;
}

static int render_text(const summary_t *s, mt_stackfmt_t *sf, FILE *out)
{
    text_header(s, out);
    text_kinds(s, out);
    text_heap(s, out);
    return text_leaks(s, sf, out);
}

/* ---- command ---- */

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "memtrace summary: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (usage: memtrace summary [--top N] [--csv] DB)\n");
    return 2;
}

static int parse_top(const char *v, int *top)
{
    int64_t n;
    if (mt_cli_int(v, 0, MAX_TOP, &n)) return -1;
    *top = (int)n;
    return 0;
}

int mt_cmd_summary(int argc, char **argv)
{
    summary_t s = {.top = DEFAULT_TOP};
    int csv = 0, status = 1, rc, opts_done = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || !a[1]) {
            if (path) return usage_error("unexpected argument '%s'", a);
            path = a;
        } else if (!strcmp(a, "--")) {
            opts_done = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            mt_usage_summary(stdout);
            return 0;
        } else if (!strcmp(a, "--csv")) {
            csv = 1;
        } else if (!strcmp(a, "--top")) {
            if (i + 1 >= argc) return usage_error("%s needs a number", a);
            if (parse_top(argv[++i], &s.top)) return usage_error("--top wants a count, not '%s'", argv[i]);
        } else if (!strncmp(a, "--top=", 6)) {
            if (parse_top(a + 6, &s.top)) return usage_error("--top wants a count, not '%s'", a + 6);
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (!path) return usage_error("%s", "missing DB");
    s.path = path;

    mt_db_t *db = NULL;
    mt_heap_t *heap = NULL;
    mt_stackfmt_t *sf = NULL;
    mt_heap_replay_opts_t opts = {
        .visit = tally_event, .arg = &s, .progress = "memtrace summary: reading events"};
    char err[512];
    if (mt_db_open(path, MT_DB_READONLY, &db, err, sizeof err)) {
        fprintf(stderr, "memtrace summary: %s\n", err);
        return 1;
    }
    if ((rc = read_header(&s, db))) goto fail;
    if ((rc = mt_heap_create(&heap))) goto fail;
    if ((rc = mt_heap_replay(heap, db, &opts))) goto fail;
    s.heap = *mt_heap_stats(heap);
    if ((rc = mt_heap_leaks(heap, &s.leaks, &s.nleaks))) goto fail;
    mt_heap_destroy(heap); /* the live blocks can be large: give them back before printing */
    heap = NULL;
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;
    rc = csv ? render_csv(&s, sf, stdout) : render_text(&s, sf, stdout);
    if (rc) goto fail;
    if (fflush(stdout) != 0) {
        fprintf(stderr, "memtrace summary: cannot write the output\n");
        goto out;
    }
    status = 0;
    goto out;
fail:
    if (rc == MT_ENOMEM) fprintf(stderr, "memtrace summary: out of memory\n");
    else fprintf(stderr, "memtrace summary: %s: %s\n", path, mt_db_errmsg(db));
out:
    mt_stackfmt_close(sf);
    mt_heap_destroy(heap);
    mt_db_close(db);
    summary_free(&s);
    return status;
}
