/* mt_util.c - formatting helpers for user-facing text. */
#include "mt_util.h"

#include <stdio.h>
#include <string.h>

char *mt_fmt_count(char *buf, size_t len, int64_t v)
{
    char tmp[32];
    int neg = v < 0;
    uint64_t u = neg ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)u);
    char out[48];
    int o = 0;
    if (neg) out[o++] = '-';
    for (int i = 0; i < n; i++) {
        out[o++] = tmp[i];
        int left = n - 1 - i;
        if (left > 0 && left % 3 == 0) out[o++] = ',';
    }
    out[o] = 0;
    snprintf(buf, len, "%s", out);
    return buf;
}

char *mt_fmt_bytes(char *buf, size_t len, double bytes)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = bytes < 0 ? -bytes : bytes;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (bytes < 0) v = -v;
    if (u == 0) snprintf(buf, len, "%.0f B", v);
    else snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}

char *mt_fmt_ns(char *buf, size_t len, int64_t ns)
{
    if (ns >= 1000000000LL) snprintf(buf, len, "%.3f s", (double)ns / 1e9);
    else if (ns >= 1000000LL) snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
    else snprintf(buf, len, "%.0f us", (double)ns / 1e3);
    return buf;
}

void mt_csv_field(FILE *out, const char *v, size_t n)
{
    if (!v) return;
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = v[i] == ',' || v[i] == '"' || v[i] == '\r' || v[i] == '\n';
    if (!quote) {
        fwrite(v, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '"') fputc('"', out);
        fputc(v[i], out);
    }
    fputc('"', out);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when the
 * bytes there are not one: overlong forms, surrogates and code points past
 * U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void mt_json_string(FILE *out, const char *v, size_t n)
{
    if (!v) {
        fputs("null", out);
        return;
    }
    const unsigned char *s = (const unsigned char *)v;
    fputc('"', out);
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc((int)c, out);
            i++;
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
            i++;
        } else {
            size_t len = utf8_len(s + i, n - i);
            if (!len) {
                fputs("\\ufffd", out);
                i++;
            } else {
                fwrite(s + i, 1, len, out);
                i += len;
            }
        }
    }
    fputc('"', out);
}

void mt_text_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) *p = '?';
            p++;
            continue;
        }
        int n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
        int k = 1;
        while (n > 0 && k <= n && (p[k] & 0xc0) == 0x80) k++;
        if (n < 0 || k <= n) { /* not a whole UTF-8 sequence */
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
}
