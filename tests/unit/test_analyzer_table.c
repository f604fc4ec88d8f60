/* test_analyzer_table.c - unit tests of the report writer
 * (analyzer/table.c): the same rows rendered as CSV (RFC 4180 quoting,
 * CSV-only columns, NULL cells) and as an aligned text table (widths,
 * right-aligned numbers, text-only columns), compared byte for byte; and
 * the kinds of comparisons and layouts: signed byte changes, addresses,
 * preformatted frames; and the JSON renderer of `memtrace report`'s page
 * (exact values, column kinds, the row limit, escaping).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C_RANK, C_ID, C_BYTES, C_REAL, C_TEXT, C_HIDDEN, NCOLS };

static const mt_tcol_t cols[NCOLS] = {
    [C_RANK] = {"#", "rank", MT_TCOL_INT, 0, 0},
    [C_ID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [C_BYTES] = {"bytes", "bytes", MT_TCOL_BYTES, 0, 0},
    [C_REAL] = {"factor", "factor", MT_TCOL_REAL, 2, 0},
    [C_TEXT] = {"where", "where", MT_TCOL_TEXT, 0, MT_TCOL_ONLY_TEXT},
    [C_HIDDEN] = {"raw", "raw_text", MT_TCOL_TEXT, 0, MT_TCOL_ONLY_CSV},
};

/* Renders t and returns what was written (free it). */
static char *render(const mt_table_t *t, int csv)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(mt_table_write(t, NULL, csv, f, "  "), 0);
    fclose(f);
    return buf;
}

static mt_table_t *sample(void)
{
    mt_table_t *t;
    assert_int_equal(mt_table_create(cols, NCOLS, &t), 0);
    assert_int_equal(mt_table_row(t), 0);
    mt_table_int(t, C_RANK, 1);
    mt_table_int(t, C_ID, 12345);
    mt_table_int(t, C_BYTES, 1234567);
    mt_table_real(t, C_REAL, 1.5);
    assert_int_equal(mt_table_text(t, C_TEXT, "f (a.c:1)"), 0);
    assert_int_equal(mt_table_text(t, C_HIDDEN, "odd,\"name\""), 0);
    assert_int_equal(mt_table_row(t), 0);
    mt_table_int(t, C_RANK, 1000);
    mt_table_int(t, C_BYTES, 100);
    assert_int_equal(mt_table_text(t, C_TEXT, "line\nbreak"), 0);
    assert_int_equal(mt_table_text(t, C_HIDDEN, "x"), 0);
    return t;
}

static void test_csv(void **state)
{
    (void)state;
    mt_table_t *t = sample();
    assert_int_equal(mt_table_rows(t), 2);
    char *out = render(t, 1);
    assert_string_equal(out,
                        "rank,pid,bytes,factor,raw_text\n"
                        "1,12345,1234567,1.5000,\"odd,\"\"name\"\"\"\n"
                        "1000,,100,,x\n");
    free(out);
    mt_table_destroy(t);
}

static void test_text(void **state)
{
    (void)state;
    mt_table_t *t = sample();
    char *out = render(t, 0);
    assert_string_equal(out,
                        "      #    pid    bytes  factor  where\n"
                        "      1  12345  1.2 MiB    1.50  f (a.c:1)\n"
                        "  1,000      -    100 B       -  line\\nbreak\n");
    free(out);
    mt_table_destroy(t);
}

static void test_empty(void **state)
{
    (void)state;
    mt_table_t *t;
    assert_int_equal(mt_table_create(cols, NCOLS, &t), 0);
    char *out = render(t, 1);
    assert_string_equal(out, "rank,pid,bytes,factor,raw_text\n");
    free(out);
    mt_table_destroy(t);
    mt_table_destroy(NULL);
}

/* The kinds of a comparison: signed byte changes, addresses, frames
 * already formatted (several lines). */
enum { D_DELTA, D_ADDR, D_FRAMES, ND };

