#!/usr/bin/env bash
# browser.sh - `memtrace report` pages of real traces loaded in headless
# Chromium (Debian's chromium package) through the DevTools protocol
# (load_page.js, with the npm package ws, installed by `npm ci` from
# package-lock.json into the build tree).  For each page: no JavaScript
# error, no network request, and the DOM holds what the trace says:
#
#   leak      tests/programs/leak: the flame graph has one box per node of
#             flame.csv with a weight above 0, for each of the 4 weights;
#             the leak table's one row names leak_one; 400 points a line
#   hostile   the leak trace with function names, a file name and the command
#             line rewritten (sqlite3) to hold <script>, an <img onerror>,
#             quotes, '&' and bytes that are not UTF-8: they show as text
#             (U+FFFD for the bad bytes), nothing runs, no element is made
#   gc        the golden fixture basic.sql with report/gc.sql: two garbage
#             collector runs in their table and on the chart, CPython markers
#   bundled   tests/programs/known_allocs under --allocator=bundled: the
#             layout map has its arena, 64 pools
#   py        a real CPython run (py_lists under python3.11, when installed):
#             GC runs, markers, layer boxes, and pymalloc's pool map with
#             one cell per pool that `memtrace layout` rebuilds at the end
#   churn     the churn workload (4,000,000 events): the page is written in
#             under 5 s, is under 5 MB, and is drawn in under 2 s
#
# Screenshots of every page are kept in $ARTIFACTS (ctest: the build tree's
# tests/browser-artifacts).  Environment as the integration tests (lib.sh),
# plus CHROMIUM (default /usr/bin/chromium), ARTIFACTS, NODE_DEPS (where
# node_modules goes; default the build tree's tests/browser-deps).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../integration/lib.sh"
source "$HERE/../golden/fixture.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM
ARTIFACTS=${ARTIFACTS:-$WORK/artifacts}
NODE_DEPS=${NODE_DEPS:-$WORK/node-deps}
for tool in "$CHROMIUM" node npm python3 sqlite3; do
    command -v "$tool" >/dev/null || {
        echo "browser.sh: $tool is not installed (bash scripts/setup.sh installs it)" >&2
        exit 1
    }
done
mkdir -p "$ARTIFACTS" "$NODE_DEPS"

# the DevTools client: npm ci when the lock file changed since the last one
if ! cmp -s "$HERE/package-lock.json" "$NODE_DEPS/package-lock.json" || [[ ! -e $NODE_DEPS/node_modules/ws ]]; then
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DEPS/"
    (cd "$NODE_DEPS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
        echo "browser.sh: npm ci failed in $NODE_DEPS" >&2
        exit 1
    }
fi
export NODE_PATH=$NODE_DEPS/node_modules

# fact NAME KEY: one fact of a loaded page (load_page.js's NAME.facts)
fact() { sed -n "s/^$2=//p" "$ARTIFACTS/$1.facts" | head -1; }
# clean NAME: no error, no request, drawn
clean() {
    assert_eq "$1: JavaScript errors" "" "$(grep '^error=' "$ARTIFACTS/$1.facts" || true)"
    assert_eq "$1: network requests" "" "$(grep '^request=' "$ARTIFACTS/$1.facts" || true)"
    assert_eq "$1: the script finished drawing" 1 "$(fact "$1" ready)"
    assert_eq "$1: script elements (data and code only)" 2 "$(fact "$1" scripts)"
    assert_true "$1: screenshot kept" test -s "$ARTIFACTS/$1.png"
}
# csvq FILE EXPR: EXPR over `rows` (csv.DictReader)
csvq() {
    python3 -c 'import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8", errors="surrogateescape")))
print(eval(sys.argv[2]))' "$1" "$2"
}

# ---- the pages -------------------------------------------------------------
trace leak.db "$PROGS/leak"
"$MEMTRACE" report --html leak.html --csv leak-csv leak.db

