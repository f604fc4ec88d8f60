/* mt_clock.h - record timestamps: the CPU's time-stamp counter when the
 * kernel itself keeps time with it, CLOCK_MONOTONIC otherwise.
 *
 * Place in the pipeline: the preload library stamps each record with
 * mt_clock_ticks() (rdtsc: about 8 ns here, against 17 ns for the vDSO's
 * clock_gettime); the collector turns ticks into nanoseconds with a map of
 * (ticks, CLOCK_MONOTONIC ns) pairs it samples itself, about every
 * millisecond, before each pass over the records.  A tick value between two
 * samples is interpolated linearly; one after the last sample is
 * extrapolated with the last two samples' rate.  So no calibration delay at
 * start-up, and no drift over a long run.
 *
 * The counter is used only when the kernel's clocksource is "tsc" (the
 * kernel found it constant-rate, never stopping and synchronised across
 * CPUs); otherwise ticks are CLOCK_MONOTONIC nanoseconds and the map is the
 * identity.
 */
#ifndef MT_CLOCK_H
#define MT_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t mt_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mt_clock_rdtsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return mt_clock_mono_ns();
#endif
}

/* 1 when the time-stamp counter can stamp records (see above). */
int mt_clock_tsc_usable(void);

/* ticks -> ns map, filled by the collector */
typedef struct {
    uint64_t *tick, *ns;
    size_t n, cap;
    /* the last segment used: ticks [lo, hi) map to ns0 + (tick - lo) * rate */
    uint64_t lo, hi;
    double ns0, rate;
} mt_tscmap_t; /* zero-initialised: empty */

/* Samples kept at most: when the map is full, every other sample of its
 * older half is dropped (64 KiB; at one sample a millisecond the last 2 s
 * stay exact, the hour before at a sample every few seconds). */
#define MT_TSCMAP_MAX 4096

/* Adds a sample; samples must come in increasing tick order (others are
 * ignored).  Returns 0 or MT_ENOMEM. */
int mt_tscmap_add(mt_tscmap_t *m, uint64_t tick, uint64_t ns);
/* The CLOCK_MONOTONIC ns of `tick` (0 with no sample).  Consecutive calls
 * in one segment cost a compare and a multiply. */
uint64_t mt_tscmap_ns(mt_tscmap_t *m, uint64_t tick);
void mt_tscmap_free(mt_tscmap_t *m);

#endif