static const mt_tcol_t dcols[ND] = {
    [D_DELTA] = {"change", "delta", MT_TCOL_DELTA, 0, 0},
    [D_ADDR] = {"arena", "arena", MT_TCOL_ADDR, 0, 0},
    [D_FRAMES] = {"allocated at", "frames", MT_TCOL_FRAMES, 0, 0},
};

static mt_table_t *dsample(void)
{
    mt_table_t *t;
    assert_int_equal(mt_table_create(dcols, ND, &t), 0);
    assert_int_equal(mt_table_row(t), 0);
    mt_table_int(t, D_DELTA, 2048);
    mt_table_int(t, D_ADDR, 0x7f0000000000);
    assert_int_equal(mt_table_text(t, D_FRAMES, "f (a.c:1)\nmain (odd,\"name\".c:2)"), 0);
    assert_int_equal(mt_table_row(t), 0);
    mt_table_int(t, D_DELTA, -512);
    mt_table_int(t, D_ADDR, 4096);
    assert_int_equal(mt_table_text(t, D_FRAMES, ""), 0);
    assert_int_equal(mt_table_row(t), 0);
    mt_table_int(t, D_DELTA, 0);
    return t;
}

static void test_delta_addr_frames(void **state)
{
    (void)state;
    mt_table_t *t = dsample();
    char *out = render(t, 1);
    assert_string_equal(out,
                        "delta,arena,frames\n"
                        "2048,139637976727552,\"f (a.c:1) <- main (odd,\"\"name\"\".c:2)\"\n"
                        "-512,4096,\n"
                        "0,,\n");
    free(out);
    out = render(t, 0);
    assert_string_equal(out,
                        "    change           arena  allocated at\n"
                        "  +2.0 KiB  0x7f0000000000  f (a.c:1)\n"
                        "                            main (odd,\"name\".c:2)\n"
                        "    -512 B          0x1000  (no stack)\n"
                        "       0 B               -  -\n");
    free(out);
    mt_table_destroy(t);
}

/* The JSON renderer: exact values (a REAL with the CSV's decimals), NULL
 * cells, every column with its kind and whether text shows it, max_rows,
 * strings escaped so they cannot close a <script> element. */
static void test_json(void **state)
{
    (void)state;
    mt_table_t *t = sample();
    assert_int_equal(mt_table_row(t), 0);
    mt_table_int(t, C_RANK, 3);
    assert_int_equal(mt_table_text(t, C_TEXT, "</script><b>&\"q\"</b>"), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(mt_table_write_json(t, NULL, 0, f), 0);
    fclose(f);
    assert_string_equal(buf,
                        "{\"cols\":["
                        "{\"title\":\"#\",\"csv\":\"rank\",\"kind\":\"int\",\"dec\":0,\"text\":1},"
                        "{\"title\":\"pid\",\"csv\":\"pid\",\"kind\":\"id\",\"dec\":0,\"text\":1},"
                        "{\"title\":\"bytes\",\"csv\":\"bytes\",\"kind\":\"bytes\",\"dec\":0,\"text\":1},"
                        "{\"title\":\"factor\",\"csv\":\"factor\",\"kind\":\"real\",\"dec\":2,\"text\":1},"
                        "{\"title\":\"where\",\"csv\":\"where\",\"kind\":\"text\",\"dec\":0,\"text\":1},"
                        "{\"title\":\"raw\",\"csv\":\"raw_text\",\"kind\":\"text\",\"dec\":0,\"text\":0}],"
                        "\"total\":3,\"rows\":["
                        "[1,12345,1234567,1.5000,\"f (a.c:1)\",\"odd,\\\"name\\\"\"],"
                        "[1000,null,100,null,\"line\\u000abreak\",\"x\"],"
                        "[3,null,null,null,\"\\u003c/script\\u003e\\u003cb\\u003e\\u0026\\\"q\\\"\\u003c/b\\u003e\",null]]}");
    free(buf);
    /* at most one row; the total still counts them all */
    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_int_equal(mt_table_write_json(t, NULL, 1, f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "\"total\":3,\"rows\":[[1,12345,"));
    assert_null(strstr(buf, "[1000,"));
    free(buf);
    mt_table_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_delta_addr_frames),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
