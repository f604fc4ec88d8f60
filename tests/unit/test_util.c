/* test_util.c - the user-facing formatters (lib/mt_util.h) and error names
 * (lib/mt_error.h), with exact expected strings, edge values and
 * truncation into small buffers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mt_error.h"
#include "mt_util.h"

static void test_fmt_count(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {999, "999"},
        {1000, "1,000"},
        {4000212, "4,000,212"},
        {100000, "100,000"},
        {-1, "-1"},
        {-1000, "-1,000"},
        {-1234567, "-1,234,567"},
        {INT64_MAX, "9,223,372,036,854,775,807"},
        {INT64_MIN, "-9,223,372,036,854,775,808"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(buf, 'x', sizeof buf);
        assert_ptr_equal(mt_fmt_count(buf, sizeof buf, cases[i].v), buf);
        assert_string_equal(buf, cases[i].s);
    }
}

static void test_fmt_count_truncates(void **state)
{
    (void)state;
    char buf[6];
    mt_fmt_count(buf, sizeof buf, 4000212);
    assert_string_equal(buf, "4,000"); /* cut, but terminated */
    char one[1] = {'x'};
    mt_fmt_count(one, sizeof one, 12345);
    assert_int_equal(one[0], '\0');
}

static void test_fmt_bytes(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {0, "0 B"},
        {1, "1 B"},
        {1023, "1023 B"},
        {1024, "1.0 KiB"},
        {1536, "1.5 KiB"},
        {100000, "97.7 KiB"},
        {64172851, "61.2 MiB"},
        {1073741824.0, "1.0 GiB"},
        {1099511627776.0 * 3, "3.0 TiB"},
        {1099511627776.0 * 2048, "2048.0 TiB"}, /* no unit beyond TiB */
        {-2048, "-2.0 KiB"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_ptr_equal(mt_fmt_bytes(buf, sizeof buf, cases[i].v), buf);
        assert_string_equal(buf, cases[i].s);
    }
}

static void test_fmt_ns(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *s;
    } cases[] = {
        {0, "0 us"},
        {456000, "456 us"},
        {1000000, "1.0 ms"},
        {12300000, "12.3 ms"},
        {1000000000, "1.000 s"},
        {1234000000, "1.234 s"},
        {61500000000, "61.500 s"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_ptr_equal(mt_fmt_ns(buf, sizeof buf, cases[i].v), buf);
        assert_string_equal(buf, cases[i].s);
    }
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(mt_strerror(MT_EOK), "success");
    assert_string_equal(mt_strerror(MT_ENOMEM), "out of memory");
    assert_string_equal(mt_strerror(MT_ENOTDB), "not a memtrace database");
    assert_string_equal(mt_strerror(MT_EVERSION), "database of another schema version");
    assert_string_equal(mt_strerror(MT_ECORRUPT), "database is damaged");
    assert_string_equal(mt_strerror(1), "unknown error");
    assert_string_equal(mt_strerror(-12), "unknown error");
    /* every code from 0 down to the last has its own text */
    for (int a = 0; a >= MT_ECORRUPT; a--) {
        assert_string_not_equal(mt_strerror(a), "unknown error");
        for (int b = a - 1; b >= MT_ECORRUPT; b--) assert_string_not_equal(mt_strerror(a), mt_strerror(b));
    }
}

/* json(s, n): what mt_json_string writes for n bytes of s (static buffer). */
static const char *json(const char *s, size_t n)
{
    static char out[256];
    FILE *f = fmemopen(out, sizeof out, "w");
    assert_non_null(f);
    mt_json_string(f, s, n);
    fclose(f);
    return out;
}

static void test_json_string(void **state)
{
    (void)state;
    assert_string_equal(json("plain", 5), "\"plain\"");
    assert_string_equal(json(NULL, 0), "null");
    /* quotes, backslash, control characters */
    assert_string_equal(json("a\"b\\c\n\t\x01\x7f", 9), "\"a\\\"b\\\\c\\u000a\\u0009\\u0001\\u007f\"");
    /* nothing that HTML reads inside a <script> element */
    assert_string_equal(json("</script><!--&", 14), "\"\\u003c/script\\u003e\\u003c!--\\u0026\"");
    /* valid UTF-8 passes: e acute, euro sign, an emoji */
    assert_string_equal(json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9), "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* each byte of invalid UTF-8 becomes U+FFFD: a lone 0xff, a truncated
     * sequence, an overlong '/', a surrogate, a code point past U+10FFFF */
    assert_string_equal(json("a\xff" "b", 3), "\"a\\ufffdb\"");
    assert_string_equal(json("\xe2\x82", 2), "\"\\ufffd\\ufffd\"");
    assert_string_equal(json("\xc0\xaf", 2), "\"\\ufffd\\ufffd\"");
    assert_string_equal(json("\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\"");
    assert_string_equal(json("\xf4\x90\x80\x80", 4), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    /* n bytes, not up to a NUL */
    assert_string_equal(json("ab\0cd", 5), "\"ab\\u0000cd\"");
}

static void sanitized(const char *in, const char *want)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", in);
    mt_text_sanitize(buf);
    assert_string_equal(buf, want);
}

static void test_text_sanitize(void **state)
{
    (void)state;
    sanitized("plain text", "plain text");
    sanitized("a\nb\tc\x7f", "a?b?c?");
    sanitized("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); /* UTF-8 kept */
    sanitized("near \"\xfb\"", "near \"?\"");        /* a byte no UTF-8 begins with */
    sanitized("x\x80y", "x?y");                        /* a lone continuation byte */
    sanitized("\xe2\x82", "??");                      /* a sequence cut short */
    sanitized("\xc3(", "?(");                          /* a lead byte without its continuation */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_count),
        cmocka_unit_test(test_fmt_count_truncates),
        cmocka_unit_test(test_fmt_bytes),
        cmocka_unit_test(test_fmt_ns),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_text_sanitize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
