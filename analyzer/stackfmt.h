/* stackfmt.h - call stacks as text: "function (file:line)", innermost first.
 *
 * Place in the pipeline: analyzer.  Every report that names where memory
 * was allocated (summary, leaks, peak) turns a stack id (event_data.stack,
 * the innermost node of the `stacks` trie) into frames through this module.
 *
 * A cache keyed by stack node id holds each node's parent and frame, read
 * once with one prepared statement; stacks share their outer nodes in the
 * trie, so formatting many stacks reads each node once.
 *
 * Which frames are shown: frames without a function name at the innermost
 * end (allocator internals, stripped libraries) are skipped when a named
 * frame follows them; then at most `max` frames, the rest counted.
 */
#ifndef MT_STACKFMT_H
#define MT_STACKFMT_H

#include "mt_db.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MT_STACKFMT_DEPTH 8  /* frames shown by default */

typedef struct mt_stackfmt mt_stackfmt_t;

/* One frame; strings belong to the cache (valid until mt_stackfmt_close). */
typedef struct {
    const char *function;  /* NULL when unknown */
    const char *file;      /* NULL when unknown */
    int64_t line;          /* 0 when unknown */
    const char *module;    /* path of the mapped file, NULL when unknown */
    uint64_t ip;           /* return address in the process */
    int64_t offset;        /* ip relative to the module's load bias, -1 unknown */
} mt_stackfmt_frame_t;

/* Prepares the statement that reads stack nodes of `db` (which must outlive
 * the formatter).  Returns 0, MT_ENOMEM or a database error. */
int mt_stackfmt_open(mt_db_t *db, mt_stackfmt_t **out);

/* Frees the cache and the statement.  NULL is fine. */
void mt_stackfmt_close(mt_stackfmt_t *sf);

/* The shown frames of `stack`, innermost first: at most `max` pointers into
 * out[]; *n gets how many; *omitted (may be NULL) the frames left out beyond
 * max.  Stack 0, or an id absent from the trace, gives *n = 0.  Returns 0,
 * MT_ENOMEM or a database error. */
int mt_stackfmt_frames(mt_stackfmt_t *sf, int64_t stack, const mt_stackfmt_frame_t **out,
                       int max, int *n, int *omitted);

/* One frame as text into buf: "function (file:line)", "function (module)",
 * or "0x... (module+0x...)" when the function is unknown.  Returns buf. */
char *mt_stackfmt_frame_text(const mt_stackfmt_frame_t *f, char *buf, size_t len);

/* Prints the shown frames of `stack`, one per line after `indent`, then
 * "... N more frames" when frames were left out; "(no stack)" for a stack
 * without frames.  Returns 0 or an error of mt_stackfmt_frames. */
int mt_stackfmt_print(mt_stackfmt_t *sf, int64_t stack, int max, FILE *out, const char *indent);

/* The shown frames of `stack` on one line joined by `sep` (for one CSV
 * cell), truncated to fit buf.  Returns 0 or an error of mt_stackfmt_frames. */
int mt_stackfmt_join(mt_stackfmt_t *sf, int64_t stack, int max, const char *sep, char *buf,
                     size_t len);

#endif
