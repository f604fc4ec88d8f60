/* cli.h - what every report subcommand does the same way.
 *
 * Place in the pipeline: analyzer.  The report subcommands (leaks, peak,
 * top, temporary, growth, export) share their command-line conventions and
 * their start-up through this module:
 *
 *   parsing   the DB path, `--csv`, `--top N`, `-h/--help`, `--`, and the
 *             command's own options from a table; a usage error is one line
 *             "memtrace CMD: what is wrong (usage: memtrace CMD SYNOPSIS)"
 *             on stderr and exit status 2;
 *   opening   mt_db_open(MT_DB_READONLY); its message and exit status 1 on
 *             failure; a trace whose meta.complete is 0 is read anyway, with
 *             the warning "memtrace: warning: trace is incomplete: REASON";
 *   pids      processes.id -> pid for the reports' pid column;
 *   endings   the message for a failed pass, the flush of stdout.
 */
#ifndef MT_CLI_H
#define MT_CLI_H

#include "heapmodel.h"
#include "mt_db.h"

#include <stdint.h>
#include <stdio.h>

#define MT_CLI_DEFAULT_TOP 10
#define MT_CLI_MAX_TOP 1000000000

/* A command's own option: `--name VALUE`, `--name=VALUE`, or a flag. */
typedef struct {
    const char *name;    /* "--by" */
    const char *short_name; /* "-o" or NULL */
    int takes_value;     /* 0: a flag (value is set to "1") */
    const char **value;  /* receives the value */
} mt_cli_opt_t;

typedef struct {
    /* set by the command before mt_cli_parse */
    const char *cmd;        /* "leaks" */
    const char *synopsis;   /* "[--top N] [--csv] DB", for usage errors */
    void (*usage)(FILE *);  /* full usage text for -h */
    int has_top, has_csv;   /* accepts --top / --csv */
    int has_layer;          /* accepts --layer NAME (the heap model's layer) */
    const char *second;     /* NULL, or the second DB argument's name in
                               usage errors ("B.db"): the command compares
                               two traces (path, then path2) */
    int name_in_warning;    /* the incomplete-trace warning names the file */
    /* results */
    const char *path;       /* the DB argument */
    const char *path2;      /* the second one, when `second` is set */
    int64_t top;            /* --top N; 0: every row */
    int csv;
    int layer;              /* --layer: mt_domain_t (default libc) */
    /* filled by mt_cli_open */
    int complete;           /* meta.complete: 1, 0, or -1 when absent */
    struct mt_cli_proc { int64_t id, pid; } *procs;
    size_t nprocs;
    char progress[64];      /* "memtrace CMD: reading events" */
} mt_cli_t;

/* Parses argv (argv[0] is the command name).  Returns -1 when the command
 * should go on, or the exit status to return: 0 after printing the usage
 * for -h/--help, 2 after printing a usage error. */
int mt_cli_parse(mt_cli_t *c, int argc, char **argv, const mt_cli_opt_t *opts, int nopts);

/* Prints a usage error (fmt has one %s for arg) and returns 2. */
int mt_cli_usage_error(const mt_cli_t *c, const char *fmt, const char *arg);

/* Option values.  A whole decimal integer in [lo, hi] into *out; a number
 * of milliseconds (0 or more, fractions allowed) into *ns in nanoseconds.
 * Return 0, or -1 (out untouched) for anything else. */
int mt_cli_int(const char *v, int64_t lo, int64_t hi, int64_t *out);
int mt_cli_ms(const char *v, int64_t *ns);

/* Opens c->path read-only, warns when the trace is incomplete ("trace
 * PATH is incomplete" with name_in_warning), reads the process ids.
 * Returns 0, or 1 after printing why (*db is then NULL). */
int mt_cli_open(mt_cli_t *c, mt_db_t **db);

/* pid of processes.id `process`, or -1 when unknown. */
int64_t mt_cli_pid(const mt_cli_t *c, int64_t process);

/* Prints the failure `rc` of a pass (out of memory, or the database's
 * message) and returns 1. */
int mt_cli_fail(const mt_cli_t *c, mt_db_t *db, int rc);

/* When the heap model saw no heap allocation (hs->allocs is 0), says so,
 * in words that tell "no heap events at all" from "only frees of blocks
 * allocated before tracing", and returns 1; otherwise returns 0.  The note
 * goes to stdout for text output, to stderr for CSV (whose caller prints
 * the header row alone). */
int mt_cli_no_heap(const mt_cli_t *c, const mt_heap_stats_t *hs);

/* The trace's duration in ns: meta.duration_ns, else the time of its last
 * event (0 without events).  Returns 0 or a database error. */
int mt_cli_duration(mt_db_t *db, int64_t *ns);

/* Flushes stdout; returns 0, or 1 after a message when writing failed. */
int mt_cli_flush(const mt_cli_t *c, FILE *out);

/* Frees what mt_cli_open allocated. */
void mt_cli_free(mt_cli_t *c);

/* "97.7 KiB (100,000 bytes)", or "512 bytes" below 1 KiB, into buf. */
const char *mt_cli_bytes(char *buf, size_t len, int64_t v);

/* "s" unless n is 1. */
const char *mt_cli_plural(int64_t n);

#endif
