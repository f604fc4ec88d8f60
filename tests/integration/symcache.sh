#!/usr/bin/env bash
# symcache.sh - the cache directory of the symbolizer (tracer/mt_symbolize.c).
# A program whose debug information is in a separate file with compressed
# sections (as distributions ship them): the first symbolization writes an
# inflated copy under the cache directory, named by the build id, and the
# frames it resolved in each module with DWARF (.frames/, named by the
# file's path and identity); later ones read the kept frames, or the
# inflated copy for frames not kept; the frames come out the same from
# each, and without a cache (MEMTRACE_CACHE_DIR empty).  Kept frames are
# really read, not for a file changed since, and not when damaged; a
# module without DWARF is not kept.  A program with no debug file at all
# does not make libdw load libdebuginfod.
source "$(dirname "$0")/lib.sh"

command -v objcopy >/dev/null && command -v readelf >/dev/null || { echo "objcopy/readelf not installed" >&2; exit 77; }
# compressed_sections FILE: how many sections have SHF_COMPRESSED
compressed_sections() {
    python3 - "$1" <<'PY'
import struct, sys
f = open(sys.argv[1], 'rb').read()
shoff = struct.unpack_from('<Q', f, 0x28)[0]
shentsize, shnum = struct.unpack_from('<HH', f, 0x3a)
print(sum(1 for i in range(shnum) if struct.unpack_from('<Q', f, shoff + i * shentsize + 8)[0] & 0x800))
PY
}

cp "$PROGS/known_allocs" prog
objcopy --only-keep-debug --compress-debug-sections=zlib prog prog.debug
objcopy --strip-debug --add-gnu-debuglink=prog.debug prog
assert_true "the separate debug file has compressed sections" test "$(compressed_sections prog.debug)" -gt 0
ID=$(readelf -n prog | awk '/Build ID/ {print $3}')
assert_true "the program has a build id" test -n "$ID"
CACHED=cache/.build-id/${ID:0:2}/${ID:2}.debug

FRAMES="SELECT group_concat(function || ':' || coalesce(file, '') || ':' || coalesce(line, ''), ' ')
        FROM (SELECT DISTINCT function, file, line FROM stack_frames WHERE function LIKE 'alloc_%' OR function = 'main'
              ORDER BY 1, 2, 3)"

export MEMTRACE_CACHE_DIR=$WORK/cache
trace first.db --os=hooks ./prog
assert_eq "first run: exit status" 0 "$RC"
assert_true "first run: the inflated copy is in the cache" test -s "$CACHED"
assert_eq "the copy has no compressed section" 0 "$(compressed_sections "$CACHED")"
# kept_file NAME: the .frames file of the module whose path ends in /NAME
kept_file() { grep -l "^memtrace-frames 1 .*/$1\$" cache/.frames/* 2>/dev/null | head -1; }
KEPT=$(kept_file prog)
assert_true "first run: the program's frames are kept" test -n "$KEPT"
assert_true "the kept frames name main with its line" grep -q "	main	.*known_allocs.c$" "$KEPT"
trace second.db --os=hooks ./prog
assert_eq "second run: exit status" 0 "$RC"
mv cache/.frames kept.saved
trace third.db --os=hooks ./prog
assert_eq "third run (frames not kept, the inflated copy): exit status" 0 "$RC"
MEMTRACE_CACHE_DIR= trace none.db --os=hooks ./prog
assert_eq "no cache: exit status" 0 "$RC"
A=$(q first.db "$FRAMES")
assert_true "lines are found (main and the alloc_ functions, with files)" grep -q "main:.*known_allocs.c:[0-9]" <<<"$A"
assert_eq "from the kept frames: the same frames" "$A" "$(q second.db "$FRAMES")"
assert_eq "from the inflated copy: the same frames" "$A" "$(q third.db "$FRAMES")"
assert_eq "without a cache: the same frames" "$A" "$(q none.db "$FRAMES")"

# the kept frames are what the next run reads: a name changed in them
# comes out; not for a file changed since, nor from a damaged file
rm -rf cache/.frames
mv kept.saved cache/.frames
sed -i 's/\tmain\t/\tmain_as_kept\t/' "$KEPT"
trace marked.db --os=hooks ./prog
assert_eq "a kept name is used" 1 "$(q marked.db "SELECT count(*) > 0 FROM stack_frames WHERE function = 'main_as_kept'")"
touch -d '2001-01-01' prog
trace touched.db --os=hooks ./prog
assert_eq "a file changed since: its frames looked up again" "$A" "$(q touched.db "$FRAMES")"
assert_eq "... and kept in place of the old build's: one file for the path, the marked name gone" "1 0" \
    "$(grep -l "^memtrace-frames 1 .*/prog\$" cache/.frames/* | wc -l) $(grep -c main_as_kept "$(kept_file prog)")"
for f in cache/.frames/*; do head -c 60 "$f" >"$f.cut" && mv "$f.cut" "$f"; done
trace damaged.db --os=hooks ./prog
assert_eq "damaged kept files: the same frames" "$A" "$(q damaged.db "$FRAMES")"

# a debug link to a file that is not there: libdebuginfod (libcurl,
# GnuTLS...) is not loaded to learn that no server is configured, and the
# symbol table still names main; the program keeps its $DEBUGINFOD_URLS
# (memtrace itself never asks a server)
cp "$PROGS/known_allocs" bare
objcopy --only-keep-debug bare gone.debug
objcopy --strip-debug --add-gnu-debuglink=gone.debug bare
rm gone.debug
LD_DEBUG=files "$MEMTRACE" -q -o bare.db --os=hooks ./bare 2>ld.err >/dev/null
assert_eq "no debug file: libdebuginfod not loaded" 0 "$(grep -c "file=libdebuginfod" ld.err)"
assert_eq "no debug file: main named from the symbol table" 1 \
    "$(q bare.db "SELECT count(*) > 0 FROM stack_frames WHERE function = 'main'")"
DEBUGINFOD_URLS=http://127.0.0.1:9/ trace env.db --os=hooks /usr/bin/env
assert_eq "the program keeps its DEBUGINFOD_URLS" "DEBUGINFOD_URLS=http://127.0.0.1:9/" "$(grep '^DEBUGINFOD_URLS=' "$WORK/out")"
# (bare above found prog's inflated copy: the same build id)
if [[ -e /usr/lib/debug/.build-id/$(readelf -n /usr/bin/env | awk '/Build ID/ {print substr($3, 1, 2) "/" substr($3, 3)}').debug ]]; then
    echo "skipped: /usr/bin/env has a debug file here"
else
    assert_eq "env has frames of its own" 1 "$(q env.db "SELECT count(*) > 0 FROM stack_frames WHERE module = '/usr/bin/env'")"
    assert_eq "no DWARF (env): its frames are not kept (a debug file installed later must show lines)" "" \
        "$(kept_file env)"
fi
finish
