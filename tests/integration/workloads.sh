#!/usr/bin/env bash
# workloads.sh NAME - runs a benchmark workload once under the count shim
# (LD_PRELOAD=count_shim.so, which only counts calls) and once under
# memtrace, and requires memtrace to have recorded exactly as many events of
# every kind as the shim counted calls.
#
# NAME: churn, grow, threads, mmapper (built from ../shared/bench/workloads),
# py_lists (CPython with pymalloc) or py_lists_malloc (PYTHONMALLOC=malloc).
# For CPython only the heap kinds are compared: pymalloc's arena mmap/munmap
# count depends on object addresses (identity hashes), which differ from run
# to run; PYTHONHASHSEED=0 makes the heap calls themselves reproducible.
# The comparison runs with --python=off: CPython capture registers a GC
# callback, and CPython builds an info dict for every callback call - calls
# the untraced program does not make.  tests/integration/python_layers.sh
# checks the Python domains against the C library layer.
source "$(dirname "$0")/lib.sh"

name=${1:?usage: workloads.sh NAME}
: "${COUNT_SHIM:?set COUNT_SHIM to count_shim.so}"
: "${WORKLOADS:?set WORKLOADS to the directory of the built workloads}"
PYTHON=${PYTHON:-/usr/bin/python3.11}
scope=all
opts=()
case $name in
churn | grow | threads | mmapper)
    cmd=("$WORKLOADS/$name")
    ;;
py_lists | py_lists_malloc)
    [[ -x $PYTHON ]] || { echo "SKIP: $PYTHON not installed"; exit 77; }
    cmd=("$PYTHON" "${WORKLOADS_SRC:?set WORKLOADS_SRC}/py_lists.py")
    export PYTHONHASHSEED=0
    [[ $name == py_lists_malloc ]] && export PYTHONMALLOC=malloc
    scope=heap
    opts=(--python=off)
    ;;
*)
    echo "unknown workload '$name'" >&2
    exit 2
    ;;
esac

src=0
shim_counts "$name.shim" "${cmd[@]}" || src=$?
assert_eq "$name exits 0 under the count shim" 0 "$src"
echo "count shim: $(tr '\n' ' ' <"$name.shim")"

trace "$name.db" "${opts[@]}" "${cmd[@]}"
assert_eq "memtrace exit status" 0 "$RC"
assert_eq "meta complete" 1 "$(meta "$name.db" complete)"
assert_eq "meta events = rows in events" "$(q "$name.db" "SELECT count(*) FROM events")" "$(meta "$name.db" events)"
assert_eq "no lost events" 0 "$(q "$name.db" "SELECT sum(lost_events) FROM processes")"
compare_with_shim "$name" "$name.shim" "$name.db" "$scope"
finish
