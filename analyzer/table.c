/* table.c - the report writer (contract in table.h).
 *
 * Rows are held in memory as cells (a report has its top N rows, not
 * millions), so the text renderer can size every column from all of them
 * before printing: widths are the longest of the title and the formatted
 * cells.  Text cells are formatted twice (once to measure, once to print)
 * rather than stored formatted.
 */
#include "table.h"

#include "mt_error.h"
#include "mt_util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int set;     /* 0: NULL */
    int64_t i;
    double r;
    char *s;     /* TEXT: owned copy */
} cell_t;

struct mt_table {
    const mt_tcol_t *cols;
    mt_tcol_t *owned;  /* cols, when the table holds its own copy */
    int ncols;
    cell_t *cells;   /* rows * ncols */
    size_t rows, cap;
};

int mt_table_create(const mt_tcol_t *cols, int ncols, mt_table_t **out)
{
    assert(ncols > 0);
    for (int c = 0; c + 1 < ncols; c++) assert(cols[c].kind != MT_TCOL_STACK && cols[c].kind != MT_TCOL_FRAMES);
    *out = NULL;
    mt_table_t *t = calloc(1, sizeof *t);
    if (!t) return MT_ENOMEM;
    t->cols = cols;
    t->ncols = ncols;
    *out = t;
    return 0;
}

int mt_table_create_copy(const mt_tcol_t *cols, int ncols, mt_table_t **out)
{
    mt_tcol_t *copy = malloc((size_t)ncols * sizeof *copy);
    if (!copy) return MT_ENOMEM;
    memcpy(copy, cols, (size_t)ncols * sizeof *copy);
    int rc = mt_table_create(copy, ncols, out);
    if (rc) free(copy);
    else (*out)->owned = copy;
    return rc;
}

void mt_table_destroy(mt_table_t *t)
{
    if (!t) return;
    free(t->owned);
    for (size_t i = 0; i < t->rows * (size_t)t->ncols; i++) free(t->cells[i].s);
    free(t->cells);
    free(t);
}

int mt_table_row(mt_table_t *t)
{
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        cell_t *c = realloc(t->cells, cap * (size_t)t->ncols * sizeof *c);
        if (!c) return MT_ENOMEM;
        t->cells = c;
        t->cap = cap;
    }
    memset(&t->cells[t->rows * (size_t)t->ncols], 0, (size_t)t->ncols * sizeof *t->cells);
    t->rows++;
    return 0;
}

static cell_t *cell(mt_table_t *t, int col)
{
    assert(t->rows > 0 && col >= 0 && col < t->ncols);
    return &t->cells[(t->rows - 1) * (size_t)t->ncols + (size_t)col];
}

void mt_table_int(mt_table_t *t, int col, int64_t v)
{
    assert(t->cols[col].kind == MT_TCOL_INT || t->cols[col].kind == MT_TCOL_ID ||
           t->cols[col].kind == MT_TCOL_BYTES || t->cols[col].kind == MT_TCOL_STACK ||
           t->cols[col].kind == MT_TCOL_DELTA || t->cols[col].kind == MT_TCOL_ADDR);
    cell_t *c = cell(t, col);
    c->set = 1;
    c->i = v;
}

void mt_table_real(mt_table_t *t, int col, double v)
{
    assert(t->cols[col].kind == MT_TCOL_REAL);
    cell_t *c = cell(t, col);
    c->set = 1;
    c->r = v;
}

int mt_table_text(mt_table_t *t, int col, const char *v)
{
    assert(t->cols[col].kind == MT_TCOL_TEXT || t->cols[col].kind == MT_TCOL_FRAMES);
    cell_t *c = cell(t, col);
    free(c->s);
    c->s = NULL;
    c->set = v != NULL;
    if (v && !(c->s = strdup(v))) {
        c->set = 0;
        return MT_ENOMEM;
    }
    return 0;
}

size_t mt_table_rows(const mt_table_t *t) { return t->rows; }

/* One line of text for a text table: control characters show as \n, \t,
 * \r or '?'; at most `n` bytes of s; truncated to fit buf. */
