#!/usr/bin/env bash
# report.sh - `memtrace report` on real traces: its CSV files are the views'
# own CSV output, byte for byte, and hold the numbers the programs are known
# to make; its page embeds the same tables; bad input gives one line and a
# non-zero status.  (The page in a real browser: tests/browser/browser.sh.)
#
#   leak          tests/programs/leak: 100 blocks of 1,000 bytes leaked from
#                 leak_one, 20 blocks of 48 bytes freed (keep_temporaries)
#   known_allocs  under --allocator=bundled: 32 pools of one arena, every
#                 block freed, so the arena (1 MiB) is all kept free at the end
#   py            a real python3.11 run (when installed): every moment of
#                 pymalloc's map equals `memtrace layout --allocator pymalloc
#                 --time` at that moment, pool by pool
#   grow          the grow workload (when built): realloc chains
# The CSV files are read with Python's csv module (RFC 4180).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }

# csvq FILE PYTHON-EXPR: evaluates EXPR with `rows` = the file's rows as
# dicts (csv.DictReader) and prints the result
csvq() {
    python3 -c 'import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8", errors="surrogateescape")))
print(eval(sys.argv[2]))' "$1" "$2"
}

# same_as_view LABEL FILE ARGS...: FILE must be the bytes of `memtrace ARGS`
same_as_view() {
    local label=$1 file=$2
    shift 2
    "$MEMTRACE" "$@" >"$WORK/view.csv"
    assert_true "$label: $(basename "$file") = memtrace $*" cmp -s "$file" "$WORK/view.csv"
}

