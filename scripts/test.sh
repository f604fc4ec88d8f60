#!/usr/bin/env bash
# test.sh - README command two (and what CI runs, through .ci/run): checks
# the packages like scripts/setup.sh, builds with warnings as errors, and
# runs every unit and integration test; then builds the same tree again
# with AddressSanitizer and UBSan (build-asan/) and runs the suite there.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --check-deps
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMTRACE_WERROR=ON
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j2

# Under the sanitizers: memtrace, its libraries, the unit tests and the fuzz
# corpus replays are built with -fsanitize=address,undefined (the preload
# library is not: see CMakeLists.txt); any report fails the test that
# caused it (exit status 99, which no test expects), and so does a leak in
# memtrace at exit.  Left out:
#   browser.report  times `memtrace report` against a bound in headless
#                   Chromium, which a sanitized build (2-3 times slower by
#                   design) would miss; the page itself is the same bytes,
#                   and its HTML escaping is checked there, in build/.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMTRACE_WERROR=ON -DMEMTRACE_SANITIZE=ON
cmake --build build-asan -j "$(nproc)"
ASAN_OPTIONS=detect_leaks=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:exitcode=99 \
    ctest --test-dir build-asan --output-on-failure -j2 -E '^browser\.'