static const char *printable(const char *s, size_t n, char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n && s[i] && o + 3 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != 0x7f) buf[o++] = (char)ch;
        else if (ch == '\n' || ch == '\t' || ch == '\r') {
            buf[o++] = '\\';
            buf[o++] = ch == '\n' ? 'n' : ch == '\t' ? 't' : 'r';
        } else buf[o++] = '?';
    }
    buf[o] = 0;
    return buf;
}

/* The text of a non-stack cell, for people (csv 0) or for CSV. */
static const char *cell_text(const mt_tcol_t *col, const cell_t *c, int csv, char *buf, size_t len)
{
    if (!c->set) return csv ? "" : "-";
    switch (col->kind) {
    case MT_TCOL_DELTA:
        if (csv) snprintf(buf, len, "%" PRId64, c->i);
        else {
            mt_fmt_bytes(buf + 1, len - 1, (double)c->i);
            if (c->i > 0) buf[0] = '+';
            else memmove(buf, buf + 1, strlen(buf + 1) + 1);
        }
        return buf;
    case MT_TCOL_ADDR:
        if (csv) snprintf(buf, len, "%" PRId64, c->i);
        else snprintf(buf, len, "0x%" PRIx64, (uint64_t)c->i);
        return buf;
    case MT_TCOL_FRAMES:
        return csv ? c->s : "";
    case MT_TCOL_INT:
        if (csv) snprintf(buf, len, "%" PRId64, c->i);
        else mt_fmt_count(buf, len, c->i);
        return buf;
    case MT_TCOL_BYTES:
        if (csv) snprintf(buf, len, "%" PRId64, c->i);
        else mt_fmt_bytes(buf, len, (double)c->i);
        return buf;
    case MT_TCOL_REAL:
        snprintf(buf, len, "%.*f", csv ? MT_TABLE_CSV_DECIMALS : col->decimals, c->r);
        return buf;
    case MT_TCOL_TEXT:
        if (csv) return c->s;
        return printable(c->s, SIZE_MAX, buf, len); /* one line per row */
    case MT_TCOL_ID:
    case MT_TCOL_STACK:
        snprintf(buf, len, "%" PRId64, c->i);
        return buf;
    }
    return "";
}

/* Characters of UTF-8 text (continuation bytes do not count). */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void pad(FILE *out, size_t n)
{
    while (n--) fputc(' ', out);
}

/* A FRAMES cell as one CSV field: its lines joined by MT_TABLE_CSV_SEP. */
static void write_frames_csv(FILE *out, const char *s)
{
    size_t n = 0, sep = strlen(MT_TABLE_CSV_SEP);
    for (const char *p = s; *p; p++) n += *p == '\n' ? sep : 1;
    char *j = malloc(n + 1);
    if (!j) { /* the field as it is: still one RFC 4180 field */
        mt_csv_field(out, s, strlen(s));
        return;
    }
    char *o = j;
    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            memcpy(o, MT_TABLE_CSV_SEP, sep);
            o += sep;
        } else *o++ = *p;
    }
    *o = 0;
    mt_csv_field(out, j, n);
    free(j);
}

static int write_csv(const mt_table_t *t, mt_stackfmt_t *sf, FILE *out)
{
    char buf[64];
    int first = 1;
    for (int c = 0; c < t->ncols; c++) {
        if (t->cols[c].only & MT_TCOL_ONLY_TEXT) continue;
        fprintf(out, "%s%s", first ? "" : ",", t->cols[c].csv);
        first = 0;
    }
    fputc('\n', out);
    for (size_t r = 0; r < t->rows; r++) {
        const cell_t *row = &t->cells[r * (size_t)t->ncols];
        first = 1;
        for (int c = 0; c < t->ncols; c++) {
            const mt_tcol_t *col = &t->cols[c];
            if (col->only & MT_TCOL_ONLY_TEXT) continue;
            if (!first) fputc(',', out);
            first = 0;
            if (col->kind == MT_TCOL_STACK) {
                char frames[4096];
                frames[0] = 0;
                if (row[c].set) {
                    int rc = mt_stackfmt_join(sf, row[c].i, MT_TABLE_FRAMES, MT_TABLE_CSV_SEP, frames,
                                              sizeof frames);
                    if (rc) return rc;
                }
                fprintf(out, "%s,", cell_text(col, &row[c], 1, buf, sizeof buf));
                mt_csv_field(out, frames, strlen(frames));
                continue;
            }
            if (col->kind == MT_TCOL_FRAMES) {
                if (row[c].set) write_frames_csv(out, row[c].s);
                continue;
            }
            const char *v = cell_text(col, &row[c], 1, buf, sizeof buf);
            mt_csv_field(out, v, strlen(v));
        }
        fputc('\n', out);
    }
    return 0;
}

