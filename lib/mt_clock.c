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

int mt_tscmap_add(mt_tscmap_t *m, uint64_t tick, uint64_t ns)
{
    if (m->n && (tick <= m->tick[m->n - 1] || ns < m->ns[m->n - 1])) return 0;
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
    return 0;
}

/* ns at `tick` on the line through samples a and b */
static uint64_t on_line(const mt_tscmap_t *m, size_t a, size_t b, uint64_t tick)
{
    double rate = (double)(m->ns[b] - m->ns[a]) / (double)(m->tick[b] - m->tick[a]);
    double d = ((double)tick - (double)m->tick[a]) * rate;
    double v = (double)m->ns[a] + d;
    return v <= 0 ? 0 : (uint64_t)(v + 0.5);
}

uint64_t mt_tscmap_ns(const mt_tscmap_t *m, uint64_t tick)
{
    if (m->n == 0) return 0;
    if (m->n == 1) return m->ns[0];
    /* past the last sample (the usual case): the rate over up to 64 samples */
    if (tick >= m->tick[m->n - 1]) return on_line(m, m->n > 65 ? m->n - 65 : 0, m->n - 1, tick);
    if (tick <= m->tick[0]) return on_line(m, 0, 1, tick);
    size_t lo = 0, hi = m->n - 1; /* tick[lo] <= tick < tick[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->tick[mid] <= tick) lo = mid;
        else hi = mid;
    }
    return on_line(m, lo, hi, tick);
}

void mt_tscmap_free(mt_tscmap_t *m)
{
    free(m->tick);
    free(m->ns);
    memset(m, 0, sizeof *m);
}
