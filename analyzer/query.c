/* query.c - `memtrace query [--csv] [--header|--no-header] DB SQL`: runs one
 * read-only SQL statement on a trace and prints its rows.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h);
 * the escape hatch for questions the reports do not answer (docs/schema.md
 * documents the tables and views).
 *
 * Safety: the database is opened read-only, and a statement that SQLite
 * says writes is refused before it runs.
 *
 * Output:
 *   table  column names, a line of dashes, the rows; numbers right-aligned,
 *          text left, NULL empty.  Widths come from the first BUFFER_ROWS
 *          rows, which are held in memory; later rows are streamed with
 *          those widths (a wider value then pushes its row out of line), so
 *          a query over millions of events neither waits nor fills memory.
 *          Control characters in text show as \n, \t, \r or '?'.
 *   csv    RFC 4180 quoting, LF line ends, NULL as an empty field, rows
 *          streamed as they come.
 *   Blobs show as x'hex' in both.
 */
#include "mt_analyzer.h"

#include "mt_db.h"
#include "mt_util.h"
#include "mt_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFER_ROWS 100000
#define USAGE_LINE "usage: memtrace query [--csv] [--header|--no-header] DB SQL"

enum { CELL_NULL, CELL_NUM, CELL_TEXT };

typedef struct {
    size_t off, len;   /* text of the cell in rows_t.text */
    int kind;          /* CELL_* */
} cell_t;

/* Rows held for the width computation: cells in row order, text in one buffer. */
typedef struct {
    int ncols;
    char *text;
    size_t tlen, tcap;
    cell_t *cells;
    size_t ncells, ccap;
    size_t *width;     /* per column, in characters */
    int *numeric;      /* per column: every non-NULL cell held is a number */
} rows_t;

void mt_usage_query(FILE *out)
{
    fprintf(out,
            USAGE_LINE "\n"
            "\n"
            "Runs one read-only SQL statement on a trace and prints its rows.  The\n"
            "tables and views (events, stack_frames, processes, threads, meta, ...) are\n"
            "described in docs/schema.md.  Statements that write are refused.\n"
            "\n"
            "  --csv        RFC 4180 CSV instead of an aligned table\n"
            "  --header     print the column names (the default)\n"
            "  --no-header  do not print them\n"
            "  -h, --help   this text\n"
            "\n"
            "example: memtrace query trace.db \"SELECT kind, count(*) FROM events GROUP BY kind\"\n");
}

static int append(rows_t *r, const char *s, size_t n)
{
    if (r->tlen + n + 1 > r->tcap) {
        size_t cap = r->tcap ? r->tcap : 4096;
        while (r->tlen + n + 1 > cap) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) return MT_ENOMEM;
        r->text = t;
        r->tcap = cap;
    }
    memcpy(r->text + r->tlen, s, n);
    r->tlen += n;
    r->text[r->tlen] = 0;
    return 0;
}

/* Appends the text of column `col` of the current row, as the table shows it
 * (control characters escaped) or as CSV carries it (raw); *kind gets its
 * CELL_* kind. */
static int append_value(rows_t *r, mt_stmt_t *st, int col, int raw, int *kind)
{
    int type = mt_stmt_column_type(st, col); /* before any conversion */
    int rc = 0;
    if (type == MT_COL_NULL) {
        *kind = CELL_NULL;
        return 0;
    }
    if (type == MT_COL_BLOB) {
        int len;
        const unsigned char *b = mt_stmt_blob(st, col, &len);
        static const char hex[] = "0123456789abcdef";
        *kind = CELL_TEXT;
        rc = append(r, "x'", 2);
        for (int i = 0; i < len && !rc; i++) {
            char two[2] = {hex[b[i] >> 4], hex[b[i] & 15]};
            rc = append(r, two, 2);
        }
        return rc ? rc : append(r, "'", 1);
    }
    const char *v = mt_stmt_text(st, col);
    if (!v) return MT_ENOMEM; /* conversion of a non-NULL value failed */
    *kind = type == MT_COL_TEXT ? CELL_TEXT : CELL_NUM;
    if (raw || *kind == CELL_NUM) return append(r, v, strlen(v));
    for (const char *p = v; *p && !rc; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != 0x7f) rc = append(r, p, 1);
        else if (c == '\n') rc = append(r, "\\n", 2);
        else if (c == '\t') rc = append(r, "\\t", 2);
        else if (c == '\r') rc = append(r, "\\r", 2);
        else rc = append(r, "?", 1);
    }
    return rc;
}

