/* views.c - what the per-site views share (contract in views.h). */
#include "views.h"

#include <stdlib.h>

int mt_view_site_table(const mt_cli_t *c, mt_site_t *v, size_t k, int (*cmp)(const void *, const void *),
                       const mt_tcol_t *cols, int ncols, mt_view_cells_fn cells, mt_table_t **out)
{
    if (k) qsort(v, k, sizeof *v, cmp);
    mt_table_t *t;
    int rc = mt_table_create(cols, ncols, &t);
    if (rc) return rc;
    size_t shown = c->top && (size_t)c->top < k ? (size_t)c->top : k;
    for (size_t i = 0; i < shown; i++) {
        if ((rc = mt_table_row(t))) {
            mt_table_destroy(t);
            return rc;
        }
        mt_table_int(t, MT_VIEW_RANK, (int64_t)i + 1);
        mt_table_int(t, MT_VIEW_PROC, v[i].process);
        int64_t pid = mt_cli_pid(c, v[i].process);
        if (pid >= 0) mt_table_int(t, MT_VIEW_PID, pid);
        cells(t, &v[i]);
        mt_table_int(t, ncols - 1, v[i].stack);
    }
    *out = t;
    return 0;
}
