/* fuzz.h - what the fuzz targets share: a check that holds in every build
 * (assert() is compiled out with NDEBUG). */
#ifndef MT_FUZZ_H
#define MT_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                              \
        }                                                                         \
    } while (0)

#endif