/* Continuation line of a stack cell: the indent, then blanks up to the column. */
static void below(FILE *out, const char *indent, size_t at)
{
    fputc('\n', out);
    fputs(indent, out);
    pad(out, at);
}

/* The frames of a stack cell, the innermost first, the others below it. */
static int text_stack(const cell_t *c, mt_stackfmt_t *sf, FILE *out, const char *indent, size_t at)
{
    const mt_stackfmt_frame_t *fr[MT_TABLE_FRAMES];
    char frame[1024];
    int n, omitted;
    if (!c->set) {
        fputs("-", out);
        return 0;
    }
    int rc = mt_stackfmt_frames(sf, c->i, fr, MT_TABLE_FRAMES, &n, &omitted);
    if (rc) return rc;
    if (!n) fputs("(no stack)", out);
    for (int i = 0; i < n; i++) {
        if (i) below(out, indent, at);
        fputs(mt_stackfmt_frame_text(fr[i], frame, sizeof frame), out);
    }
    if (omitted) {
        below(out, indent, at);
        fprintf(out, "... %d more frame%s", omitted, omitted == 1 ? "" : "s");
    }
    return 0;
}

/* A FRAMES cell: its first line on the row, the others below it. */
static void text_frames(const cell_t *c, FILE *out, const char *indent, size_t at)
{
    char line[1024];
    if (!c->set) {
        fputs("-", out);
        return;
    }
    if (!c->s[0]) {
        fputs("(no stack)", out);
        return;
    }
    for (const char *p = c->s; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (p != c->s) below(out, indent, at);
        fputs(printable(p, n, line, sizeof line), out);
        p += n;
        if (*p) p++;
    }
}

/* One cell padded to width w: text left-aligned (no trailing blanks in the
 * last column), everything else right-aligned. */
static void text_cell(FILE *out, const mt_tcol_t *col, const char *v, size_t w, int last)
{
    size_t gap = w - width_of(v);
    int right = col->kind != MT_TCOL_TEXT && col->kind != MT_TCOL_STACK && col->kind != MT_TCOL_FRAMES;
    if (right) pad(out, gap);
    fputs(v, out);
    if (!right && !last) pad(out, gap);
}

static int write_text(const mt_table_t *t, mt_stackfmt_t *sf, FILE *out, const char *indent)
{
    size_t *width = calloc((size_t)t->ncols, sizeof *width);
    int *vis = calloc((size_t)t->ncols, sizeof *vis);
    int nvis = 0, rc = 0;
    char buf[1024];
    if (!width || !vis) {
        rc = MT_ENOMEM;
        goto out;
    }
    for (int c = 0; c < t->ncols; c++) {
        if (t->cols[c].only & MT_TCOL_ONLY_CSV) continue;
        vis[nvis++] = c;
        width[c] = width_of(t->cols[c].title);
        if (t->cols[c].kind == MT_TCOL_STACK || t->cols[c].kind == MT_TCOL_FRAMES) continue;
        for (size_t r = 0; r < t->rows; r++) {
            const cell_t *cl = &t->cells[r * (size_t)t->ncols + (size_t)c];
            size_t w = width_of(cell_text(&t->cols[c], cl, 0, buf, sizeof buf));
            if (w > width[c]) width[c] = w;
        }
    }
    /* where the last column starts, for the frames below a row */
    size_t last_at = 0;
    for (int v = 0; v + 1 < nvis; v++) last_at += width[vis[v]] + 2;

    fputs(indent, out);
    for (int v = 0; v < nvis; v++) {
        if (v) fputs("  ", out);
        text_cell(out, &t->cols[vis[v]], t->cols[vis[v]].title, width[vis[v]], v + 1 == nvis);
    }
    fputc('\n', out);
    for (size_t r = 0; r < t->rows && !rc; r++) {
        const cell_t *row = &t->cells[r * (size_t)t->ncols];
        fputs(indent, out);
        for (int v = 0; v < nvis && !rc; v++) {
            int c = vis[v];
            if (v) fputs("  ", out);
            if (t->cols[c].kind == MT_TCOL_STACK) rc = text_stack(&row[c], sf, out, indent, last_at);
            else if (t->cols[c].kind == MT_TCOL_FRAMES) text_frames(&row[c], out, indent, last_at);
            else text_cell(out, &t->cols[c], cell_text(&t->cols[c], &row[c], 0, buf, sizeof buf), width[c],
                           v + 1 == nvis);
        }
        fputc('\n', out);
    }
out:
    free(width);
    free(vis);
    return rc;
}