# hostile names: the leak trace, rewritten
cp leak.db hostile.db
# X'..': "keep_temp" then bytes that are not UTF-8 (ff, a lone e9) around "or"
sqlite3 hostile.db "
UPDATE frames SET function = '<script>window.__memtrace_pwned=1</script>',
                  file = '</script><img src=x onerror=\"window.__memtrace_pwned=2\">' WHERE function = 'leak_one';
UPDATE frames SET function = '\"quoted\", ''single'' & <b>bold</b>' WHERE function = 'leak_on_purpose';
UPDATE frames SET function = CAST(X'6b6565705f74656d70ff6f72e9' AS TEXT) WHERE function = 'keep_temporaries';
UPDATE meta SET value = '</script><script>window.__memtrace_pwned=3</script> --x=\"a&b\"' WHERE key = 'command';"
"$MEMTRACE" report --html hostile.html --csv hostile-csv hostile.db

# garbage collector runs and markers: the golden fixture gc
"$MEMTRACE" -q -o base.db /bin/true
cp base.db gc.db
apply_fixture gc.db "$HERE/../golden/basic.sql" "$HERE/../golden/report/gc.sql"
"$MEMTRACE" report --html gc.html gc.db

# the bundled allocator's layout map
"$MEMTRACE" -q --allocator=bundled -o bundled.db "$PROGS/known_allocs" >/dev/null
"$MEMTRACE" report --html bundled.html --csv bundled-csv bundled.db

pages=(leak hostile gc bundled)

# a real CPython run (the capture fills the Python domains and gc_events)
if [[ -x /usr/bin/python3.11 && -e ${WORKLOADS_SRC:-}/py_lists.py ]]; then
    "$MEMTRACE" -q -o py.db /usr/bin/python3.11 "$WORKLOADS_SRC/py_lists.py" >/dev/null
    "$MEMTRACE" report --html py.html --csv py-csv py.db
    pages+=(py)
fi

# the bar: the churn workload's 4,000,000 events
if [[ -x ${WORKLOADS:-}/churn ]]; then
    "$MEMTRACE" -q -o churn.db "$WORKLOADS/churn" >/dev/null
    # the best of two runs: the machine may be busy with other work
    ms=
    for _ in 1 2; do
        start=$(date +%s%N)
        "$MEMTRACE" report --html churn.html --csv churn-csv churn.db
        t=$((($(date +%s%N) - start) / 1000000))
        [[ -z $ms || $t -lt $ms ]] && ms=$t
        ((ms < 5000)) && break
    done
    pages+=(churn)
fi

# every page in one browser
t0=$(date +%s%N)
TMPDIR=$WORK node "$HERE/load_page.js" "$ARTIFACTS" "${pages[@]/%/.html}"
echo "browser: ${#pages[@]} pages loaded and probed in $((($(date +%s%N) - t0) / 1000000)) ms"
for p in "${pages[@]}"; do cp "$p.html" "$ARTIFACTS/"; done

# ---- leak ----------------------------------------------------------------
clean leak
for w in bytes calls peak_bytes leaked_bytes; do
    assert_eq "leak: flame boxes weighted by $w = flame.csv nodes with $w > 0" \
        "$(csvq leak-csv/flame.csv "sum(int(r['$w']) > 0 for r in rows)")" "$(fact leak "flame_nodes_$w")"
done
assert_eq "leak: flame boxes drawn first = data-nodes" "$(fact leak flame_nodes)" "$(fact leak flame_data_nodes)"
assert_eq "leak: search 'main' marks __libc_start_main, __libc_start_call_main, main" 3 "$(fact leak flame_match_main)"
assert_eq "leak: zoomed on leak_one: its 6 ancestors and itself" 7 "$(fact leak flame_nodes_zoomed)"
assert_eq "leak: the leak table's rows" 1 "$(fact leak leaks_rows)"
assert_eq "leak: the leak's innermost frame" "$(csvq leak-csv/leaks.csv 'rows[0]["frames"].split(" <- ")[0]')" \
    "$(fact leak first_leak_frame)"
assert_eq "leak: allocation sites" 2 "$(fact leak top_rows)"
assert_eq "leak: sites sorted by calls, most first, then least first" "100 20" \
    "$(fact leak top_calls_first_desc) $(fact leak top_calls_first_asc)"
