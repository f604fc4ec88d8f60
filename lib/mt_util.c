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
