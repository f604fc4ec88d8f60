/* mt_util.h - small helpers for user-facing text: numbers with thousands
 * separators and byte sizes.  Not for hook context (uses snprintf). */
#ifndef MT_UTIL_H
#define MT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "4,000,212" into buf; returns buf. */
char *mt_fmt_count(char *buf, size_t len, int64_t v);
/* "61.2 MiB" (powers of 1024, "B" below 1 KiB) into buf; returns buf. */
char *mt_fmt_bytes(char *buf, size_t len, double bytes);
/* "1.234 s" / "12.3 ms" / "456 us" from nanoseconds into buf; returns buf. */
char *mt_fmt_ns(char *buf, size_t len, int64_t ns);

/* Writes n bytes of v as one CSV field, quoted as RFC 4180 wants when it
 * holds a comma, a quote or a line break.  v may be NULL (empty field). */
void mt_csv_field(FILE *out, const char *v, size_t n);

/* Writes n bytes of v as one JSON string literal, quotes included, safe to
 * embed in an HTML <script> element: '"', '\\' and control characters are
 * escaped, '<', '>' and '&' become \u003c, \u003e and \u0026 (so the text
 * can never close the element nor start a comment), and each byte that is
 * not part of valid UTF-8 becomes U+FFFD.  v NULL writes null. */
void mt_json_string(FILE *out, const char *v, size_t n);

/* Makes s (NUL-terminated) fit for one line of a terminal, in place:
 * control characters and bytes that are not part of valid UTF-8 become
 * '?' (a damaged database's schema text reaches error messages). */
void mt_text_sanitize(char *s);

#endif
