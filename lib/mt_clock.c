/* mt_clock.c - see mt_clock.h. */
#include "mt_clock.h"

#include "mt_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_clock_tsc_usable(void)
{
#if defined(__x86_64__) || defined(__i386__)
    char buf[32] = {0};
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (!f) return 0;
    int ok = fgets(buf, sizeof buf, f) != NULL && strncmp(buf, "tsc", 3) == 0 && (buf[3] == '\n' || !buf[3]);
    fclose(f);
    return ok;
#else
    return 0;
#endif
}

/* Halves the density of the older half of the samples (the first sample,
 * the session's start, stays): the map keeps its recent samples one
 * apart and ever fewer old ones, in bounded memory however long the run. */
static void thin(mt_tscmap_t *m)
{
    size_t half = m->n / 2, j = 1;
    for (size_t i = 2; i < half; i += 2, j++) {
        m->tick[j] = m->tick[i];
        m->ns[j] = m->ns[i];
    }
    memmove(m->tick + j, m->tick + half, (m->n - half) * sizeof *m->tick);
    memmove(m->ns + j, m->ns + half, (m->n - half) * sizeof *m->ns);
    m->n -= half - j;
}

int mt_tscmap_add(mt_tscmap_t *m, uint64_t tick, uint64_t ns)
{
    if (m->n && (tick <= m->tick[m->n - 1] || ns < m->ns[m->n - 1])) return 0;
    if (m->n == MT_TSCMAP_MAX) thin(m);
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 256;
        uint64_t *t = realloc(m->tick, cap * sizeof *t);
        if (!t) return MT_ENOMEM;
        m->tick = t;
        uint64_t *n = realloc(m->ns, cap * sizeof *n);
        if (!n) return MT_ENOMEM;
        m->ns = n;
        m->cap = cap;
    }
    m->tick[m->n] = tick;
    m->ns[m->n] = ns;
    m->n++;
    m->lo = m->hi = 0; /* the cached segment may end here now */
    return 0;
}

/* Makes the segment through samples a and b the cached one, covering
 * ticks [lo, hi). */
static void use_segment(mt_tscmap_t *m, size_t a, size_t b, uint64_t lo, uint64_t hi)
{
    m->rate = (double)(m->ns[b] - m->ns[a]) / (double)(m->tick[b] - m->tick[a]);
    m->lo = lo;
    m->hi = hi;
    /* ns at lo on that line */
    m->ns0 = (double)m->ns[a] + ((double)lo - (double)m->tick[a]) * m->rate;
}

uint64_t mt_tscmap_ns(mt_tscmap_t *m, uint64_t tick)
{
    if (tick < m->lo || tick >= m->hi || m->hi == 0) {
        if (m->n == 0) return 0;
        if (m->n == 1) return m->ns[0];
        size_t last = m->n - 1;
        if (tick >= m->tick[last]) {
            /* past the last sample: the rate over up to 64 samples */
            use_segment(m, m->n > 65 ? m->n - 65 : 0, last, m->tick[last], UINT64_MAX);
        } else if (tick < m->tick[0]) {
            use_segment(m, 0, 1, 0, m->tick[0]);
        } else {
            size_t lo = 0, hi = last; /* tick[lo] <= tick < tick[hi] */
            while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (m->tick[mid] <= tick) lo = mid;
                else hi = mid;
            }
            use_segment(m, lo, hi, m->tick[lo], m->tick[hi]);
        }
    }
    double d = (double)(tick - m->lo) * m->rate + m->ns0;
    return d <= 0 ? 0 : (uint64_t)(d + 0.5);
}

void mt_tscmap_free(mt_tscmap_t *m)
{
    free(m->tick);
    free(m->ns);
    memset(m, 0, sizeof *m);
}
