/* main.c - the `memtrace` command: dispatches to the subcommands.
 *
 *   memtrace [run] [OPTIONS] [--] PROGRAM ARGS   record (tracer/run.c)
 *   memtrace attach PID                          the OS layer of a running process
 *   memtrace summary DB                          analyzer/summary.c
 *   memtrace query DB SQL                        analyzer/query.c
 */
#include "mt_analyzer.h"
#include "mt_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int, char **);
    void (*usage)(FILE *);
    const char *what;
} command_t;

static const command_t commands[] = {
    {"run", mt_cmd_run, mt_usage_run, "run a program and record its allocations (the default)"},
    {"attach", mt_cmd_attach, mt_usage_attach, "record the OS layer of a running process (ptrace)"},
    {"summary", mt_cmd_summary, mt_usage_summary, "what a trace shows: layers, peak, leaks, temporaries"},
    {"query", mt_cmd_query, mt_usage_query, "run read-only SQL on a trace"},
    {"leaks", mt_cmd_leaks, mt_usage_leaks, "heap blocks still live at the end, by allocation stack"},
    {"peak", mt_cmd_peak, mt_usage_peak, "the moment of the heap's peak and what was live then"},
    {"top", mt_cmd_top, mt_usage_top, "allocation sites by calls, bytes or share of the peak"},
    {"temporary", mt_cmd_temporary, mt_usage_temporary, "allocations freed by the next heap call, by stack"},
    {"growth", mt_cmd_growth, mt_usage_growth, "realloc chains: growth factors, moves, bytes copied"},
    {"export", mt_cmd_export, mt_usage_export, "allocation stacks for flame graphs, or the heap for massif tools"},
    {"timeline", mt_cmd_timeline, mt_usage_timeline, "heap, mapped, arena and resident bytes over time"},
    {"diff", mt_cmd_diff, mt_usage_diff, "what grew from one trace to another, by allocation stack"},
    {"layout", mt_cmd_layout, mt_usage_layout, "the bundled allocator's arenas and pools at one moment"},
    {"retained", mt_cmd_retained, mt_usage_retained, "memory freed but kept, per layer, over time, and what pins it"},
    {"python", mt_cmd_python, mt_usage_python, "CPython's layers: domains, arenas, GC runs, growth, start-up"},
    {"gc", mt_cmd_gc, mt_usage_gc, "CPython's garbage collections with the allocations that triggered them"},
    {"maps", mt_cmd_maps, mt_usage_maps, "the OS layer's mappings at one moment, and what each is"},
    {"derive", mt_cmd_derive, mt_usage_derive, "store derived tables (block lifetimes) in a trace for SQL"},
    {"report", mt_cmd_report, mt_usage_report, "one HTML page with charts and a flame graph, and CSV files of every view"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "memtrace %s - records every allocation event of a program into SQLite\n"
            "\n"
            "usage: memtrace [run] [OPTIONS] [--] PROGRAM [ARGS...]\n"
            "       memtrace COMMAND [OPTIONS] ...\n"
            "\n"
            "Commands:\n",
            MT_VERSION_STRING);
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].what);
    fprintf(out,
            "  help CMD   the usage of one command\n"
            "\n"
            "Examples:\n"
            "  memtrace ./myprog arg1          writes memtrace.myprog.PID.db\n"
            "  memtrace summary memtrace.myprog.PID.db\n"
            "  memtrace query memtrace.myprog.PID.db \"SELECT kind, count(*) FROM events GROUP BY kind\"\n"
            "\n"
            "The database schema is documented in docs/schema.md.\n");
}

static const command_t *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    /* symbolization reads local files only: never fetch debug info over a
     * network while finishing a trace (the program keeps its setting) */
    const char *urls = getenv("DEBUGINFOD_URLS");
    if (urls) mt_debuginfod_urls = strdup(urls);
    unsetenv("DEBUGINFOD_URLS");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *a = argv[1];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
        printf("memtrace %s\n", MT_VERSION_STRING);
        return 0;
    }
    if (!strcmp(a, "help")) {
        const command_t *c = argc > 2 ? find(argv[2]) : NULL;
        if (argc > 2 && !c) {
            fprintf(stderr, "memtrace: no command '%s' (see memtrace --help)\n", argv[2]);
            return 2;
        }
        if (c) c->usage(stdout);
        else usage(stdout);
        return 0;
    }
    const command_t *c = find(a);
    if (c) return c->run(argc - 1, argv + 1);
    /* memtrace [OPTIONS] PROGRAM: run is implied */
    return mt_cmd_run(argc, argv);
}
