/* export.c - `memtrace export DB [--collapsed] [--by bytes|calls|leaked|peak]
 * [-o FILE]` or `memtrace export DB --massif [-o FILE]`: allocation stacks in
 * the collapsed-stack format of flame graph tools, or the heap over time in
 * valgrind massif's format.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * Collapsed: one pass (mt_sites_replay) gives a weight per heap site; each
 * site's stack becomes one line "outermost;...;innermost WEIGHT", function
 * names only, as flamegraph.pl, inferno and speedscope read it.  Sites whose
 * frames read the same (different lines of one function, or the same code
 * in several processes) are merged into one line; lines are sorted by their
 * text, so the output is deterministic.  Massif: massif.h.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "massif.h"
#include "mt_error.h"
#include "sites.h"
#include "stackfmt.h"
#include "views.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--collapsed [--by bytes|calls|leaked|peak] | --massif] [-o FILE] [--layer NAME] DB"
#define MAX_FRAMES 1024

enum { BY_BYTES, BY_CALLS, BY_LEAKED, BY_PEAK, NBY };

void mt_usage_export(FILE *out)
{
    fprintf(out,
            "usage: memtrace export " SYNOPSIS "\n"
            "\n"
            "Writes the heap allocations (libc layer) in a format other tools read.\n"
            "\n"
            "--collapsed (the default): the allocation stacks as collapsed stacks, the\n"
            "input of flame graph tools (flamegraph.pl, inferno, speedscope): one line\n"
            "per stack, its functions from the outermost (main's callers) to the one\n"
            "that called the allocator, separated by ';', then a space and the weight:\n"
            "\n"
            "  _start;__libc_start_main;main;load;parse_line 123456\n"
            "\n"
            "A frame without a function name shows as [module+0xOFFSET] (or [0xADDRESS]);\n"
            "';' in a name becomes ':'.  Stacks that read the same are merged; lines are\n"
            "sorted; stacks of weight 0 are left out.\n"
            "\n"
            "--massif: the heap over time in the format of valgrind's massif, which\n"
            "ms_print and massif-visualizer read: %d snapshots evenly spread over the\n"
            "trace (the first at its start, the last at its end) plus the heap's peak,\n"
            "times in ms, live heap bytes (requested sizes, every process together);\n"
            "every %dth snapshot and the peak are detailed: the live bytes as a tree of\n"
            "stacks, the allocator's caller first, then its callers, each level sorted\n"
            "by bytes, branches under 1%% of the snapshot folded into one \"in K places\"\n"
            "line.  Allocator overhead (mem_heap_extra_B) and thread stacks\n"
            "(mem_stacks_B) are not measured: 0.\n"
            "\n"
            "Options:\n"
            "  --collapsed  collapsed stacks (the default)\n"
            "  --by W       their weight: bytes allocated (default), calls (allocations),\n"
            "               leaked (bytes still live at the end), or peak (bytes live\n"
            "               at the heap's peak)\n"
            "  --massif     massif's format (no --by)\n"
            "  -o FILE      write to FILE instead of standard output (removed again when\n"
            "               the export fails)\n"
            "  --layer NAME the layer taken as the heap: libc (default), or a CPython\n"
            "               domain: pymem_raw, pymem, pyobj, pyarena\n"
            "  -h, --help   this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read or FILE written, 2 usage error.\n"
            "\n"
            "Examples:\n"
            "  memtrace export --by leaked -o leaks.folded trace.db\n"
            "  flamegraph.pl leaks.folded > leaks.svg\n"
            "  memtrace export --massif -o massif.out trace.db && ms_print massif.out\n",
            MT_MASSIF_SNAPSHOTS, MT_MASSIF_DETAIL);
}

typedef struct {
    char *text;      /* frames, outermost first */
    int64_t weight;
} line_t;

static int by_text(const void *a, const void *b)
{
    return strcmp(((const line_t *)a)->text, ((const line_t *)b)->text);
}

