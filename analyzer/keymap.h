/* keymap.h - a hash map from a pair of 64-bit integers to a 32-bit value.
 *
 * Place in the pipeline: analyzer.  The per-site and per-chain models keep
 * their records in arrays and find them through this map: (process, stack)
 * -> site number, (process, address) -> live chain, (site, factor) -> count.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones: a map that sees millions of inserts and deletes does not
 * decay); load at most 1/2.  Value 0 marks an empty slot, so callers store
 * an index + 1.
 */
#ifndef MT_KEYMAP_H
#define MT_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t a, b;
    uint32_t val;   /* 0: empty slot */
} mt_kslot_t;

typedef struct {
    mt_kslot_t *slots;
    unsigned bits;  /* capacity = 1 << bits; 0: nothing allocated yet */
    size_t count;
} mt_keymap_t;      /* zero-initialised: an empty map */

/* The value of (a, b), 0 when absent. */
uint32_t mt_keymap_get(const mt_keymap_t *m, int64_t a, int64_t b);

/* Sets (a, b) -> val (val != 0), adding or replacing.  Returns 0 or
 * MT_ENOMEM (the map is then unchanged). */
int mt_keymap_put(mt_keymap_t *m, int64_t a, int64_t b, uint32_t val);

/* Removes (a, b); returns its value, 0 when it was absent. */
uint32_t mt_keymap_del(mt_keymap_t *m, int64_t a, int64_t b);

/* Frees the slots; the map is empty again. */
void mt_keymap_free(mt_keymap_t *m);

#endif
