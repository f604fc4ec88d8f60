/* mt_run.h - `memtrace run` and `memtrace attach` (tracer/run.c), called by
 * tracer/main.c. */
#ifndef MT_RUN_H
#define MT_RUN_H

#include <stdio.h>

#ifndef MT_VERSION_STRING
#define MT_VERSION_STRING "0.1.0"
#endif

/* argv[0] is "run" (or the first argument when the subcommand was implied).
 * Returns the exit status memtrace should exit with. */
int mt_cmd_run(int argc, char **argv);
void mt_usage_run(FILE *out);

/* `memtrace attach PID`: the OS layer of a running process, with ptrace,
 * until it ends or memtrace is told to detach (SIGINT). */
int mt_cmd_attach(int argc, char **argv);
void mt_usage_attach(FILE *out);

/* The program's $DEBUGINFOD_URLS (NULL: unset), which main() removes from
 * memtrace's own environment (symbolization reads local files only) and
 * `memtrace run` gives back to the program. */
extern const char *mt_debuginfod_urls;

#endif