assert_eq "leak: hovering the chart's end: the last point's seq and blocks" \
    "$(csvq leak-csv/timeline.csv '"(seq %s) heap blocks: %s" % (rows[-1]["seq"], rows[-1]["heap_blocks"])')" \
    "$(fact leak hover | sed -E 's/.*(\(seq [0-9]+\)).*(heap blocks: [0-9,]+)$/\1 \2/')"
assert_eq "leak: layer boxes (every domain)" "$(sqlite3 leak.db 'SELECT count(*) FROM domains')" "$(fact leak layer_boxes)"
series=$(csvq leak-csv/timeline.csv 'sum(any(r[c] != "" for r in rows) for c in ("heap_bytes", "mapped_bytes", "arena_bytes", "rss_bytes"))')
assert_eq "leak: memory lines = timeline.csv columns with values" "$series" "$(fact leak timeline_series)"
assert_eq "leak: points of a line" 400 "$(fact leak timeline_points)"
assert_eq "leak: the verdict" "Peak heap 97.7 KiB in 100 blocks" "$(fact leak verdict | cut -d" " -f1-7)"
assert_eq "leak: gc section says none were recorded" 1 "$(fact leak gc_text | grep -c 'No garbage collector runs were recorded')"
assert_eq "leak: layout section says no data" "pymalloc: no data in this trace." "$(fact leak pymalloc)"

# ---- hostile names ----------------------------------------------------------
clean hostile
assert_eq "hostile: nothing ran" 0 "$(fact hostile pwned)"
assert_eq "hostile: no img or b element made" "0 0" "$(fact hostile imgs) $(fact hostile bolds)"
assert_eq "hostile: the leak's frame, as text" \
    '<script>window.__memtrace_pwned=1</script> (</script><img src=x onerror="window.__memtrace_pwned=2">:20)' \
    "$(fact hostile first_leak_frame)"
assert_eq "hostile: the command line, as text" '</script><script>window.__memtrace_pwned=3</script> --x="a&b"' \
    "$(fact hostile command)"
