/* mt_analyzer.h - the analyzer's subcommands, called by tracer/main.c.
 *
 * Each entry point takes the subcommand's own argv (argv[0] is the
 * subcommand name), prints results on stdout and errors as one line on
 * stderr, and returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef MT_ANALYZER_H
#define MT_ANALYZER_H

#include <stdio.h>

int mt_cmd_summary(int argc, char **argv);
int mt_cmd_query(int argc, char **argv);
int mt_cmd_leaks(int argc, char **argv);
int mt_cmd_peak(int argc, char **argv);
int mt_cmd_top(int argc, char **argv);
int mt_cmd_temporary(int argc, char **argv);
int mt_cmd_growth(int argc, char **argv);
int mt_cmd_export(int argc, char **argv);
int mt_cmd_timeline(int argc, char **argv);
int mt_cmd_diff(int argc, char **argv);
int mt_cmd_layout(int argc, char **argv);
int mt_cmd_retained(int argc, char **argv);
int mt_cmd_python(int argc, char **argv);
int mt_cmd_gc(int argc, char **argv);
int mt_cmd_derive(int argc, char **argv);
int mt_cmd_maps(int argc, char **argv);
int mt_cmd_report(int argc, char **argv);

/* Usage text of each subcommand (for `memtrace help CMD` and errors). */
void mt_usage_summary(FILE *out);
void mt_usage_query(FILE *out);
void mt_usage_leaks(FILE *out);
void mt_usage_peak(FILE *out);
void mt_usage_top(FILE *out);
void mt_usage_temporary(FILE *out);
void mt_usage_growth(FILE *out);
void mt_usage_export(FILE *out);
void mt_usage_timeline(FILE *out);
void mt_usage_diff(FILE *out);
void mt_usage_layout(FILE *out);
void mt_usage_retained(FILE *out);
void mt_usage_python(FILE *out);
void mt_usage_gc(FILE *out);
void mt_usage_derive(FILE *out);
void mt_usage_maps(FILE *out);

/* Builds the derived tables a statement names (lifetimes) when the trace
 * lacks them (analyzer/derive.c).  Returns 0, or 1 after a message. */
int mt_derive_if_needed(const char *path, const char *sql, const char *cmd);
void mt_usage_report(FILE *out);

#endif