/* Appends s to the growing string *buf (length *len, capacity *cap); in a
 * frame name (`name` set) ';' becomes ':' and a line break a blank, so the
 * name cannot split the line. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, int name)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (*len + n + 1 > c) c *= 2;
        char *p = realloc(*buf, c);
        if (!p) return MT_ENOMEM;
        *buf = p;
        *cap = c;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (name) ch = ch == ';' ? ':' : ch == '\n' || ch == '\r' ? ' ' : ch;
        (*buf)[(*len)++] = ch;
    }
    (*buf)[*len] = 0;
    return 0;
}

int mt_export_collapse(mt_stackfmt_t *sf, int64_t stack, char **out)
{
    const mt_stackfmt_frame_t *fr[MAX_FRAMES];
    int n, omitted;
    char *buf = NULL, name[512];
    size_t len = 0, cap = 0;
    *out = NULL;
    int rc = mt_stackfmt_frames(sf, stack, fr, MAX_FRAMES, &n, &omitted);
    if (rc) return rc;
    if (!n) rc = append(&buf, &len, &cap, "[no stack]", 1);
    if (!rc && omitted) {
        snprintf(name, sizeof name, "[%d more frames]", omitted);
        rc = append(&buf, &len, &cap, name, 1);
    }
    for (int i = n - 1; i >= 0 && !rc; i--) {
        const mt_stackfmt_frame_t *f = fr[i];
        const char *s = name;
        if (f->function && f->function[0]) s = f->function;
        else if (f->module && f->offset >= 0) {
            const char *base = strrchr(f->module, '/');
            snprintf(name, sizeof name, "[%s+0x%" PRIx64 "]", base ? base + 1 : f->module, (uint64_t)f->offset);
        } else snprintf(name, sizeof name, "[0x%" PRIx64 "]", f->ip);
        if (i != n - 1 || omitted) rc = append(&buf, &len, &cap, ";", 0);
        if (!rc) rc = append(&buf, &len, &cap, s, 1);
    }
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

static int64_t weight_of(const mt_site_t *s, int by)
{
    switch (by) {
    case BY_CALLS: return s->calls;
    case BY_LEAKED: return s->live_bytes;
    case BY_PEAK: return s->peak_bytes;
    default: return s->bytes;
    }
}

int mt_cmd_export(int argc, char **argv)
{
    static const char *const names[NBY] = {"bytes", "calls", "leaked", "peak"};
    mt_cli_t c = {.cmd = "export", .synopsis = SYNOPSIS, .usage = mt_usage_export, .has_layer = 1};
    const char *by_arg = NULL, *collapsed = NULL, *massif = NULL, *outpath = NULL;
    const mt_cli_opt_t opts[] = {
        {"--by", NULL, 1, &by_arg},
        {"--collapsed", NULL, 0, &collapsed},
        {"--massif", NULL, 0, &massif},
        {"--output", "-o", 1, &outpath},
    };
    int status = mt_cli_parse(&c, argc, argv, opts, 4);
    if (status >= 0) return status;
    if (massif && collapsed) return mt_cli_usage_error(&c, "%s", "give --collapsed or --massif, not both");
    if (massif && by_arg) return mt_cli_usage_error(&c, "%s", "--by weighs collapsed stacks: not with --massif");
    int by = BY_BYTES;
    if (by_arg) {
        for (by = 0; by < NBY && strcmp(by_arg, names[by]); by++) {
        }
        if (by == NBY) return mt_cli_usage_error(&c, "--by wants bytes, calls, leaked or peak, not '%s'", by_arg);
    }
    if (outpath && !*outpath) return mt_cli_usage_error(&c, "%s", "-o needs a file name");
    c.csv = 1; /* machine-readable output: notes go to stderr */
    status = 1;

    mt_db_t *db = NULL;
    mt_site_t *v = NULL;
    mt_stackfmt_t *sf = NULL;
    mt_heap_stats_t hs;
    line_t *lines = NULL;
    size_t n = 0, k = 0;
    FILE *out = stdout;
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    /* before the pass: a bad output path should not cost a pass over the trace */
    if (outpath && !(out = fopen(outpath, "w"))) {
        fprintf(stderr, "memtrace export: cannot write %s: %s\n", outpath, strerror(errno));
        out = stdout;
        goto out;
    }
    if (massif) {
        if ((rc = mt_massif_write(db, out, c.progress, c.layer, &hs))) goto fail;
        mt_cli_no_heap(&c, &hs);
        status = mt_cli_flush(&c, out);
        goto out;
    }
    if ((rc = mt_sites_heap(db, c.progress, c.layer, &v, &n, &hs))) goto fail;
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;
    if (n && !(lines = calloc(n, sizeof *lines))) {
        rc = MT_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t w = weight_of(&v[i], by);
        if (w <= 0) continue;
        if ((rc = mt_export_collapse(sf, v[i].stack, &lines[k].text))) goto fail;
        lines[k++].weight = w;
    }
    if (k) qsort(lines, k, sizeof *lines, by_text);

    for (size_t i = 0; i < k;) {
        int64_t w = lines[i].weight;
        size_t j = i + 1;
        for (; j < k && !strcmp(lines[j].text, lines[i].text); j++) w += lines[j].weight;
        fprintf(out, "%s %" PRId64 "\n", lines[i].text, w);
        i = j;
    }
    if (mt_cli_no_heap(&c, &hs)) {
        /* said so */
    } else if (!k)
        fprintf(stderr, "memtrace export: no stack has a %s weight above 0 in %s\n", names[by], c.path);
    status = mt_cli_flush(&c, out);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    if (out != stdout && fclose(out) != 0 && status == 0) {
        fprintf(stderr, "memtrace export: cannot write %s: %s\n", outpath, strerror(errno));
        status = 1;
    }
    if (out != stdout && status != 0) remove(outpath); /* no half-written file */
    for (size_t i = 0; i < k; i++) free(lines[i].text);
    free(lines);
    mt_stackfmt_close(sf);
    free(v);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