/* Characters of UTF-8 text (continuation bytes do not count). */
static size_t text_width(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) w += ((unsigned char)s[i] & 0xc0) != 0x80;
    return w;
}


static void pad(FILE *out, size_t n)
{
    while (n--) fputc(' ', out);
}

/* One table cell: numbers right-aligned, others left (no trailing spaces on
 * the last column). */
static void table_cell(FILE *out, const rows_t *r, int col, const char *s, size_t n, int right)
{
    size_t w = text_width(s, n);
    size_t gap = r->width[col] > w ? r->width[col] - w : 0;
    if (col) fputs("  ", out);
    if (right) pad(out, gap);
    fwrite(s, 1, n, out);
    if (!right && col + 1 < r->ncols) pad(out, gap);
}

static void table_row(FILE *out, const rows_t *r, const cell_t *cells)
{
    for (int c = 0; c < r->ncols; c++)
        table_cell(out, r, c, r->text + cells[c].off, cells[c].len, cells[c].kind == CELL_NUM);
    fputc('\n', out);
}

/* Prints the held rows with widths computed from them and the names. */
static void table_flush(FILE *out, rows_t *r, mt_stmt_t *st, int header)
{
    for (int c = 0; c < r->ncols; c++) {
        const char *name = mt_stmt_column_name(st, c);
        r->width[c] = header && name ? text_width(name, strlen(name)) : 0;
        int any = 0, allnum = 1;
        for (size_t i = (size_t)c; i < r->ncells; i += (size_t)r->ncols) {
            const cell_t *cell = &r->cells[i];
            size_t w = text_width(r->text + cell->off, cell->len);
            if (w > r->width[c]) r->width[c] = w;
            if (cell->kind != CELL_NULL) {
                any = 1;
                allnum &= cell->kind == CELL_NUM;
            }
        }
        r->numeric[c] = any && allnum;
    }
    if (header) {
        for (int c = 0; c < r->ncols; c++) {
            const char *name = mt_stmt_column_name(st, c);
            if (!name) name = "";
            table_cell(out, r, c, name, strlen(name), r->numeric[c]);
        }
        fputc('\n', out);
        for (int c = 0; c < r->ncols; c++) {
            if (c) fputs("  ", out);
            for (size_t i = 0; i < r->width[c]; i++) fputc('-', out);
        }
        fputc('\n', out);
    }
    for (size_t i = 0; i < r->ncells; i += (size_t)r->ncols) table_row(out, r, &r->cells[i]);
    r->ncells = 0;
    r->tlen = 0;
}

/* Reads the current row into r (appending its cells). */
static int read_row(rows_t *r, mt_stmt_t *st, int raw)
{
    if (r->ncells + (size_t)r->ncols > r->ccap) {
        size_t cap = r->ccap ? r->ccap * 2 : (size_t)r->ncols * 256;
        cell_t *c = realloc(r->cells, cap * sizeof *c);
        if (!c) return MT_ENOMEM;
        r->cells = c;
        r->ccap = cap;
    }
    for (int c = 0; c < r->ncols; c++) {
        cell_t *cell = &r->cells[r->ncells + (size_t)c];
        cell->off = r->tlen;
        int rc = append_value(r, st, c, raw, &cell->kind);
        if (rc) return rc;
        cell->len = r->tlen - cell->off;
    }
    r->ncells += (size_t)r->ncols;
    return 0;
}

