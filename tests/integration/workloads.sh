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

# Address-space randomisation off for every run compared with strace: how
# many munmap calls glibc needs to align a thread's new arena depends on
# where mmap put it.
norand=(setarch "$(uname -m)" -R)
"${norand[@]}" true 2>/dev/null || norand=() # not allowed here (a container's seccomp profile)

src=0
shim_counts "$name.shim" "${cmd[@]}" || src=$?
assert_eq "$name exits 0 under the count shim" 0 "$src"
echo "count shim: $(tr '\n' ' ' <"$name.shim")"

[[ $scope == all ]] || norand=() # CPython: only heap calls are compared
TRACE_PREFIX=("${norand[@]}")
trace "$name.db" "${opts[@]}" "${cmd[@]}"
assert_eq "memtrace exit status" 0 "$RC"
assert_eq "meta complete" 1 "$(meta "$name.db" complete)"
assert_eq "meta events = rows in events" "$(q "$name.db" "SELECT count(*) FROM events")" "$(meta "$name.db" events)"
assert_eq "no lost events" 0 "$(q "$name.db" "SELECT sum(lost_events) FROM processes")"
# the heap calls and sbrk (a library function) against the shim; the
# system calls against strace below
compare_with_shim "$name" "$name.shim" "$name.db" heap
[[ $scope == heap ]] || assert_eq "$name: sbrk events (count shim)" "$(shim_get "$name.shim" sbrk)" \
    "$(q "$name.db" "SELECT count(*) FROM events WHERE kind = 'sbrk'")"

# strace_counts OUT [STRACE-OPTS...] -- CMD...: the OS-layer system calls CMD
# makes, counted by strace over every process, as "name=count" lines
# (madvise only with the advice memtrace records: MADV_DONTNEED, MADV_FREE,
# MADV_REMOVE)
strace_counts() {
    local out=$1
    shift
    "${norand[@]}" strace -f -qq -o "$WORK/strace.raw" -e trace=mmap,munmap,mremap,brk,madvise "$@" >/dev/null 2>&1
    grep -v 'resumed>' "$WORK/strace.raw" |
        awk 'match($0, /(mmap|munmap|mremap|brk|madvise)\(/) {
                 n = substr($0, RSTART, RLENGTH - 1)
                 if (n == "madvise" && $0 !~ /MADV_(DONTNEED|FREE|REMOVE)/) next
                 c[n]++ }
             END { for (k in c) print k "=" c[k] }' | sort >"$out"
}

# os_events DB [WHERE]: the same counts from a trace
os_events() {
    q "$1" "SELECT kind || '=' || count(*) FROM events WHERE kind IN ('mmap', 'munmap', 'mremap', 'brk', 'madvise')
            ${2:+AND $2} GROUP BY kind ORDER BY kind"
}

if [[ $scope == all ]] && command -v strace >/dev/null; then
    # --mode=ptrace: no preload library, nothing of memtrace's in the
    # process: every call, the loader's and the C library's included, as
    # strace counts them
    TRACE_OPTS=(--mode=ptrace)
    trace "$name.pt.db" "${cmd[@]}"
    TRACE_OPTS=()
    assert_eq "$name --mode=ptrace: exit status" 0 "$RC"
    strace_counts "$name.strace" "${cmd[@]}"
    echo "strace: $(tr '\n' ' ' <"$name.strace")"
    # threads: how many munmap calls trim a new arena's 128 MiB reservation
    # to 64 MiB (one or two) depends on its alignment, which depends on the
    # order the threads ran in: strace's own runs differ.  The trimmed bytes
    # are exact instead.
    skip='^$'
    if [[ $name == threads ]]; then
        skip='^munmap='
        for db in "$name.pt.db" "$name.db"; do
            assert_eq "$db: munmap bytes = 64 MiB per 128 MiB arena reservation" \
                "$(q "$db" "SELECT 67108864 * count(*) FROM events WHERE kind = 'mmap' AND size = 134217728")" \
                "$(q "$db" "SELECT sum(size) FROM events WHERE kind = 'munmap' AND tid != pid")"
        done
    fi
    assert_eq "$name --mode=ptrace: OS calls = strace's" "$(grep -v "$skip" "$name.strace")" \
        "$(os_events "$name.pt.db" | grep -v "$skip")"
    # the default (preload + system calls): the loader also maps memtrace's
    # libraries, so strace runs with the library loaded (and idle); mmap,
    # munmap, mremap and madvise then match exactly.  brk does not: the C
    # library's heap first grows inside memtrace's own start-up code, whose
    # calls are left out (meta.os_own_calls), so the program's later brk
    # calls differ (docs/os-layer.md)
    strace_counts "$name.strace.pre" -E LD_PRELOAD="$(dirname "$MEMTRACE")/libmemtrace_preload.so" "${cmd[@]}"
    assert_eq "$name: OS calls but brk = strace's with the library loaded" \
        "$(grep -v '^brk=' "$name.strace.pre" | grep -v "$skip")" "$(os_events "$name.db" "kind != 'brk'" | grep -v "$skip")"
fi
finish
