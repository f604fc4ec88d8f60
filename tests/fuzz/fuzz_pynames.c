/* fuzz_pynames.c - fuzz target: the collector's parser of a process's
 * Python names area (mt_pyc_names_load, mt_pyc_name in
 * tracer/collector_py.c), which reads memory the traced program wrote.
 *
 * Input: 8 bytes of names_used (as the target would publish it), then the
 * names area's first bytes; the rest of the area is zero.  The area has
 * exactly MT_NAMES_SIZE bytes of its own allocation, so a read past it is
 * a sanitizer error.  Every entry found is looked up again by its ip, and
 * its names are read to their declared ends.
 */
#include "collector_py.h"

#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *area;
static mt_region_t *region;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!area) {
        area = calloc(1, MT_NAMES_SIZE);
        region = calloc(1, sizeof *region);
        if (!area || !region) abort();
        region->names_off = (uint64_t)((uintptr_t)area - (uintptr_t)region);
    }
    if (size < 8) return 0;
    uint64_t used;
    memcpy(&used, data, 8);
    size_t n = size - 8 < MT_NAMES_SIZE ? size - 8 : MT_NAMES_SIZE;
    memcpy(area, data + 8, n);
    /* mostly within what was given, sometimes anywhere (the parser clamps;
     * the whole area is then read, which is slow) */
    if ((used & 0xff) != 0xff) used = used % (n + 64);
    region->py.names_used = used;
    mt_pynames_t *names = NULL;
    int rc = mt_pyc_names_load(region, &names);
    CHECK(rc == 0);
    uint64_t lim = used < MT_NAMES_SIZE ? used : MT_NAMES_SIZE;
    unsigned sum = 0;
    for (uint64_t o = 0; o + sizeof(mt_pyname_t) <= lim;) {
        const mt_pyname_t *e = (const mt_pyname_t *)(area + o);
        uint64_t esize = MT_PYNAME_SIZE(e);
        if (o + esize > lim) break;
        const char *file = NULL, *func = NULL;
        const mt_pyname_t *got = mt_pyc_name(names, e->ip, &file, &func);
        CHECK(got && got->ip == e->ip);
        for (unsigned i = 0; i < got->file_len; i++) sum += (unsigned char)file[i];
        for (unsigned i = 0; i < got->func_len; i++) sum += (unsigned char)func[i];
        o += esize;
    }
    const char *file, *func;
    (void)mt_pyc_name(names, 0x1234567890ull ^ used, &file, &func);
    mt_pyc_names_free(names);
    memset(area, 0, n);
    return (int)(sum & 0);
}
