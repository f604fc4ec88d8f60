# workloads.sh - the benchmark workloads, for bench/run.sh and
# bench/collector.sh (sourced): built from ../shared/bench (and this
# project's bench/workloads) in a temporary directory, never in the shared
# one.  Needs ROOT (this checkout) and TMP (the temporary directory).

PYTHON=/usr/bin/python3.11
BENCH_SRC=$(cd "$ROOT/../shared/bench" 2>/dev/null && pwd) || {
    echo "${0##*/}: ../shared/bench not found next to $ROOT" >&2
    exit 1
}

# build_workloads: the shared workloads (with their Makefile) and this
# project's, in TMP/workloads
build_workloads() {
    cp -r "$BENCH_SRC/workloads" "$TMP/workloads"
    make -s -C "$TMP/workloads" >/dev/null
    g++ -O2 -g -o "$TMP/workloads/cppmap" "$ROOT/bench/workloads/cppmap.cpp"
    gcc -O2 -g -fno-omit-frame-pointer -pthread -o "$TMP/workloads/pairs" "$ROOT/bench/workloads/pairs.c"
}

# cmd_of NAME: sets CMD (array) and CMD_ENV (array of VAR=value)
cmd_of() {
    CMD_ENV=()
    case $1 in
    churn | grow | threads | mmapper) CMD=("$TMP/workloads/$1") ;;
    py_lists) CMD=("$PYTHON" "$TMP/workloads/py_lists.py") ;;
    py_lists_malloc) CMD=("$PYTHON" "$TMP/workloads/py_lists.py"); CMD_ENV=(PYTHONMALLOC=malloc) ;;
    cppmap) CMD=("$TMP/workloads/cppmap") ;;
    pairs1) CMD=("$TMP/workloads/pairs" 1 500000) ;;
    pairs4) CMD=("$TMP/workloads/pairs" 4 500000) ;;
    *) echo "${0##*/}: unknown workload '$1'" >&2; exit 2 ;;
    esac
}
