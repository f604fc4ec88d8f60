/* table.h - the report writer: one table model, two renderers.
 *
 * Place in the pipeline: analyzer.  A report (leaks, peak, top, temporary,
 * growth) collects its rows into an mt_table_t, then renders it either as
 * an aligned text table for people or as CSV for programs (and, for
 * `memtrace report`'s page, as JSON), so the outputs cannot disagree.
 *
 * Columns have a kind:
 *   MT_TCOL_INT    integer; text "1,234,567" right-aligned, CSV "1234567"
 *   MT_TCOL_ID     integer without separators (pids, ids), right-aligned
 *   MT_TCOL_BYTES  integer byte count; text "97.7 KiB" right-aligned (exact
 *                  below 1 KiB), CSV the exact integer
 *   MT_TCOL_REAL   double; text with `decimals` places, right-aligned; CSV
 *                  with MT_TABLE_CSV_DECIMALS places
 *   MT_TCOL_DELTA  integer byte difference; text "+97.7 KiB" / "-512 B" /
 *                  "0 B" right-aligned, CSV the exact integer
 *   MT_TCOL_ADDR   integer address; text "0x7f12c0000000" right-aligned,
 *                  CSV the exact integer (as the schema stores addresses)
 *   MT_TCOL_TEXT   string; text left-aligned
 *   MT_TCOL_STACK  a stack id (event_data.stack); must be the last column.
 *                  Text: the stack's frames (stackfmt.h), the innermost on
 *                  the row's line and its callers on the lines below, under
 *                  it.  CSV: two fields, the id and the frames joined by
 *                  " <- " (innermost first).
 *   MT_TCOL_FRAMES frames already formatted, one per line ('\n' between
 *                  them), for stacks that are not ids of one trace (a
 *                  comparison of two); must be the last column.  Text: as
 *                  a stack, "(no stack)" when empty.  CSV: one field, the
 *                  lines joined by " <- ".
 * Any cell may be NULL: "-" in text, an empty field in CSV.  CSV quoting is
 * RFC 4180 (mt_csv_field), lines end with LF.
 */
#ifndef MT_TABLE_H
#define MT_TABLE_H

#include "stackfmt.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    MT_TCOL_INT, MT_TCOL_ID, MT_TCOL_BYTES, MT_TCOL_REAL, MT_TCOL_TEXT, MT_TCOL_STACK,
    MT_TCOL_DELTA, MT_TCOL_ADDR, MT_TCOL_FRAMES
} mt_tcol_kind_t;

typedef struct {
    const char *title;  /* text header */
    const char *csv;    /* CSV header ("stack_id,frames" style for a stack column) */
    mt_tcol_kind_t kind;
    int decimals;       /* MT_TCOL_REAL: places after the point in text */
    unsigned only;      /* 0: both outputs; MT_TCOL_ONLY_TEXT or MT_TCOL_ONLY_CSV */
} mt_tcol_t;

#define MT_TCOL_ONLY_TEXT 1u
#define MT_TCOL_ONLY_CSV  2u

typedef struct mt_table mt_table_t;

#define MT_TABLE_FRAMES MT_STACKFMT_DEPTH /* frames shown per stack */
#define MT_TABLE_CSV_SEP " <- "          /* between the frames of a CSV stack field */
#define MT_TABLE_CSV_DECIMALS 4          /* places of a REAL cell in CSV */

/* A table with `ncols` columns described by cols[] (which must outlive it).
 * Returns 0 or MT_ENOMEM. */
int mt_table_create(const mt_tcol_t *cols, int ncols, mt_table_t **out);

/* The same, with a copy of cols[] kept by the table (for columns made up at
 * run time).  Returns 0 or MT_ENOMEM. */
int mt_table_create_copy(const mt_tcol_t *cols, int ncols, mt_table_t **out);

/* Frees the table.  NULL is fine. */
void mt_table_destroy(mt_table_t *t);

/* Starts a new row, every cell NULL.  Returns 0 or MT_ENOMEM. */
int mt_table_row(mt_table_t *t);

/* Sets cell `col` of the last row (an INT, ID, BYTES, DELTA, ADDR or STACK
 * column; a REAL one; a TEXT or FRAMES one, copied).  Return 0, or
 * MT_ENOMEM for text. */
void mt_table_int(mt_table_t *t, int col, int64_t v);
void mt_table_real(mt_table_t *t, int col, double v);
int mt_table_text(mt_table_t *t, int col, const char *v);

/* Number of rows added. */
size_t mt_table_rows(const mt_table_t *t);

/* Writes the table: aligned text (a header line, then the rows, each line
 * after `indent`) or CSV (a header row, then the rows).  `sf` formats stack
 * columns (may be NULL when there is none).  Returns 0 or an error of
 * stackfmt. */
int mt_table_write(const mt_table_t *t, mt_stackfmt_t *sf, int csv, FILE *out, const char *indent);

/* The third renderer, for `memtrace report`'s page: the table as one JSON
 * object {"cols": [{"title", "csv", "kind", "dec", "text"}], "total": ROWS,
 * "rows": [[cell, ...], ...]} with at most max_rows rows (0: all).  Cells
 * hold the exact values (null when unset; a REAL with the CSV's decimals); a
 * STACK cell is [stack_id, ["frame", ...], frames_omitted].  Strings are
 * escaped by mt_json_string (safe inside an HTML <script> element).
 * Returns 0 or an error of stackfmt. */
int mt_table_write_json(const mt_table_t *t, mt_stackfmt_t *sf, size_t max_rows, FILE *out);

#endif
