/* keymap.c - pair-keyed hash map (contract in keymap.h). */
#include "keymap.h"

#include "mt_error.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BITS 6

static inline size_t home(int64_t a, int64_t b, unsigned bits)
{
    uint64_t h = ((uint64_t)a * 0xC2B2AE3D27D4EB4Full) ^ (uint64_t)b;
    return (size_t)((h * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

uint32_t mt_keymap_get(const mt_keymap_t *m, int64_t a, int64_t b)
{
    if (!m->bits) return 0;
    size_t mask = ((size_t)1 << m->bits) - 1;
    for (size_t i = home(a, b, m->bits);; i = (i + 1) & mask) {
        const mt_kslot_t *s = &m->slots[i];
        if (!s->val) return 0;
        if (s->a == a && s->b == b) return s->val;
    }
}

static void place(mt_kslot_t *slots, unsigned bits, int64_t a, int64_t b, uint32_t val)
{
    size_t mask = ((size_t)1 << bits) - 1;
    size_t i = home(a, b, bits);
    while (slots[i].val) i = (i + 1) & mask;
    slots[i] = (mt_kslot_t){a, b, val};
}

int mt_keymap_put(mt_keymap_t *m, int64_t a, int64_t b, uint32_t val)
{
    assert(val != 0);
    if (m->bits) {
        size_t mask = ((size_t)1 << m->bits) - 1;
        for (size_t i = home(a, b, m->bits); m->slots[i].val; i = (i + 1) & mask) {
            if (m->slots[i].a == a && m->slots[i].b == b) {
                m->slots[i].val = val;
                return 0;
            }
        }
    }
    if (!m->bits || (m->count + 1) * 2 > ((size_t)1 << m->bits)) {
        unsigned bits = m->bits ? m->bits + 1 : MIN_BITS;
        mt_kslot_t *fresh = calloc((size_t)1 << bits, sizeof *fresh);
        if (!fresh) return MT_ENOMEM;
        for (size_t i = 0; m->bits && i < (size_t)1 << m->bits; i++)
            if (m->slots[i].val) place(fresh, bits, m->slots[i].a, m->slots[i].b, m->slots[i].val);
        free(m->slots);
        m->slots = fresh;
        m->bits = bits;
    }
    place(m->slots, m->bits, a, b, val);
    m->count++;
    return 0;
}

uint32_t mt_keymap_del(mt_keymap_t *m, int64_t a, int64_t b)
{
    if (!m->bits) return 0;
    size_t mask = ((size_t)1 << m->bits) - 1, hole;
    for (hole = home(a, b, m->bits);; hole = (hole + 1) & mask) {
        if (!m->slots[hole].val) return 0;
        if (m->slots[hole].a == a && m->slots[hole].b == b) break;
    }
    uint32_t val = m->slots[hole].val;
    /* shift back the entries of the probe run that may move closer to home:
     * the entry at j may fill the hole unless its home lies cyclically in
     * (hole, j] */
    for (size_t j = (hole + 1) & mask; m->slots[j].val; j = (j + 1) & mask) {
        size_t h = home(m->slots[j].a, m->slots[j].b, m->bits);
        int stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].val = 0;
    m->count--;
    return val;
}

void mt_keymap_free(mt_keymap_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}
