/* report.c - `memtrace report [--html FILE] [--csv DIR] [--top N]
 * [--points N] DB`: one HTML page a person looks at, and one CSV file per
 * view for programs.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * mt_report_build (report_model.h) reads the trace into tables; this file
 * writes them as CSV files, report_html.c as the page.  Both outputs come
 * from the one model built once, so asking for both costs one pass.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "mt_error.h"
#include "mt_util.h"
#include "report_model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SYNOPSIS "[--html FILE] [--csv DIR] [--top N] [--points N] DB"
#define DEFAULT_TOP 100
#define MAX_POINTS 100000

void mt_usage_report(FILE *out)
{
    fprintf(out,
            "usage: memtrace report " SYNOPSIS "\n"
            "\n"
            "Writes a report of the trace DB: an HTML page (--html), CSV files (--csv),\n"
            "or both from one reading of the trace.  At least one of them is needed.\n"
            "\n"
            "The page is one self-contained file that opens offline in any browser (no\n"
            "network, no external script or font):\n"
            "  - the command line, duration, processes and threads, whether the\n"
            "    recording is complete, and a verdict: heap peak, leaked, retained;\n"
            "  - the layers of the allocator stack (OS, C library, raw, object\n"
            "    allocator, object-specific) with this run's calls and bytes;\n"
            "  - memory over time per layer with the RSS, marks for main entry, fork,\n"
            "    exec, interpreter moments and garbage collector runs; hover for values;\n"
            "  - a flame graph (icicle) of the allocation stacks, weighted by bytes\n"
            "    allocated, calls, bytes live at the peak or bytes leaked; click to\n"
            "    zoom; a search box marks functions;\n"
            "  - sortable tables: top leaks, temporary allocations, allocation sites,\n"
            "    realloc growth chains, garbage collector runs with their triggers;\n"
            "  - the bundled allocator's arenas and pools at %d moments (a slider),\n"
            "    each pool coloured by how full it is.\n"
            "The page holds aggregated tables, not events: its size follows the\n"
            "number of stacks, not the length of the trace.  Sections without data in\n"
            "this trace say so.  Names from the traced program are shown as text.\n"
            "\n"
            "The CSV files (RFC 4180, a header row each, every row, exact integers) are\n"
            "the tables the page draws, one per view:\n",
            MT_REPORT_SNAPSHOTS);
    for (int i = 0; i < MT_RT_COUNT; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s.csv", mt_report_table_name(i));
        fprintf(out, "  %-14s %s\n", name, mt_report_table_what(i));
    }
    fprintf(out,
            "leaks.csv, temporary.csv, top.csv, growth.csv and timeline.csv are the bytes\n"
            "of `memtrace leaks|temporary|top|growth --csv --top 0 DB` and of\n"
            "`memtrace timeline --csv --points N DB`.  docs/reports.md describes every\n"
            "column.\n"
            "\n"
            "Options:\n"
            "  --html FILE  write the page to FILE (replaced; removed again on failure)\n"
            "  --csv DIR    write the CSV files into DIR (created when missing; files\n"
            "               of the same names are replaced)\n"
            "  --top N      rows of the leaks, temporary, sites, growth and garbage\n"
            "               collector tables on the page (default %d; 0: all); the CSV\n"
            "               files always have every row\n"
            "  --points N   points of the memory-over-time chart and timeline.csv\n"
            "               (default %d, at most %d)\n"
            "  -h, --help   this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read or a file written, 2 usage\n"
            "error.\n"
            "\n"
            "Example:\n"
            "  memtrace report --html report.html --csv report-csv memtrace.myprog.1234.db\n",
            DEFAULT_TOP, MT_REPORT_POINTS, MAX_POINTS);
}

int mt_report_csv(const mt_report_t *r, mt_stackfmt_t *sf, const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return MT_EIO;
    }
    for (int i = 0; i < MT_RT_COUNT; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.csv", dir, mt_report_table_name(i));
        FILE *f = fopen(path, "w");
        if (!f) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            return MT_EIO;
        }
        int rc = mt_table_write(r->t[i], sf, 1, f, NULL);
        int bad = ferror(f);
        if (fclose(f) != 0 || bad || rc) {
            snprintf(err, errlen, "cannot write %s: %s", path, rc ? mt_strerror(rc) : strerror(errno));
            return rc ? rc : MT_EIO;
        }
    }
    return 0;
}

int mt_cmd_report(int argc, char **argv)
{
    mt_cli_t c = {.cmd = "report", .synopsis = SYNOPSIS, .usage = mt_usage_report};
    const char *html = NULL, *csv = NULL, *top_arg = NULL, *points_arg = NULL;
    const mt_cli_opt_t opts[] = {
        {"--html", NULL, 1, &html},
        {"--csv", NULL, 1, &csv},
        {"--top", NULL, 1, &top_arg},
        {"--points", NULL, 1, &points_arg},
    };
    int status = mt_cli_parse(&c, argc, argv, opts, 4);
    if (status >= 0) return status;
    int64_t top = DEFAULT_TOP, points = MT_REPORT_POINTS;
    if (!html && !csv) return mt_cli_usage_error(&c, "%s", "give --html FILE, --csv DIR, or both");
    if (top_arg && mt_cli_int(top_arg, 0, MT_CLI_MAX_TOP, &top))
        return mt_cli_usage_error(&c, "--top wants a count, not '%s'", top_arg);
    if (points_arg && mt_cli_int(points_arg, 1, MAX_POINTS, &points))
        return mt_cli_usage_error(&c, "--points wants a count from 1 to 100000, not '%s'", points_arg);
    status = 1;

    mt_db_t *db = NULL;
    mt_report_t *r = NULL;
    mt_stackfmt_t *sf = NULL;
    FILE *out = NULL;
    char err[4200];
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    /* before the pass: a bad output path should not cost a pass over the trace */
    if (html && !(out = fopen(html, "w"))) {
        fprintf(stderr, "memtrace report: cannot write %s: %s\n", html, strerror(errno));
        goto out;
    }
    mt_report_opts_t o = {.points = points};
    if ((rc = mt_report_build(db, &c, &o, &r)) || (rc = mt_stackfmt_open(db, &sf))) goto fail;
    if (csv && mt_report_csv(r, sf, csv, err, sizeof err)) {
        fprintf(stderr, "memtrace report: %s\n", err);
        goto out;
    }
    if (out) {
        if ((rc = mt_report_html(r, sf, c.path, (size_t)top, out))) goto fail;
        int bad = ferror(out);
        FILE *f = out;
        out = NULL;
        if (fclose(f) != 0 || bad) {
            fprintf(stderr, "memtrace report: cannot write %s: %s\n", html, strerror(errno));
            remove(html);
            goto out;
        }
    }
    if (r->heap.allocs == 0) {
        mt_cli_t note = c;
        note.csv = 1; /* the note goes to stderr: stdout is not the report */
        mt_cli_no_heap(&note, &r->heap);
    }
    status = 0;
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    if (out) {
        fclose(out);
        remove(html); /* no half-written page */
    }
    mt_stackfmt_close(sf);
    mt_report_destroy(r);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