names=$(fact hostile flame_names)
assert_true "hostile: flame box named <script>..." grep -qF '|<script>window.__memtrace_pwned=1</script>' <<<"$names"
assert_true "hostile: flame box with quotes and &" grep -qF "|\"quoted\", 'single' & <b>bold</b>|" <<<"$names"
assert_true "hostile: bytes that are not UTF-8 show as U+FFFD" grep -qF $'|keep_temp\xef\xbf\xbdor\xef\xbf\xbd' <<<"$names"
assert_eq "hostile: leaks.csv parses, the name comes back" '<script>window.__memtrace_pwned=1</script>' \
    "$(csvq hostile-csv/leaks.csv 'rows[0]["frames"].split(" (")[0]')"
assert_eq "hostile: flame.csv parses, quotes and commas come back" "\"quoted\", 'single' & <b>bold</b>" \
    "$(csvq hostile-csv/flame.csv '[r["function"] for r in rows if r["function"].startswith(chr(34))][0]')"

# ---- garbage collector runs and markers (the golden fixture gc) ---------
clean gc
assert_eq "gc: the GC table's rows" 2 "$(fact gc gc_rows)"
# main_enter, py_init, py_user_code, fork_child, py_atexit, and 2 gc ticks
assert_eq "gc: marks on the memory chart" 7 "$(fact gc timeline_markers)"
assert_eq "gc: processes" 2 "$(fact gc processes_rows)"
assert_eq "gc: leaks of both processes" 3 "$(fact gc leaks_rows)"

# ---- the bundled allocator's layout map --------------------------------------
clean bundled
arenas=$(csvq bundled-csv/layout.csv 'sum(r["moment"] == rows[-1]["moment"] for r in rows)')
assert_eq "bundled: arenas on the map at the last moment" "$arenas" "$(fact bundled layout_arenas)"
assert_eq "bundled: pools on the map" "$((arenas * 64))" "$(fact bundled layout_pools)"
moments=$(csvq bundled-csv/layout.csv 'len({r["moment"] for r in rows})')
assert_eq "bundled: slider positions = moments with arenas" "$moments" "$(fact bundled layout_moments)"
assert_eq "bundled: the slider's last moment" "$(csvq bundled-csv/layout.csv '"%.1f ms" % float(rows[-1]["time_ms"])'): $arenas arena" \
    "$(fact bundled layout_last | sed 's/^ //')"
assert_eq "bundled: the verdict's retained" "retained 1.0 MiB kept free by the bundled allocator." \
    "$(fact bundled verdict | grep -o 'retained.*')"

# ---- a CPython run ---------------------------------------------------------------
if [[ -e py.html ]]; then
    clean py
    ngc=$(sqlite3 py.db "SELECT count(*) FROM gc_events")
    echo "py: $(meta py.db events) events, $ngc collections, drawn in $(fact py load_ms) ms"
    assert_true "py: the capture recorded collections ($ngc)" test "$ngc" -gt 0
    assert_eq "py: GC table rows (--top 100)" "$((ngc < 100 ? ngc : 100))" "$(fact py gc_rows)"
    assert_eq "py: a tick per collection and a line per marker on the chart" \
        "$(csvq py-csv/markers.csv 'sum(r["kind"] in ("gc", "main_enter", "exec", "fork_child", "killed", "py_init", "py_user_code", "py_atexit") for r in rows)')" \
        "$(fact py timeline_markers)"
    assert_eq "py: layer boxes with calls = layers.csv domains with calls" \
        "$(csvq py-csv/layers.csv 'sum(int(r["calls"]) > 0 for r in rows)')" \
        "$(fact py layer_boxes_with_calls)"
    # pymalloc's pool map: at the last moment (the end) one cell per pool of
    # layout.csv's pymalloc rows, which are the arenas and pools `memtrace
    # layout` rebuilds at the end
    last='[r for r in rows if r["allocator"] == "pymalloc" and int(r["moment"]) == max(int(x["moment"]) for x in rows)]'
    cells=$(csvq py-csv/layout.csv "sum(len(r['pools']) for r in $last)")
    assert_eq "py: pymalloc cells at the end = pools of memtrace layout --allocator pymalloc" \
        "$("$MEMTRACE" layout --allocator pymalloc --by arenas --csv py.db |
           awk -F, 'NR > 1 { n += $5 + $6 + $7 + $8 } END { print n }')" "$cells"
    assert_eq "py: pymalloc arenas on the map at the last moment" "$(csvq py-csv/layout.csv "len($last)")" \
        "$(fact py pylayout_arenas)"
    assert_eq "py: pymalloc cells on the map = pools of layout.csv" "$cells" "$(fact py pylayout_pools)"
    assert_eq "py: pymalloc slider positions = its moments with arenas" \
        "$(csvq py-csv/layout.csv 'len({r["moment"] for r in rows if r["allocator"] == "pymalloc"})')" \
        "$(fact py pylayout_moments)"
    assert_eq "py: no bundled map" "0 0" "$(fact py layout_arenas) $(fact py layout_pools)"
    assert_true "py: the pymalloc note" grep -q '^pymalloc: rebuilt from' <<<"$(fact py pymalloc)"
fi

# ---- churn: the bar ------------------------------------------------------------
if [[ -e churn.html ]]; then
    size=$(stat -c %s churn.html)
    clean churn
    echo "churn: $(meta churn.db events) events, page written in $ms ms, $size bytes, drawn in $(fact churn load_ms) ms"
    assert_true "churn: page (and CSV files) written in under 5 s ($ms ms)" test "$ms" -lt 5000
    assert_true "churn: page under 5 MB ($size bytes)" test "$size" -lt 5000000
    assert_true "churn: drawn in under 2 s ($(fact churn load_ms) ms)" test "$(fact churn load_ms)" -lt 2000
    assert_eq "churn: flame boxes = flame.csv nodes with bytes" \
        "$(csvq churn-csv/flame.csv "sum(int(r['bytes']) > 0 for r in rows)")" "$(fact churn flame_nodes)"
fi

finish
