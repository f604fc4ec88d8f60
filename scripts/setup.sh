#!/usr/bin/env bash
# setup.sh - README command one: installs what memtrace needs (Debian 12
# packages), builds it into build/, and traces the example program.
#
#   bash scripts/setup.sh               packages, build, first trace
#   bash scripts/setup.sh --check-deps  only the package check (scripts/test.sh)
#
# Missing packages are installed with apt-get when this runs as root or
# sudo works without a password; otherwise the exact command to run is
# printed and the script stops.
set -euo pipefail
cd "$(dirname "$0")/.."

# The one list of build and test dependencies.
# chromium and nodejs: the report page's browser test (tests/browser), which
# also needs the npm command (Debian's npm package; a nodejs built elsewhere
# may carry its own, which is as good).
# clang: scripts/fuzz.sh (libFuzzer); libcap2-bin (setcap) and strace: cases
# of tests/integration/secure.sh and hostile.sh.
PACKAGES=(build-essential cmake pkg-config libsqlite3-dev sqlite3 libunwind-dev
          libdw-dev libelf-dev libcmocka-dev python3 python3-dev chromium nodejs heaptrack
          clang libcap2-bin strace)

check_deps() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "setup: not a Debian system (no dpkg-query); make sure these are installed:" >&2
        echo "  ${PACKAGES[*]} npm" >&2
        return 0
    fi
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    ((${#missing[@]} == 0)) && return 0
    echo "setup: missing packages: ${missing[*]}"
    if ((EUID == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    else
        echo "setup: install them, then run this again:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

check_deps
[[ ${1:-} == --check-deps ]] && exit 0

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$(nproc)"

echo
echo "== build/memtrace -o build/example.db build/memtrace_example"
build/memtrace -o build/example.db build/memtrace_example
echo
echo "== build/memtrace summary build/example.db"
build/memtrace summary build/example.db