/* Runs the statement and prints its rows.  Returns 0 or the step error. */
static int print_rows(mt_stmt_t *st, int csv, int header, FILE *out)
{
    rows_t r = {.ncols = mt_stmt_columns(st)};
    size_t held = 0;
    int flushed = 0, rc = 0;
    if (r.ncols == 0) { /* e.g. a PRAGMA that reports nothing */
        while ((rc = mt_stmt_step(st)) == 1) {
        }
        return rc;
    }
    r.width = calloc((size_t)r.ncols, sizeof *r.width);
    r.numeric = calloc((size_t)r.ncols, sizeof *r.numeric);
    if (!r.width || !r.numeric) {
        rc = MT_ENOMEM;
        goto out;
    }
    if (csv && header) {
        for (int c = 0; c < r.ncols; c++) {
            const char *name = mt_stmt_column_name(st, c);
            if (c) fputc(',', out);
            if (name) mt_csv_field(out, name, strlen(name));
        }
        fputc('\n', out);
    }
    while ((rc = mt_stmt_step(st)) == 1) {
        if ((rc = read_row(&r, st, csv))) goto out;
        if (csv) {
            for (int c = 0; c < r.ncols; c++) {
                if (c) fputc(',', out);
                mt_csv_field(out, r.text + r.cells[c].off, r.cells[c].len);
            }
            fputc('\n', out);
            r.ncells = 0;
            r.tlen = 0;
        } else if (flushed) {
            table_row(out, &r, r.cells);
            r.ncells = 0;
            r.tlen = 0;
        } else if (++held == BUFFER_ROWS) {
            table_flush(out, &r, st, header);
            flushed = 1;
        }
    }
    if (rc == 0 && !csv && !flushed) table_flush(out, &r, st, header);
out:
    free(r.text);
    free(r.cells);
    free(r.width);
    free(r.numeric);
    return rc;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "memtrace query: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (" USAGE_LINE ")\n");
    return 2;
}

int mt_cmd_query(int argc, char **argv)
{
    int csv = 0, header = 1, opts_done = 0, status = 1, rc;
    const char *path = NULL, *sql = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || !a[1]) {
            if (!path) path = a;
            else if (!sql) sql = a;
            else return usage_error("unexpected argument '%s' (quote the SQL as one argument)", a);
        } else if (!strcmp(a, "--")) {
            opts_done = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            mt_usage_query(stdout);
            return 0;
        } else if (!strcmp(a, "--csv")) {
            csv = 1;
        } else if (!strcmp(a, "--header")) {
            header = 1;
        } else if (!strcmp(a, "--no-header")) {
            header = 0;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (!path) return usage_error("%s", "missing DB and SQL");
    if (!sql) return usage_error("%s", "missing SQL");

    /* a derived table named for the first time is built, once (derive.c) */
    if (mt_derive_if_needed(path, sql, "query")) return 1;
    mt_db_t *db = NULL;
    mt_stmt_t *st = NULL;
    char err[512];
    if (mt_db_open(path, MT_DB_READONLY, &db, err, sizeof err)) {
        fprintf(stderr, "memtrace query: %s\n", err);
        return 1;
    }
    rc = mt_stmt_prepare(db, sql, &st);
    if (rc == MT_EINVAL) {
        fprintf(stderr, "memtrace query: no SQL statement given\n");
        goto out;
    }
    if (rc) goto fail;
    if (!mt_stmt_readonly(st)) {
        fprintf(stderr, "memtrace query: refusing a statement that writes; query only reads a trace\n");
        goto out;
    }
    if ((rc = print_rows(st, csv, header, stdout))) goto fail;
    if (fflush(stdout) != 0) {
        fprintf(stderr, "memtrace query: cannot write the output\n");
        goto out;
    }
    status = 0;
    goto out;
fail:
    if (rc == MT_ENOMEM) fprintf(stderr, "memtrace query: out of memory\n");
    else fprintf(stderr, "memtrace query: %s\n", mt_db_errmsg(db));
out:
    mt_stmt_finalize(st);
    mt_db_close(db);
    return status;
}
