/* mt_error.h - error codes shared by every module.
 *
 * Functions return int: 0 on success, a negative MT_E* code on failure;
 * results go through out-parameters.  mt_strerror() names a code for users.
 */
#ifndef MT_ERROR_H
#define MT_ERROR_H

#define MT_ERRORS(X)                                              \
    X(OK,       0, "success")                                     \
    X(NOMEM,   -1, "out of memory")                               \
    X(IO,      -2, "input/output error")                          \
    X(NOTDB,   -3, "not a memtrace database")                     \
    X(VERSION, -4, "database of another schema version")          \
    X(SQL,     -5, "SQL error")                                   \
    X(INVAL,   -6, "invalid argument")                            \
    X(NOENT,   -7, "no such file or program")                     \
    X(PERM,    -8, "permission denied")                           \
    X(FULL,    -9, "disk full")                                   \
    X(EXISTS, -10, "file exists")                                 \
    X(CORRUPT,-11, "database is damaged")

enum {
#define X(name, code, msg) MT_E##name = code,
    MT_ERRORS(X)
#undef X
};

/* A short description of an MT_E* code (never NULL). */
const char *mt_strerror(int err);

#endif
