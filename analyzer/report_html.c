/* report_html.c - `memtrace report --html`: the report model as one
 * self-contained HTML page (contract in report_model.h).
 *
 * The page is its style sheet, the model's tables as one JSON document in
 * a <script type="application/json"> element, and the script that draws
 * them (analyzer/report.js and report.css, embedded at build time by
 * cmake/embed_sql.cmake).  Nothing else: no network (a Content Security
 * Policy forbids every fetch), no font, no library.  Strings from the trace
 * reach the page only inside the JSON, escaped by mt_json_string (no '<',
 * '>' or '&' survives, so the data cannot close its element), and the
 * script puts them in the document as text, never as markup.
 */
#include "report_model.h"

#include "mt_util.h"
#include "mt_report_assets.h"

#include <string.h>

/* How many rows of each table the page embeds (0: all). */
static size_t rows_of(int i, size_t top)
{
    switch (i) {
    case MT_RT_leaks:
    case MT_RT_temporary:
    case MT_RT_top:
    case MT_RT_growth:
    case MT_RT_gc:
        return top;
    case MT_RT_flame: return MT_REPORT_MAX_FLAME;
    case MT_RT_markers:
    case MT_RT_processes: return MT_REPORT_MAX_LIST;
    default: return 0;
    }
}

int mt_report_html(const mt_report_t *r, mt_stackfmt_t *sf, const char *file, size_t top, FILE *out)
{
    size_t flame_rows = mt_table_rows(r->t[MT_RT_flame]);
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"generator\" content=\"memtrace report\">\n"
          "<title>memtrace report</title>\n<style>\n", out);
    fputs(mt_asset_report_css, out);
    fputs("</style>\n</head>\n<body>\n<noscript><p>This page draws its charts and tables with JavaScript. "
          "The same numbers are in the CSV files of <code>memtrace report --csv DIR</code>.</p></noscript>\n"
          "<div id=\"app\"></div>\n<script type=\"application/json\" id=\"mt-data\">\n{\"file\":", out);
    mt_json_string(out, file, strlen(file));
    fprintf(out, ",\"top\":%zu,\"limits\":{\"flame_omitted\":%zu},\"tables\":{", top,
            flame_rows > MT_REPORT_MAX_FLAME ? flame_rows - MT_REPORT_MAX_FLAME : 0);
    for (int i = 0; i < MT_RT_COUNT; i++) {
        fprintf(out, "%s\n\"%s\":", i ? "," : "", mt_report_table_name(i));
        int rc = mt_table_write_json(r->t[i], sf, rows_of(i, top), out);
        if (rc) return rc;
    }
    fputs("}}\n</script>\n<script>\n", out);
    fputs(mt_asset_report_js, out);
    fputs("</script>\n</body>\n</html>\n", out);
    return 0;
}
