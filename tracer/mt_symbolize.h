/* mt_symbolize.h - offline symbolization of a finished trace.
 *
 * Place in the pipeline: the collector calls it once after recording; it
 * reads `modules` and `frames` and fills frames.function/file/line/offset/
 * module_id from the ELF symbol tables and DWARF line tables of the mapped
 * files (libdw).  Works on the database alone, so it can be re-run.
 */
#ifndef MT_SYMBOLIZE_H
#define MT_SYMBOLIZE_H

#include "mt_db.h"

/* Symbolizes every frame with symbolized = 0.  Missing files or debug info
 * are not errors: such frames keep the module and offset and get what the
 * symbol table gives (or NULL).  Returns 0 or a negative MT_E* code
 * (database errors only).  `nresolved`, if not NULL, gets the number of
 * frames that received a function name. */
int mt_symbolize(mt_db_t *db, long *nresolved);

#endif