int mt_table_write(const mt_table_t *t, mt_stackfmt_t *sf, int csv, FILE *out, const char *indent)
{
    return csv ? write_csv(t, sf, out) : write_text(t, sf, out, indent ? indent : "");
}

static const char *const kind_names[] = {
    [MT_TCOL_INT] = "int", [MT_TCOL_ID] = "id", [MT_TCOL_BYTES] = "bytes", [MT_TCOL_REAL] = "real",
    [MT_TCOL_TEXT] = "text", [MT_TCOL_STACK] = "stack", [MT_TCOL_DELTA] = "delta", [MT_TCOL_ADDR] = "addr",
    [MT_TCOL_FRAMES] = "frames",
};

/* A stack cell as JSON: [id, ["frame", ...], omitted]. */
static int json_stack(const cell_t *c, mt_stackfmt_t *sf, FILE *out)
{
    const mt_stackfmt_frame_t *fr[MT_TABLE_FRAMES];
    char frame[1024];
    int n, omitted;
    int rc = mt_stackfmt_frames(sf, c->i, fr, MT_TABLE_FRAMES, &n, &omitted);
    if (rc) return rc;
    fprintf(out, "[%" PRId64 ",[", c->i);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', out);
        mt_stackfmt_frame_text(fr[i], frame, sizeof frame);
        mt_json_string(out, frame, strlen(frame));
    }
    fprintf(out, "],%d]", omitted);
    return 0;
}

int mt_table_write_json(const mt_table_t *t, mt_stackfmt_t *sf, size_t max_rows, FILE *out)
{
    fputs("{\"cols\":[", out);
    for (int c = 0; c < t->ncols; c++) {
        const mt_tcol_t *col = &t->cols[c];
        fprintf(out, "%s{\"title\":", c ? "," : "");
        mt_json_string(out, col->title, strlen(col->title));
        fputs(",\"csv\":", out);
        mt_json_string(out, col->csv, strlen(col->csv));
        fprintf(out, ",\"kind\":\"%s\",\"dec\":%d,\"text\":%d}", kind_names[col->kind], col->decimals,
                !(col->only & MT_TCOL_ONLY_CSV));
    }
    size_t rows = max_rows && max_rows < t->rows ? max_rows : t->rows;
    fprintf(out, "],\"total\":%zu,\"rows\":[", t->rows);
    for (size_t r = 0; r < rows; r++) {
        const cell_t *row = &t->cells[r * (size_t)t->ncols];
        fputs(r ? ",[" : "[", out);
        for (int c = 0; c < t->ncols; c++) {
            const cell_t *cl = &row[c];
            if (c) fputc(',', out);
            if (!cl->set) {
                fputs("null", out);
                continue;
            }
            switch (t->cols[c].kind) {
            case MT_TCOL_REAL:
                fprintf(out, "%.*f", MT_TABLE_CSV_DECIMALS, cl->r);
                break;
            case MT_TCOL_TEXT:
            case MT_TCOL_FRAMES:
                mt_json_string(out, cl->s, strlen(cl->s));
                break;
            case MT_TCOL_STACK: {
                int rc = json_stack(cl, sf, out);
                if (rc) return rc;
                break;
            }
            default:
                fprintf(out, "%" PRId64, cl->i);
            }
        }
        fputc(']', out);
    }
    fputs("]}", out);
    return 0;
}
