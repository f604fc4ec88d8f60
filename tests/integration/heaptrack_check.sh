#!/usr/bin/env bash
# heaptrack_check.sh - memtrace's numbers against heaptrack_print's for the
# same program (the shared grow workload), where both report the same thing:
#   - per allocation site (innermost function and line): calls to allocation
#     functions and the site's peak consumption (memtrace top --by calls);
#   - total memory leaked (memtrace leaks).
# heaptrack's totals (calls, peak) also count its own library's start-up
# allocation (the C++ runtime's emergency pool), so they are not compared.
# heaptrack prints sizes in units of 1000 with two decimals: memtrace's exact
# bytes are rounded the same way before comparing.
source "$(dirname "$0")/lib.sh"

command -v heaptrack >/dev/null && command -v heaptrack_print >/dev/null ||
    { echo "SKIP: heaptrack not installed"; exit 77; }
[[ -x ${WORKLOADS:-}/grow ]] || { echo "SKIP: grow workload not built"; exit 77; }

heaptrack -o "$WORK/ht" "$WORKLOADS/grow" >/dev/null 2>&1
ht=
for f in "$WORK"/ht*.zst "$WORK"/ht*.gz; do [[ -e $f ]] && ht=$f && break; done
assert_true "heaptrack wrote its data file" test -n "$ht"
heaptrack_print -f "$ht" --print-peaks 0 --print-allocators 1 --print-temporary 0 --peak-limit 50 \
    >ht.txt 2>/dev/null
heaptrack_print -f "$ht" --print-peaks 0 --print-allocators 0 --print-temporary 0 >ht_sum.txt 2>/dev/null

trace grow.db "$WORKLOADS/grow"
assert_eq "memtrace exit status" 0 "$RC"
"$MEMTRACE" top --by calls --top 0 --csv grow.db >top.csv
"$MEMTRACE" leaks --csv --top 0 grow.db >leaks.csv

python3 - ht.txt ht_sum.txt top.csv leaks.csv >compare.txt <<'EOF'
import csv, re, sys

def fmt(n):  # heaptrack's byte format: 1000-based units, two decimals
    n = float(n)
    if n < 1000:
        return "%dB" % n
    for unit in "KMGT":
        n /= 1000.0
        if n < 1000 or unit == "T":
            return "%.2f%s" % (n, unit)

text = open(sys.argv[1]).read()
# "N calls to allocation functions with XM peak consumption from\nFUNC\n  at FILE:LINE"
ht = {}
for m in re.finditer(r"^(\d+) calls to allocation functions with (\S+) peak consumption from\n(\S+)\n\s+at (\S+):(\d+)",
                     text, re.M):
    calls, peak, func, path, line = m.groups()
    key = (func, path.split("/")[-1], int(line))
    c, _ = ht.get(key, (0, None))
    ht[key] = (c + int(calls), peak)
mt = {}
for row in csv.DictReader(open(sys.argv[3])):
    inner = row["frames"].split(" <- ")[0]
    m = re.match(r"(\S+) \((.*):(\d+)\)$", inner)
    if not m:
        continue
    key = (m.group(1), m.group(2).split("/")[-1], int(m.group(3)))
    c, p = mt.get(key, (0, 0))
    mt[key] = (c + int(row["calls"]), p + int(row["peak_bytes"]))
sites = sorted(k for k in ht if k[1] == "grow.c")
print("sites", len(sites))
for k in sites:
    hc, hp = ht[k]
    mc, mp = mt.get(k, (None, None))
    print("%s:%d calls %s/%s peak %s/%s" % (k[0], k[2], hc, mc, hp, fmt(mp) if mp is not None else None))
leaked = sum(int(r["bytes"]) for r in csv.DictReader(open(sys.argv[4])))
m = re.search(r"total memory leaked: (\S+)", open(sys.argv[2]).read())
print("leaked %s/%s" % (m.group(1) if m else None, fmt(leaked)))
EOF
cat compare.txt
assert_true "heaptrack found the program's allocation sites" test "$(sed -n 's/^sites //p' compare.txt)" -ge 5
assert_eq "per site: calls and peak consumption equal heaptrack's" 0 \
    "$(grep -c -v -E '^sites|^leaked|calls ([0-9]+)/\1 peak (\S+)/\2$' compare.txt)"
assert_true "total leaked equals heaptrack's" grep -q -E '^leaked (\S+)/\1$' compare.txt
assert_eq "leaked: 100,000 bytes (heaptrack: 100.00K)" "leaked 100.00K/100.00K" "$(grep '^leaked' compare.txt)"
finish