# map_check CSV DB ALLOCATOR: every moment of the allocator's rows of
# layout.csv against `memtrace layout --allocator ALLOCATOR --time` at that
# moment, arena by arena and pool by pool (the arenas and their pools from
# --by arenas, the pools' states and fill from --by pools); prints the
# moments that differ and the moments
map_check() {
    python3 - "$1" "$MEMTRACE" "$2" "$3" <<'EOF'
import csv, subprocess, sys
rows = [r for r in csv.DictReader(open(sys.argv[1], newline="")) if r["allocator"] == sys.argv[4]]
bad, moments = 0, sorted({r["moment"] for r in rows}, key=int)
def layout(by, at):
    out = subprocess.run([sys.argv[2], "layout", "--allocator", sys.argv[4], "--csv", "--by", by, "--time", at, sys.argv[3]],
                         capture_output=True, text=True, check=True).stdout
    return list(csv.DictReader(out.splitlines()))
for m in moments:
    mine = {(r["process_id"], r["arena"]): r["pools"] for r in rows if r["moment"] == m}
    ts = [r["ts_ns"] for r in rows if r["moment"] == m][0]
    at = "%d.%06d" % divmod(int(ts), 1000000)
    theirs = {(a["process_id"], a["arena"]): ["-"] * sum(int(a[k]) for k in ("pools_used", "pools_full", "pools_empty", "pools_uncarved"))
              for a in layout("arenas", at)}
    for p in layout("pools", at):
        st, used, cap = p["state"], int(p["blocks_used"]), int(p["capacity"])
        theirs[(p["process_id"], p["arena"])][int(p["pool_index"])] = {"empty": "e", "full": "F"}.get(st, str(min(9, used * 10 // cap)))
    bad += mine != {k: "".join(v) for k, v in theirs.items()}
print(bad, len(moments))
EOF
}

# ---- leak: exact numbers ------------------------------------------------
trace leak.db "$PROGS/leak"
assert_eq "leak: memtrace exit status" 0 "$RC"
RC=0
"$MEMTRACE" report --html leak.html --csv leak-csv leak.db >out 2>err || RC=$?
assert_eq "report: exit status" 0 "$RC"
assert_eq "report: nothing on stdout or stderr" "" "$(cat out err)"
expected_files="flame.csv gc.csv growth.csv layers.csv layout.csv leaks.csv markers.csv processes.csv summary.csv temporary.csv timeline.csv top.csv"
assert_eq "report: one CSV file per table" "$expected_files" "$(cd leak-csv && ls | tr '\n' ' ' | sed 's/ $//')"

for v in leaks temporary top growth; do
    same_as_view leak "leak-csv/$v.csv" "$v" --csv --top 0 leak.db
done
same_as_view leak leak-csv/timeline.csv timeline --csv --points 400 leak.db
assert_eq "leaks.csv: blocks and bytes" "100,100000" "$(csvq leak-csv/leaks.csv '",".join(rows[0][k] for k in ("blocks", "bytes"))')"
assert_eq "leaks.csv: the leaking function" "leak_one" "$(csvq leak-csv/leaks.csv 'rows[0]["frames"].split(" (")[0]')"

summary() { csvq leak-csv/summary.csv "{r['key']: r['value'] for r in rows}['$1']"; }
assert_eq "summary: leaked bytes" 100000 "$(summary leaked_bytes)"
assert_eq "summary: leaked blocks" 100 "$(summary leaked_blocks)"
assert_eq "summary: heap allocations" 120 "$(summary heap_allocations)"
assert_eq "summary: heap peak = memtrace peak" \
    "$("$MEMTRACE" peak --csv leak.db | awk -F, 'NR == 2 { print $2 "," $3 }')" \
    "$(summary heap_peak_bytes),$(summary heap_peak_blocks)"
assert_eq "summary: complete" 1 "$(summary complete)"
assert_eq "summary: events = meta.events" "$(meta leak.db events)" "$(summary events)"
assert_eq "summary: processes, threads" "1,1" "$(summary processes),$(summary threads)"
assert_eq "summary: command" "$(meta leak.db command)" "$(summary command)"
assert_eq "summary: retained not measured without allocator events" "" "$(summary retained_bytes)"
assert_eq "summary: no gc runs" 0 "$(summary gc_runs)"

assert_eq "layers.csv: libc calls and bytes = the events" \
    "$(q leak.db "SELECT count(*) || ',' || sum(CASE WHEN kind != 'free' THEN size ELSE 0 END) FROM events WHERE domain = 'libc'")" \
    "$(csvq leak-csv/layers.csv '[r["calls"] + "," + r["bytes_requested"] for r in rows if r["domain"] == "libc"][0]')"
assert_eq "layers.csv: one row per domain" "$(q leak.db "SELECT count(*) FROM domains")" "$(csvq leak-csv/layers.csv 'len(rows)')"
assert_eq "markers.csv: main_enter once" 1 "$(csvq leak-csv/markers.csv 'sum(r["kind"] == "main_enter" for r in rows)')"
assert_eq "processes.csv: the pid" "$(q leak.db "SELECT pid FROM processes")" "$(csvq leak-csv/processes.csv 'rows[0]["pid"]')"
assert_eq "gc.csv: header only" 0 "$(csvq leak-csv/gc.csv 'len(rows)')"
assert_eq "layout.csv: header only (no bundled allocator)" 0 "$(csvq leak-csv/layout.csv 'len(rows)')"

# the flame tree: one node per distinct prefix of export's collapsed stacks,
# each weighing what the stacks under it weigh, for every weight
"$MEMTRACE" export --collapsed --by bytes leak.db >bytes.folded
for by in bytes calls leaked peak; do
    "$MEMTRACE" export --collapsed --by "$by" leak.db >"$by.folded"
done
flame_check=$(python3 - leak-csv/flame.csv <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
col = {"bytes": "bytes", "calls": "calls", "leaked": "leaked_bytes", "peak": "peak_bytes"}
node = {r["node"]: r for r in rows}
def path(r):
    p = []
    while r["parent"] != "":
        p.append(r["function"])
        r = node[r["parent"]]
    return ";".join(reversed(p))
bad = []
for by, c in col.items():
    want = {}
    for line in open(by + ".folded"):
        stack, w = line.rsplit(" ", 1)
        parts = stack.split(";")
        for i in range(1, len(parts) + 1):
            k = ";".join(parts[:i])
            want[k] = want.get(k, 0) + int(w)
    got = {path(r): int(r[c]) for r in rows if r["parent"] != "" and int(r[c]) > 0}
    if want != got:
        bad.append(by)
    root = int(rows[0][c])
    if root != sum(int(l.rsplit(" ", 1)[1]) for l in open(by + ".folded")):
        bad.append(by + " root")
print(" ".join(bad) if bad else "ok", len(rows))
EOF
)
assert_eq "flame.csv: nodes and weights = prefixes of export --collapsed (4 weights); nodes" "ok 8" "$flame_check"

# the page embeds the same tables (JSON) and nothing from outside
assert_true "page: under 1 MB" test "$(stat -c %s leak.html)" -lt 1000000
assert_eq "page: no external resource" "" "$(grep -Eo '<(link|img|iframe)[^>]*|src=[^ >]*|@import|url\(' leak.html || true)"
assert_eq "page: two scripts (the data, the code)" 2 "$(grep -c '<script' leak.html)"
embedded=$(python3 - leak.html <<'EOF'
import json, re, sys
html = open(sys.argv[1], encoding="utf-8").read()
data = json.loads(re.search(r'<script type="application/json" id="mt-data">(.*?)</script>', html, re.S).group(1))
t = data["tables"]
leak = t["leaks"]["rows"][0]
print(leak[3], leak[4], leak[5][1][0].split(" (")[0], len(t["flame"]["rows"]), len(t["timeline"]["rows"]))
EOF
)
assert_eq "page: leaks row, flame nodes, timeline points" "100 100000 leak_one 8 400" "$embedded"

# --top cuts the page's tables, not the CSV files
"$MEMTRACE" report --html top1.html --csv top1-csv --top 1 leak.db
assert_eq "--top 1: top table on the page" "1 2" "$(python3 -c 'import json, re, sys
d = json.loads(re.search(r"id=\"mt-data\">(.*?)</script>", open(sys.argv[1]).read(), re.S).group(1))
print(len(d["tables"]["top"]["rows"]), d["tables"]["top"]["total"])' top1.html)"
assert_eq "--top 1: top.csv still has every row" 2 "$(csvq top1-csv/top.csv 'len(rows)')"

# ---- known_allocs under the bundled allocator: the layout map ----------
"$MEMTRACE" -q --allocator=bundled -o ka.db "$PROGS/known_allocs" >/dev/null
"$MEMTRACE" report --csv ka-csv --html ka.html ka.db
assert_eq "bundled: retained = the arena kept free at the end" 1048576 \
    "$(csvq ka-csv/summary.csv "{r['key']: r['value'] for r in rows}['retained_bytes']")"
assert_eq "bundled: the last moment's map" "$(printf 'e%.0s' $(seq 32))$(printf -- '-%.0s' $(seq 32)),0,32" \
    "$(csvq ka-csv/layout.csv '",".join(rows[-1][k] for k in ("pools", "blocks_used", "pools_empty"))')"
layout_check=$(map_check ka-csv/layout.csv ka.db bundled)
# (the arena appears when the program's first malloc runs, after the
# loader and the preload library's start: most of this short run)
assert_eq "bundled: maps that differ from memtrace layout --time" 0 "${layout_check% *}"
with_arena=$(q ka.db "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 24)
                      SELECT count(*) FROM k WHERE (SELECT value FROM meta WHERE key = 'duration_ns') * n / 24
                                                   >= (SELECT min(ts_ns) FROM allocator_events)")
assert_eq "bundled: the moments with the arena, of 24 spread over the run" "$with_arena" "${layout_check#* }"
assert_true "bundled: at least the last moment has the arena ($with_arena)" test "$with_arena" -ge 1

# ---- a real CPython run: pymalloc's map ------------------------------------
PYTHON=${PYTHON:-/usr/bin/python3.11}
if [[ -x $PYTHON ]]; then
    printf 'd = {}\nfor i in range(20000):\n    d[i] = str(i) * 3\nd = None\nl = [bytes(64) for i in range(5000)]\n' >py.py
    PYTHONHASHSEED=0 "$MEMTRACE" -q -o py.db "$PYTHON" py.py
    "$MEMTRACE" report --csv py-csv --html py.html py.db
    assert_eq "py: layout.csv holds pymalloc's map only" "pymalloc" \
        "$(csvq py-csv/layout.csv '" ".join(sorted({r["allocator"] for r in rows}))')"
    py_check=$(map_check py-csv/layout.csv py.db pymalloc)
    assert_eq "py: pymalloc maps that differ from memtrace layout --time" 0 "${py_check% *}"
    assert_true "py: at least 10 moments with arenas (${py_check#* })" test "${py_check#* }" -ge 10
    assert_eq "py: the page embeds the same layout rows" "$(csvq py-csv/layout.csv 'len(rows)')" "$(python3 -c 'import json, re, sys
d = json.loads(re.search(r"id=\"mt-data\">(.*?)</script>", open(sys.argv[1]).read(), re.S).group(1))
print(len(d["tables"]["layout"]["rows"]))' py.html)"
else
    echo "note: $PYTHON not installed: pymalloc's map not tested"
fi

# ---- grow: realloc chains -------------------------------------------------
if [[ -x ${WORKLOADS:-}/grow ]]; then
    "$MEMTRACE" -q -o grow.db "$WORKLOADS/grow" >/dev/null
    "$MEMTRACE" report --csv grow-csv grow.db
    for v in leaks temporary top growth; do
        same_as_view grow "grow-csv/$v.csv" "$v" --csv --top 0 grow.db
    done
    same_as_view grow grow-csv/timeline.csv timeline --csv --points 400 grow.db
    assert_eq "grow: vec_push's chains at median factor 1.5" "2000,1.5000" \
        "$(csvq grow-csv/growth.csv '[r["chains"] + "," + r["median_factor"] for r in rows if r["frames"].startswith("vec_push")][0]')"
fi

# ---- bad input -------------------------------------------------------------
# expect_error LABEL STATUS ARGS...: exit status STATUS, one line on stderr
expect_error() {
    local label=$1 want=$2
    shift 2
    RC=0
    "$MEMTRACE" report "$@" >out 2>err || RC=$?
    assert_eq "$label: exit status" "$want" "$RC"
    assert_eq "$label: one line on stderr" 1 "$(nlines err)"
    assert_eq "$label: nothing on stdout" "" "$(cat out)"
}
expect_error "no output asked" 2 leak.db
expect_error "no DB" 2 --html x.html
expect_error "bad --top" 2 --top x --html x.html leak.db
expect_error "bad --points" 2 --points 0 --html x.html leak.db
expect_error "missing trace" 1 --html x.html nosuch.db
echo "not a database" >junk.db
expect_error "not a trace" 1 --html x.html junk.db
expect_error "unwritable page" 1 --html nodir/x.html leak.db
: >afile
expect_error "CSV directory is a file" 1 --csv afile leak.db
assert_true "no page left after a failure" test ! -e x.html
"$MEMTRACE" report --help >help.txt
assert_true "--help names every CSV file" grep -q "layout.csv" help.txt
assert_eq "help report = report --help" "$(cat help.txt)" "$("$MEMTRACE" help report)"

finish
