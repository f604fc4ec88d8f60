#!/usr/bin/env bash
# test.sh - README command two (and what CI runs, through .ci/run): checks
# the packages like scripts/setup.sh, builds with warnings as errors, and
# runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --check-deps
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMTRACE_WERROR=ON
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j2
