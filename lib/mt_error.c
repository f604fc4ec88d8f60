/* mt_error.c - descriptions of the MT_E* codes. */
#include "mt_error.h"

const char *mt_strerror(int err)
{
    switch (err) {
#define X(name, code, msg) case code: return msg;
        MT_ERRORS(X)
#undef X
    }
    return "unknown error";
}
