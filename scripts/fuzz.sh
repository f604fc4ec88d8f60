#!/usr/bin/env bash
# fuzz.sh - fuzzes the targets in tests/fuzz with libFuzzer, each for a
# fixed time, and keeps what they learned as the regression corpus.
#
# usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 60); TARGET: fuzz_pynames, fuzz_evstore,
#            fuzz_dbread, fuzz_collector (default: all)
#
# Builds build-fuzz/ with clang, libFuzzer, AddressSanitizer and UBSan
# (-DMEMTRACE_FUZZ=ON -DMEMTRACE_SANITIZE=ON), fuzzes each target starting
# from tests/fuzz/corpus/TARGET, then merges into that directory only the
# new inputs that reach code the corpus did not (libFuzzer -merge=1).  The
# normal test suite replays the corpus (ctest -L fuzz), without clang.
# A crash stops the script with the input under build-fuzz/artifacts/:
# fix the bug, then copy the input into the corpus as its regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(fuzz_pynames fuzz_evstore fuzz_dbread fuzz_collector)
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (Debian: apt-get install clang)" >&2; exit 1; }

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMTRACE_SANITIZE=ON -DMEMTRACE_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/%/_fuzz}" >/dev/null

for t in "${targets[@]}"; do
    corpus=tests/fuzz/corpus/$t
    new=build-fuzz/fuzz-new/$t
    art=build-fuzz/artifacts/$t/
    rm -rf "$new"
    mkdir -p "$new" "$art" "$corpus"
    before=$(find "$corpus" -type f | wc -l)
    echo "fuzz.sh: $t for $secs s (corpus: $before inputs)"
    # new inputs go to $new; the corpus is only read
    # -print_funcs=0: no llvm-symbolizer child, which the collector target
    # (it waits for every child of its process) would wait for
    "build-fuzz/tests/fuzz/${t}_fuzz" -max_total_time="$secs" -timeout=20 -max_len=65536 -print_final_stats=1 -print_funcs=0 \
        -artifact_prefix="$art" "$new" "$corpus" 2>"build-fuzz/$t.log" ||
        { tail -40 "build-fuzz/$t.log" >&2; echo "fuzz.sh: $t found a bug: input in $art" >&2; exit 1; }
    grep -E "^stat::number_of_executed_units|^Done" "build-fuzz/$t.log" || true
    "build-fuzz/tests/fuzz/${t}_fuzz" -merge=1 "$corpus" "$new" 2>>"build-fuzz/$t.log" >/dev/null
    echo "fuzz.sh: $t: corpus $before -> $(find "$corpus" -type f | wc -l) inputs"
done
