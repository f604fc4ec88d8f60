/* mt_symbolize.c - offline symbolization of a finished trace with elfutils
 * libdwfl.
 *
 * Place in the pipeline: the collector calls mt_symbolize() once after
 * recording (it can be re-run: only frames with symbolized = 0 are looked
 * at).  Input is the database alone: `modules` (the files each process had
 * mapped, with their load bias) and `frames` (distinct return addresses).
 *
 * How:
 *   1. Every pending frame (id, process, ip) is read into memory, ordered by
 *      process and ip, so no statement reads `frames` while it is updated;
 *      so are the `modules` rows of the processes that have such frames,
 *      ordered by process and start (one query: `modules` has no index on
 *      process_id, and a query per process would scan it every time).
 *   2. Files are shared by the whole trace, not per process: a trace of a
 *      shell script has tens of processes mapping the same libc, and
 *      opening it (and decompressing its debug sections) once per process
 *      cost seconds.  Each distinct file is opened on the first frame that
 *      falls in one of its rows and reported alone to its own offline Dwfl
 *      at bias 0: its addresses are then its link-time addresses, and a
 *      process address ip becomes ip - base (modules.base is the load
 *      bias).  Its symbol and compilation-unit tables (below) are built
 *      once, on first need, and serve every process.  An ET_EXEC file is
 *      always at its link-time address (libdwfl ignores the base for it, as
 *      it did when files were reported at their bias): for it ip is used as
 *      is.  An open file holds descriptors, so at most max_open_files() are
 *      open at once, the least recently used being closed (and reopened if
 *      needed again): with usual traces, whose processes share most of
 *      their libraries, that never happens.
 *      A file is identified by its path and the st_dev, st_ino, st_size and
 *      st_mtim of a stat() made when a row first needs it, checked again
 *      with fstat() on the descriptor actually read: a file replaced while
 *      the symbolizer runs is a new file, never mixed up with the old one
 *      (a closed file found replaced when reopened gives no symbols).  The
 *      trace does not record the identity of the files the processes had
 *      mapped, so a file replaced between the recorded run and
 *      symbolization is read in its current version (as it always was).
 *   3. Per frame: the module row of its process whose [start, end) holds ip
 *      is found by bisection (a prefix maximum of `end` makes overlapping
 *      rows safe; the row with the greatest start wins).  The row gives
 *      module_id and offset = ip - base.  Function, file and line are looked
 *      up at ip - 1: ip is a return address, the byte after the call, which
 *      may already belong to the next line or even the next function.
 *   4. All updates run through one prepared UPDATE in one transaction.
 *   5. What a run resolved in a module with DWARF is kept in the cache
 *      directory for the next (see "resolved frames, kept by file"); a
 *      frame found there does not open its module at all.
 *
 * Function names come from the ELF symbol table (.symtab, else the one of
 * the separate debug file, else .dynsym).  dwfl_module_addrinfo() scans the
 * whole table on every call (elfutils 0.188: 2 s for 100k frames over ten
 * libraries, growing with the table), so each module's code symbols are
 * read once, on first use, into an array sorted by address and searched by
 * bisection (0.4 s for the same frames, database included); load_syms()
 * says which symbol wins, as addrinfo would.  Source lines come from the
 * DWARF line table (dwfl_module_getsrc, itself indexed), with a fallback
 * for objects without .debug_aranges (find_line).
 *
 * Key invariant: a frame that was looked at gets symbolized = 1 whatever was
 * found; only database (and out-of-memory) errors fail the call.
 */
#include "mt_symbolize.h"

#include "mt_error.h"

#include <dwarf.h>
#include <errno.h>
#include <limits.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* A code symbol of a file, at its address in the file's own address space. */
typedef struct {
    uint64_t addr;
    uint64_t size;      /* > 0; sizeless symbols: up to the next symbol or
                         * the end of their section */
    uint64_t maxend;    /* max(addr + size) over this entry and all before */
    const char *name;   /* owned by the Dwfl */
    int sized;          /* the symbol table gave the size */
    int rank;           /* binding (global, weak, local), + 3 for untyped
                         * labels: lower is preferred among aliases */
    int ndx;            /* symbol table index: last tie-break */
} sym_t;

/* An address range of a compilation unit, in the file's own address space
 * (see find_line). */
typedef struct {
    uint64_t lo, hi;
    uint64_t maxhi;     /* max(hi) over this entry and all before */
    Dwarf_Die cudie;
} cu_range_t;

/* A frame resolved by an earlier run (see "resolved frames, kept"). */
typedef struct {
    uint64_t off;       /* ip - modules.base */
    int line;           /* 0: unknown */
    const char *function, *file; /* NULL: unknown */
} kept_t;

/* A distinct file of the trace (see 2. above). */
typedef struct file {
    struct file *next;  /* hash chain */
    struct file *newer, *older; /* LRU list of the open files */
    uint64_t hash;
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    enum { FILE_CLOSED, FILE_OPEN, FILE_FAILED } state;
    Dwfl *dwfl;         /* its own Dwfl, when open */
    Dwfl_Module *mod;   /* reported at bias 0, when open */
    int absolute;       /* ET_EXEC (or ET_CORE): addresses are process
                         * addresses, the row's base does not apply */
    int syms_loaded;    /* syms/nsyms are valid */
    sym_t *syms;
    size_t nsyms;
    int cus_loaded;     /* cus/ncus are valid */
    cu_range_t *cus;
    size_t ncus;
    Dwarf_Addr dwbias;  /* bias of the module's DWARF addresses */
    int lines;          /* 1: it has DWARF (its frames may be kept), 0: not, -1: unknown */
    int kept_loaded;    /* kept/nkept are valid (the frames kept by earlier runs) */
    kept_t *kept;       /* sorted by offset; strings in kept_text */
    size_t nkept;
    char *kept_text;
    kept_t *added;      /* resolved by this run, to keep; strings owned */
    size_t nadded, capadded;
} file_t;

/* The distinct files, hashed by path and identity; at most max_open of
 * them open at a time (see file_module). */
typedef struct {
    file_t **buckets;   /* nbuckets, a power of two */
    size_t nbuckets, n;
    file_t *newest, *oldest; /* the open files, most recently used first */
    size_t nopen, max_open;
} file_table_t;

/* One `modules` row of a process with pending frames. */
typedef struct {
    int64_t id, process_id;
    char *path;
    uint64_t base, start, end;
    uint64_t maxend;    /* max(end) over this row and every row before it
                         * of the same process */
    int looked_up;      /* file is valid */
    file_t *file;       /* NULL: path empty, missing or not a regular file */
} mod_row_t;

/* A pending frame. */
typedef struct {
    int64_t id, process_id;
    uint64_t ip;
} frame_t;

static char *debuginfo_path; /* NULL: libdwfl's default search path (see mt_symbolize) */

/* ---- decompressed separate debug files, kept by build id ----
 *
 * A distribution's separate debug files (libc6-dbg's, say) have their
 * .debug_* sections compressed, and libdw inflates them all when it first
 * looks up a line: 70 ms for the C library's at the end of every trace,
 * most of the cost of tracing a short program (3 ms from an inflated
 * copy).  The first symbolization writes an inflated copy to the cache
 * directory, laid out like /usr/lib/debug (.build-id/XX/REST.debug), which
 * libdwfl then searches first.  The directory: $MEMTRACE_CACHE_DIR (an
 * absolute path; empty or relative: no cache), else
 * $XDG_CACHE_HOME/memtrace/debug, else ~/.cache/memtrace/debug. */

/* The cache directory, made if missing; 0 when there is none. */
static int cache_dir(char *out, size_t cap)
{
    const char *env = getenv("MEMTRACE_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (env) n = *env == '/' ? snprintf(out, cap, "%s", env) : -1; /* relative or empty: none */
    else if (xdg && *xdg == '/') n = snprintf(out, cap, "%s/memtrace/debug", xdg);
    else if (home && *home == '/') n = snprintf(out, cap, "%s/.cache/memtrace/debug", home);
    else n = -1;
    if (n <= 0 || (size_t)n >= cap) return 0;
    /* each missing level, 0700 */
    for (char *p = out + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = 0;
        int ok = mkdir(out, 0700) == 0 || errno == EEXIST;
        *p = c;
        if (!ok) return 0;
        if (!c) break;
    }
    return 1;
}

/* 1 when the ELF file open as fd has a compressed section. */
static int has_compressed(int fd)
{
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    int found = 0;
    for (Elf_Scn *scn = e ? elf_nextscn(e, NULL) : NULL; scn && !found; scn = elf_nextscn(e, scn)) {
        GElf_Shdr sh;
        found = gelf_getshdr(scn, &sh) && (sh.sh_flags & SHF_COMPRESSED);
    }
    if (e) elf_end(e);
    return found;
}

/* Writes an inflated copy of the ELF file fd to `path` (through a
 * temporary file and a rename, so a reader never sees half of one).
 * Returns 0 or -1. */
static int write_inflated(int fd, const char *dir, const char *path)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.tmp.XXXXXX", dir) >= sizeof tmp) return -1;
    int out = mkstemp(tmp);
    if (out < 0) return -1;
    int ok = 0;
    char buf[1 << 16];
    off_t off = 0;
    for (;;) {
        ssize_t k = pread(fd, buf, sizeof buf, off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            ok = k == 0;
            break;
        }
        if (write(out, buf, (size_t)k) != k) break;
        off += k;
    }
    Elf *e = ok ? elf_begin(out, ELF_C_RDWR, NULL) : NULL;
    ok = e != NULL;
    for (Elf_Scn *scn = e ? elf_nextscn(e, NULL) : NULL; scn && ok; scn = elf_nextscn(e, scn)) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh)) ok = 0;
        else if (sh.sh_flags & SHF_COMPRESSED) ok = elf_compress(scn, 0, 0) >= 0;
    }
    if (ok) ok = elf_update(e, ELF_C_WRITE) >= 0;
    if (e) elf_end(e);
    if (close(out) != 0) ok = 0;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) unlink(tmp);
    return ok ? 0 : -1;
}

/* The cache directory of this run ("": none), set by mt_symbolize. */
static char g_cache[PATH_MAX];

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* root/.build-id/XX/REST.debug for a build id, as /usr/lib/debug lays it
 * out; returns the length of root/.build-id/XX (the directory). */
static int build_id_path(char *path, size_t cap, const char *root, const unsigned char *bits, int nbits)
{
    int dir = snprintf(path, cap, "%s/.build-id/%02x", root, bits[0]);
    int o = dir + snprintf(path + dir, cap - (size_t)dir, "/");
    for (int i = 1; i < nbits; i++) o += snprintf(path + o, cap - (size_t)o, "%02x", bits[i]);
    snprintf(path + o, cap - (size_t)o, ".debug");
    return dir;
}

/* 0 when none of the places libdwfl searches (debuginfo_path) holds a
 * debug file for the module: by build id under the cache and
 * /usr/lib/debug; by debuglink name (else the file's name + ".debug")
 * beside the file, in its .debug/, and under the cache and /usr/lib/debug
 * followed by the file's directory. */
static int local_debuginfo(Dwfl_Module *mod, const char *file_name, const char *debuglink_file)
{
    const char *roots[2] = {g_cache[0] ? g_cache : NULL, "/usr/lib/debug"};
    char path[3 * PATH_MAX];
    const unsigned char *bits;
    GElf_Addr vaddr;
    int nbits = dwfl_module_build_id(mod, &bits, &vaddr);
    for (int r = 0; r < 2 && nbits >= 2 && nbits <= 64; r++) {
        if (!roots[r]) continue;
        build_id_path(path, sizeof path, roots[r], bits, nbits);
        if (exists(path)) return 1;
    }
    const char *slash = file_name ? strrchr(file_name, '/') : NULL;
    if (!slash) return 0;
    int dlen = (int)(slash - file_name);
    char link[PATH_MAX];
    if ((size_t)snprintf(link, sizeof link, "%s", debuglink_file ? debuglink_file : slash + 1) >= sizeof link)
        return 1; /* unusual: leave it to libdwfl */
    if (!debuglink_file && strlen(link) + 6 < sizeof link) strcat(link, ".debug");
    snprintf(path, sizeof path, "%.*s/%s", dlen, file_name, link);
    if (strcmp(path, file_name) != 0 && exists(path)) return 1;
    snprintf(path, sizeof path, "%.*s/.debug/%s", dlen, file_name, link);
    if (exists(path)) return 1;
    for (int r = 0; r < 2; r++) {
        if (!roots[r]) continue;
        snprintf(path, sizeof path, "%s%.*s/%s", roots[r], dlen, file_name, link);
        if (exists(path)) return 1;
    }
    return 0;
}

/* libdwfl's find_debuginfo, which looks in the cache first (debuginfo_path
 * lists it before /usr/lib/debug).  A compressed file found elsewhere is
 * inflated into the cache, as .build-id/XX/REST.debug, for the next run.
 * When no debug file is on this machine, libdwfl would go on to load
 * libdebuginfod (with libcurl, GnuTLS, Kerberos, LDAP...: 3-7 ms) only to
 * find no server configured (memtrace never asks one: main.c), so it is
 * asked only when a local file exists. */
static int find_debuginfo_cached(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                                 const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
                                 char **debuginfo_file_name)
{
    if (!local_debuginfo(mod, file_name, debuglink_file)) return -1;
    int fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file, debuglink_crc,
                                          debuginfo_file_name);
    const unsigned char *bits;
    GElf_Addr vaddr;
    int nbits = fd >= 0 && g_cache[0] ? dwfl_module_build_id(mod, &bits, &vaddr) : 0;
    if (nbits < 4 || nbits > 64) return fd;
    size_t nc = strlen(g_cache);
    if (*debuginfo_file_name && strncmp(*debuginfo_file_name, g_cache, nc) == 0) return fd; /* the cache's */
    char dir[PATH_MAX + 16], path[PATH_MAX + 160];
    int dlen = build_id_path(path, sizeof path, g_cache, bits, nbits);
    snprintf(dir, sizeof dir, "%.*s", dlen, path);
    if (exists(path) || !has_compressed(fd)) return fd;
    char top[PATH_MAX + 16];
    snprintf(top, sizeof top, "%s/.build-id", g_cache);
    if ((mkdir(top, 0700) == 0 || errno == EEXIST) && (mkdir(dir, 0700) == 0 || errno == EEXIST))
        write_inflated(fd, dir, path);
    return fd;
}

static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf, /* unused: files are reported by path */
    .find_debuginfo = find_debuginfo_cached,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

/* Order of the symbol array: by address, then the alias to keep first. */
static int sym_cmp(const void *a, const void *b)
{
    const sym_t *x = a, *y = b;
    if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
    if (x->sized != y->sized) return y->sized - x->sized;
    if (x->rank != y->rank) return x->rank - y->rank;
    return x->ndx - y->ndx;
}

/* The allocated section `shndx` of `elf` (loaded with `bias`): its
 * process-space range in *lo, *hi and whether it holds code in *exec.
 * Returns 0 when there is no such section. */
static int section_range(Elf *elf, GElf_Word shndx, Dwarf_Addr bias, uint64_t *lo, uint64_t *hi,
                         int *exec)
{
    GElf_Shdr shdr;
    Elf_Scn *scn = elf && shndx < SHN_LORESERVE ? elf_getscn(elf, shndx) : NULL;
    if (!scn || !gelf_getshdr(scn, &shdr) || !(shdr.sh_flags & SHF_ALLOC)) return 0;
    *lo = shdr.sh_addr + bias;
    *hi = *lo + shdr.sh_size;
    *exec = (shdr.sh_flags & SHF_EXECINSTR) != 0;
    return 1;
}

/* Fills fl->syms with the code symbols of fl->mod sorted by address: typed
 * functions, and untyped labels in executable sections (assembly entry
 * points such as ld.so's _dl_start_user, which run constructors).
 *   - One entry per address: the preferred alias (sized, then global, weak,
 *     local), so a name is chosen the same way on every run.
 *   - An untyped or sizeless symbol inside a sized function is dropped (a
 *     label inside the function must not hide it); the others extend to the
 *     next entry, at most to the end of their section (so _init does not
 *     claim the PLT after it).
 * A module without a symbol table gets an empty array.  Returns 0 or
 * MT_ENOMEM. */
static int load_syms(file_t *fl)
{
    fl->syms_loaded = 1;
    int n = dwfl_module_getsymtab(fl->mod);
    if (n <= 1) return 0;
    sym_t *s = malloc((size_t)n * sizeof *s);
    if (!s) return MT_ENOMEM;
    size_t k = 0;
    for (int i = 1; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        GElf_Word shndx;
        Elf *elf = NULL;
        Dwarf_Addr bias = 0;
        uint64_t lo, hi;
        int exec;
        const char *name = dwfl_module_getsym_info(fl->mod, i, &sym, &addr, &shndx, &elf, &bias);
        if (!name || !*name || shndx == SHN_UNDEF) continue;
        int type = GELF_ST_TYPE(sym.st_info);
        int known = section_range(elf, shndx, bias, &lo, &hi, &exec);
        if (type == STT_NOTYPE) {
            if (!known || !exec) continue;
        } else if (type != STT_FUNC && type != STT_GNU_IFUNC) {
            continue;
        }
        if (!sym.st_size && (!known || addr < lo || addr >= hi)) continue;
        int bind = GELF_ST_BIND(sym.st_info);
        s[k].addr = addr;
        s[k].sized = sym.st_size != 0;
        s[k].size = sym.st_size ? sym.st_size : hi - addr;
        s[k].name = name;
        s[k].rank = (bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2) + (type == STT_NOTYPE ? 3 : 0);
        s[k].ndx = i;
        k++;
    }
    qsort(s, k, sizeof *s, sym_cmp);
    size_t out = 0;
    uint64_t covered = 0; /* end of the sized functions kept so far */
    for (size_t i = 0; i < k; i++) {
        if (out && s[out - 1].addr == s[i].addr) continue;           /* alias */
        if (!s[i].sized && s[i].addr < covered) continue;            /* label */
        if (s[i].sized && s[i].addr + s[i].size > covered) covered = s[i].addr + s[i].size;
        s[out++] = s[i];
    }
    for (size_t i = 0; i < out; i++) {
        if (!s[i].sized && i + 1 < out && s[i + 1].addr - s[i].addr < s[i].size)
            s[i].size = s[i + 1].addr - s[i].addr;
        uint64_t end = s[i].addr + s[i].size;
        s[i].maxend = i && s[i - 1].maxend > end ? s[i - 1].maxend : end;
    }
    fl->syms = s;
    fl->nsyms = out;
    return 0;
}

/* Name of the code symbol holding `pc` (the one starting last when they
 * nest), or NULL: a gap is a function absent from the table. */
static const char *find_sym(const file_t *fl, uint64_t pc, uint64_t *start)
{
    size_t lo = 0, hi = fl->nsyms; /* first index with addr > pc */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fl->syms[mid].addr <= pc) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i-- > 0 && fl->syms[i].maxend > pc;)
        if (pc - fl->syms[i].addr < fl->syms[i].size) {
            *start = fl->syms[i].addr;
            return fl->syms[i].name;
        }
    return NULL;
}

/* The row whose [start, end) holds ip (greatest start wins), or NULL.
 * rows (one process's) are sorted by start with maxend filled. */
static mod_row_t *find_row(mod_row_t *rows, size_t nrows, uint64_t ip)
{
    size_t lo = 0, hi = nrows; /* first index with start > ip */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rows[mid].start <= ip) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i-- > 0 && rows[i].maxend > ip;)
        if (rows[i].end > ip) return &rows[i];
    return NULL;
}

static void free_rows(mod_row_t *rows, size_t nrows)
{
    for (size_t i = 0; i < nrows; i++) free(rows[i].path);
    free(rows);
}

/* Reads the modules rows of every process with pending frames, sorted by
 * process then start (then id), into *rows_out / *nrows_out.  Returns 0 or
 * a negative MT_E* code. */
static int read_modules(mt_db_t *db, mod_row_t **rows_out, size_t *nrows_out)
{
    mt_stmt_t *sel = NULL;
    mod_row_t *rows = NULL;
    size_t nrows = 0, cap = 0;
    int rc = mt_stmt_prepare(db, "SELECT process_id, id, path, base, start, \"end\" FROM modules "
                                 "WHERE process_id IN (SELECT process_id FROM frames "
                                 "WHERE symbolized = 0) ORDER BY process_id, start, id", &sel);
    if (rc) goto out;
    while ((rc = mt_stmt_step(sel)) == 1) {
        if (nrows == cap) {
            cap = cap ? cap * 2 : 256;
            mod_row_t *grown = realloc(rows, cap * sizeof *rows);
            if (!grown) { rc = MT_ENOMEM; goto out; }
            rows = grown;
        }
        mod_row_t *r = &rows[nrows];
        memset(r, 0, sizeof *r);
        const char *path = mt_stmt_text(sel, 2);
        r->path = strdup(path ? path : "");
        if (!r->path) { rc = MT_ENOMEM; goto out; }
        nrows++;
        r->process_id = mt_stmt_int(sel, 0);
        r->id = mt_stmt_int(sel, 1);
        r->base = (uint64_t)mt_stmt_int(sel, 3);
        r->start = (uint64_t)mt_stmt_int(sel, 4);
        r->end = (uint64_t)mt_stmt_int(sel, 5);
        r->maxend = r->end;
        if (nrows > 1 && r[-1].process_id == r->process_id && r[-1].maxend > r->end)
            r->maxend = r[-1].maxend;
    }
out:
    mt_stmt_finalize(sel);
    if (rc < 0) {
        free_rows(rows, nrows);
        return rc;
    }
    *rows_out = rows;
    *nrows_out = nrows;
    return 0;
}

/* FNV-1a of a path. */
static uint64_t path_hash(const char *path)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) h = (h ^ *p) * 0x100000001b3u;
    return h;
}

/* FNV-1a of the path, then the identity. */
static uint64_t file_hash(const char *path, const struct stat *sb)
{
    uint64_t h = path_hash(path);
    uint64_t id[4] = {(uint64_t)sb->st_dev, (uint64_t)sb->st_ino, (uint64_t)sb->st_size,
                      (uint64_t)sb->st_mtim.tv_sec};
    for (int i = 0; i < 4; i++) h = (h ^ id[i]) * 0x100000001b3u;
    return h;
}

/* Closes an open file: its Dwfl (which owns the symbol names) and tables
 * go; it can be opened again. */
static void close_file(file_table_t *t, file_t *f)
{
    if (f->state != FILE_OPEN) return;
    dwfl_end(f->dwfl);
    f->dwfl = NULL;
    f->mod = NULL;
    free(f->syms);
    f->syms = NULL;
    f->nsyms = 0;
    f->syms_loaded = 0;
    free(f->cus);
    f->cus = NULL;
    f->ncus = 0;
    f->cus_loaded = 0;
    f->state = FILE_CLOSED;
    if (f->newer) f->newer->older = f->older;
    else t->newest = f->older;
    if (f->older) f->older->newer = f->newer;
    else t->oldest = f->newer;
    f->newer = f->older = NULL;
    t->nopen--;
}

/* ---- resolved frames, kept by file ----
 *
 * Looking up lines costs most at the end of a short trace: libdw reads a
 * module's DWARF on its first lookup (the C library's: 2.6 ms of the 9 ms
 * that python3 -c pass took to symbolize).  What a run resolved in a
 * module with DWARF is kept in the cache directory, one file per module
 * file, named by the hash of its path and checked against the path and
 * the identity (as file_hash takes them), so that the next trace of the same program finds
 * its frames there and opens the module only for new ones (a file whose
 * identity changed - a rebuilt program - finds none, and the frames of its
 * new build replace the old ones).  A module
 * without DWARF is not kept: a debug file installed later must show its
 * lines.  The file, `.frames/HASH`, is text: a first line
 * "memtrace-frames 1 DEV INO SIZE MTIME_S MTIME_NS PATH", then one line
 * per frame, "OFFSET LINE\tFUNCTION\tFILE" (hex, decimal, then the names,
 * empty when unknown), sorted by offset.  Written through a temporary
 * file and a rename; unreadable or damaged, it is ignored (and rewritten
 * by the next run that resolves a frame of the module). */

/* `.frames/HASH` of f under the cache (the hash of its path alone: a
 * rebuilt program's file replaces the one of its earlier build), or 0
 * when there is no cache. */
static int kept_path(const file_t *f, char *out, size_t cap)
{
    return g_cache[0] &&
           (size_t)snprintf(out, cap, "%s/.frames/%016llx", g_cache, (unsigned long long)path_hash(f->path)) < cap;
}

/* The first line of f's file. */
static int kept_header(const file_t *f, char *out, size_t cap)
{
    return snprintf(out, cap, "memtrace-frames 1 %llu %llu %lld %lld %ld %s\n", (unsigned long long)f->dev,
                    (unsigned long long)f->ino, (long long)f->size, (long long)f->mtime.tv_sec,
                    (long)f->mtime.tv_nsec, f->path);
}

static int kept_cmp(const void *a, const void *b)
{
    uint64_t x = ((const kept_t *)a)->off, y = ((const kept_t *)b)->off;
    return (x > y) - (x < y);
}

/* Reads f's kept frames (once).  Returns 0 or MT_ENOMEM; a missing,
 * foreign or damaged file gives none. */
static int kept_load(file_t *f)
{
    f->kept_loaded = 1;
    char path[PATH_MAX], head[PATH_MAX + 128];
    if (!kept_path(f, path, sizeof path)) return 0;
    int hlen = kept_header(f, head, sizeof head);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat sb;
    char *text = NULL;
    if (fstat(fd, &sb) == 0 && sb.st_size > hlen && sb.st_size < (1 << 30) && (text = malloc((size_t)sb.st_size + 1)))
        if (pread(fd, text, (size_t)sb.st_size, 0) != sb.st_size || memcmp(text, head, (size_t)hlen) != 0) {
            free(text);
            text = NULL;
        }
    close(fd);
    if (!text) return 0;
    text[sb.st_size] = 0;
    size_t n = 0;
    for (const char *p = text + hlen; *p; p++) n += *p == '\n';
    kept_t *k = malloc((n ? n : 1) * sizeof *k);
    if (!k) {
        free(text);
        return MT_ENOMEM;
    }
    size_t m = 0;
    for (char *p = text + hlen; *p && m < n;) {
        char *nl = strchr(p, '\n'), *t1 = nl ? memchr(p, '\t', (size_t)(nl - p)) : NULL;
        char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1)) : NULL;
        char *end;
        if (!t2) break; /* damaged: what came before is kept */
        *nl = *t1 = *t2 = 0;
        k[m].off = strtoull(p, &end, 16);
        if (*end != ' ') break;
        k[m].line = (int)strtol(end + 1, &end, 10);
        if (*end) break;
        k[m].function = t1[1] ? t1 + 1 : NULL;
        k[m].file = t2[1] ? t2 + 1 : NULL;
        m++;
        p = nl + 1;
    }
    qsort(k, m, sizeof *k, kept_cmp);
    f->kept = k;
    f->nkept = m;
    f->kept_text = text;
    return 0;
}

/* The kept frame of f at offset off, or NULL. */
static const kept_t *kept_find(const file_t *f, uint64_t off)
{
    size_t lo = 0, hi = f->nkept;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->kept[mid].off < off) lo = mid + 1;
        else hi = mid;
    }
    return lo < f->nkept && f->kept[lo].off == off ? &f->kept[lo] : NULL;
}

static int plain_name(const char *s) { return !s || !strpbrk(s, "\t\n"); }

/* Notes a frame this run resolved, to keep.  Returns 0 or MT_ENOMEM. */
static int kept_add(file_t *f, uint64_t off, const char *function, const char *file, int line)
{
    if (!g_cache[0] || !plain_name(function) || !plain_name(file)) return 0;
    if (f->nadded == f->capadded) {
        size_t cap = f->capadded ? 2 * f->capadded : 64;
        kept_t *k = realloc(f->added, cap * sizeof *k);
        if (!k) return MT_ENOMEM;
        f->added = k;
        f->capadded = cap;
    }
    kept_t *k = &f->added[f->nadded];
    k->off = off;
    k->line = line;
    k->function = function ? strdup(function) : NULL;
    k->file = file ? strdup(file) : NULL;
    if ((function && !k->function) || (file && !k->file)) {
        free((char *)k->function);
        free((char *)k->file);
        return MT_ENOMEM;
    }
    f->nadded++;
    return 0;
}

/* Writes f's kept frames with those this run added (nothing when it added
 * none).  Failures only lose the cache. */
static void kept_save(file_t *f)
{
    char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX], head[PATH_MAX + 128];
    if (!f->nadded || !kept_path(f, path, sizeof path)) return;
    if ((size_t)snprintf(dir, sizeof dir, "%s/.frames", g_cache) >= sizeof dir ||
        (mkdir(dir, 0700) != 0 && errno != EEXIST) ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.tmp.XXXXXX", dir) >= sizeof tmp)
        return;
    qsort(f->added, f->nadded, sizeof *f->added, kept_cmp);
    int fd = mkstemp(tmp);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!out) {
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return;
    }
    kept_header(f, head, sizeof head);
    fputs(head, out);
    /* both sorted: merged, one line an offset (this run's where both
     * have one; processes mapping the same file added theirs each) */
    uint64_t last = 0;
    for (size_t i = 0, j = 0, lines = 0; i < f->nkept || j < f->nadded;) {
        const kept_t *k;
        if (j < f->nadded && (i == f->nkept || f->added[j].off <= f->kept[i].off)) {
            k = &f->added[j++];
            if (i < f->nkept && f->kept[i].off == k->off) i++;
        } else {
            k = &f->kept[i++];
        }
        if (lines++ && k->off == last) continue;
        last = k->off;
        fprintf(out, "%llx %d\t%s\t%s\n", (unsigned long long)k->off, k->line, k->function ? k->function : "",
                k->file ? k->file : "");
    }
    if (fclose(out) != 0 || rename(tmp, path) != 0) unlink(tmp);
}

static void free_files(file_table_t *t)
{
    for (size_t b = 0; b < t->nbuckets; b++) {
        for (file_t *f = t->buckets[b], *next; f; f = next) {
            next = f->next;
            close_file(t, f);
            kept_save(f);
            for (size_t i = 0; i < f->nadded; i++) {
                free((char *)f->added[i].function);
                free((char *)f->added[i].file);
            }
            free(f->added);
            free(f->kept);
            free(f->kept_text);
            free(f->path);
            free(f);
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->n = 0;
}

/* Opens f as an ELF file reported alone to a new Dwfl at bias 0; state
 * becomes FILE_OPEN, or FILE_FAILED (unreadable, not ELF, replaced since
 * it was identified, out of memory in libdwfl: no symbols, and no retry). */
static void open_file(file_t *f)
{
    struct stat sb;
    GElf_Addr bias;
    GElf_Ehdr ehdr;
    f->state = FILE_FAILED;
    /* Opened here, not by libdwfl, to check that the file read is the one
     * identified (it may be opened again after being closed). */
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (fstat(fd, &sb) != 0 || sb.st_dev != f->dev || sb.st_ino != f->ino || sb.st_size != f->size ||
        sb.st_mtim.tv_sec != f->mtime.tv_sec || sb.st_mtim.tv_nsec != f->mtime.tv_nsec ||
        !(f->dwfl = dwfl_begin(&offline_callbacks))) {
        close(fd);
        return;
    }
    dwfl_report_begin(f->dwfl);
    /* base 0, add_p_vaddr = true: an ET_DYN file's addresses are its
     * link-time addresses, so a process address is ip - (load bias), also
     * for a (prelinked) ET_DYN whose first p_vaddr is not 0.  libdwfl
     * ignores the base of ET_EXEC: fixed addresses (see absolute).  On
     * success the Dwfl owns fd (dwfl_end closes it); on failure it does
     * not. */
    f->mod = dwfl_report_elf(f->dwfl, f->path, f->path, fd, 0, true);
    if (!f->mod) close(fd);
    dwfl_report_end(f->dwfl, NULL, NULL);
    Elf *elf = f->mod ? dwfl_module_getelf(f->mod, &bias) : NULL;
    if (!elf || !gelf_getehdr(elf, &ehdr)) {
        dwfl_end(f->dwfl);
        f->dwfl = NULL;
        f->mod = NULL;
        return;
    }
    f->absolute = ehdr.e_type == ET_EXEC || ehdr.e_type == ET_CORE;
    f->state = FILE_OPEN;
}

/* The module of file f, opening it if needed, or NULL (it cannot be read
 * as ELF).  Each open file holds one or more descriptors (the file, its
 * separate debug file, a dwz file), so at most t->max_open files are open
 * at a time: the least recently used one is closed to open another. */
static Dwfl_Module *file_module(file_table_t *t, file_t *f)
{
    if (f->state == FILE_FAILED) return NULL;
    if (f->state == FILE_CLOSED) {
        while (t->nopen >= t->max_open && t->oldest) close_file(t, t->oldest);
        open_file(f);
        if (f->state != FILE_OPEN) return NULL;
        t->nopen++;
    } else if (t->newest == f) {
        return f->mod;
    } else { /* unlink, then insert as the newest below */
        f->newer->older = f->older;
        if (f->older) f->older->newer = f->newer;
        else t->oldest = f->newer;
    }
    f->newer = NULL;
    f->older = t->newest;
    if (t->newest) t->newest->newer = f;
    else t->oldest = f;
    t->newest = f;
    return f->mod;
}

/* How many files may be open at once: an eighth of the descriptor limit
 * (a file takes up to about three), within [4, 1024]. */
static size_t max_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1024;
    rlim_t n = rl.rlim_cur / 8;
    return n < 4 ? 4 : n > 1024 ? 1024 : (size_t)n;
}

/* The file of row r: looked up (stat, then the table by path and identity)
 * on first use.  Sets r->file (NULL for an empty path, a
 * missing or non-regular file).  Returns 0 or MT_ENOMEM. */
static int row_file(file_table_t *t, mod_row_t *r)
{
    struct stat sb;
    if (r->looked_up) return 0;
    r->looked_up = 1;
    r->file = NULL;
    if (!r->path[0] || stat(r->path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    uint64_t h = file_hash(r->path, &sb);
    if (t->nbuckets) {
        for (file_t *f = t->buckets[h & (t->nbuckets - 1)]; f; f = f->next) {
            if (f->hash == h && f->dev == sb.st_dev && f->ino == sb.st_ino && f->size == sb.st_size &&
                f->mtime.tv_sec == sb.st_mtim.tv_sec && f->mtime.tv_nsec == sb.st_mtim.tv_nsec &&
                !strcmp(f->path, r->path)) {
                r->file = f;
                return 0;
            }
        }
    }
    if (t->n >= t->nbuckets) { /* keep the load factor at most 1 */
        size_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
        file_t **b = calloc(nb, sizeof *b);
        if (!b) return MT_ENOMEM;
        for (size_t i = 0; i < t->nbuckets; i++) {
            for (file_t *f = t->buckets[i], *next; f; f = next) {
                next = f->next;
                f->next = b[f->hash & (nb - 1)];
                b[f->hash & (nb - 1)] = f;
            }
        }
        free(t->buckets);
        t->buckets = b;
        t->nbuckets = nb;
    }
    file_t *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(r->path))) {
        free(f);
        return MT_ENOMEM;
    }
    f->hash = h;
    f->dev = sb.st_dev;
    f->ino = sb.st_ino;
    f->size = sb.st_size;
    f->mtime = sb.st_mtim;
    f->lines = -1;
    f->next = t->buckets[h & (t->nbuckets - 1)];
    t->buckets[h & (t->nbuckets - 1)] = f;
    t->n++;
    r->file = f;
    return 0;
}

/* `file` made absolute against the CU's compilation directory (libdw
 * 0.188 leaves DWARF 5 file names relative when the compiler was given a
 * relative source path).  Returns file itself when it is absolute, NULL, or
 * cannot be joined; else the joined path in buf. */
static const char *full_path(const char *file, const char *comp_dir, char *buf, size_t len)
{
    if (!file || file[0] == '/' || !comp_dir || comp_dir[0] != '/') return file;
    int n = snprintf(buf, len, "%s/%s", comp_dir, file);
    return n > 0 && (size_t)n < len ? buf : file;
}

static int cu_cmp(const void *a, const void *b)
{
    const cu_range_t *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return (x->hi > y->hi) - (x->hi < y->hi);
}

/* Fills fl->cus with the address ranges of every compilation unit of
 * fl->mod's DWARF, sorted.  No DWARF gives an empty table.  Returns 0 or
 * MT_ENOMEM. */
static int load_cus(file_t *fl)
{
    fl->cus_loaded = 1;
    Dwarf *dw = dwfl_module_getdwarf(fl->mod, &fl->dwbias);
    if (!dw) return 0;
    size_t n = 0, cap = 0;
    cu_range_t *cus = NULL;
    Dwarf_CU *cu = NULL;
    Dwarf_Die cudie;
    uint8_t unit_type;
    while (dwarf_get_units(dw, cu, &cu, NULL, &unit_type, &cudie, NULL) == 0) {
        if (unit_type != DW_UT_compile && unit_type != DW_UT_partial) continue;
        Dwarf_Addr base, lo, hi;
        for (ptrdiff_t it = 0; (it = dwarf_ranges(&cudie, it, &base, &lo, &hi)) > 0;) {
            if (lo >= hi) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                cu_range_t *grown = realloc(cus, cap * sizeof *cus);
                if (!grown) {
                    free(cus);
                    return MT_ENOMEM;
                }
                cus = grown;
            }
            cus[n].lo = lo + fl->dwbias;
            cus[n].hi = hi + fl->dwbias;
            cus[n].cudie = cudie;
            n++;
        }
    }
    qsort(cus, n, sizeof *cus, cu_cmp);
    for (size_t i = 0; i < n; i++)
        cus[i].maxhi = i && cus[i - 1].maxhi > cus[i].hi ? cus[i - 1].maxhi : cus[i].hi;
    fl->cus = cus;
    fl->ncus = n;
    return 0;
}

/* The compilation unit of fl whose ranges hold pc, or NULL. */
static Dwarf_Die *find_cu(file_t *fl, uint64_t pc)
{
    size_t lo = 0, hi = fl->ncus; /* first index with lo > pc */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fl->cus[mid].lo <= pc) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i-- > 0 && fl->cus[i].maxhi > pc;)
        if (pc < fl->cus[i].hi) return &fl->cus[i].cudie;
    return NULL;
}

/* Source file and line of pc (an address of fl's own address space):
 * *file (NULL when unknown; may point into buf) and *line (0 when unknown).
 * libdwfl finds the compilation unit through .debug_aranges, which clang
 * does not emit by default; when it finds nothing, the CU is looked up in
 * fl's table of CU ranges (DW_AT_ranges / low_pc of every CU, built on
 * first need).  Returns 0 or MT_ENOMEM. */
static int find_line(file_t *fl, uint64_t pc, const char **file, int *line, uint64_t *row_addr, char *buf,
                     size_t len)
{
    const char *comp_dir = NULL;
    *file = NULL;
    *line = 0;
    *row_addr = 0;
    Dwfl_Line *dl = dwfl_module_getsrc(fl->mod, pc);
    if (dl) {
        Dwarf_Addr a;
        int col;
        Dwarf_Word mtime, length;
        *file = dwfl_lineinfo(dl, &a, line, &col, &mtime, &length);
        *row_addr = a;
        comp_dir = dwfl_line_comp_dir(dl);
    } else {
        int rc;
        if (!fl->cus_loaded && (rc = load_cus(fl))) return rc;
        Dwarf_Die *cudie = find_cu(fl, pc);
        Dwarf_Line *l = cudie ? dwarf_getsrc_die(cudie, pc - fl->dwbias) : NULL;
        if (l) {
            Dwarf_Attribute attr;
            Dwarf_Addr a;
            *file = dwarf_linesrc(l, NULL, NULL);
            if (dwarf_lineno(l, line) != 0) *line = 0;
            if (dwarf_lineaddr(l, &a) == 0) *row_addr = a + fl->dwbias;
            comp_dir = dwarf_formstring(dwarf_attr(cudie, DW_AT_comp_dir, &attr));
        }
    }
    *file = full_path(*file, comp_dir, buf, len);
    return 0;
}

/* Looks up one frame and writes its row through `upd`; rows/nrows are the
 * module rows of its process.  *resolved is set when a function name was
 * stored.  Returns 0 or a negative MT_E* code. */
static int symbolize_frame(mt_stmt_t *upd, file_table_t *files, mod_row_t *rows, size_t nrows,
                           const frame_t *f, int *resolved)
{
    const char *function = NULL, *file = NULL;
    char joined[4096];
    int line = 0, rc;
    *resolved = 0;
    mod_row_t *r = find_row(rows, nrows, f->ip);
    if (r) {
        uint64_t off = f->ip - r->base;
        if ((rc = mt_stmt_bind_int(upd, 1, r->id))) return rc;
        if ((rc = mt_stmt_bind_int(upd, 2, (int64_t)off))) return rc;
        if ((rc = row_file(files, r))) return rc;
        file_t *fl = r->file;
        const kept_t *k;
        if (fl && !fl->kept_loaded && (rc = kept_load(fl))) return rc;
        if (fl && (k = kept_find(fl, off)) != NULL) {
            function = k->function;
            file = k->file;
            line = k->line;
        } else if (fl && file_module(files, fl)) {
            /* ip - 1 in the file's address space (unsigned wrap-around for
             * nonsense rows just finds nothing) */
            uint64_t pc = (f->ip ? f->ip - 1 : 0) - (fl->absolute ? 0 : r->base);
            if (!fl->syms_loaded && (rc = load_syms(fl))) return rc;
            uint64_t sym_start = 0, row_addr = 0;
            function = find_sym(fl, pc, &sym_start);
            if ((rc = find_line(fl, pc, &file, &line, &row_addr, joined, sizeof joined))) return rc;
            /* a line row that starts before the function does belongs to
             * code before it (e.g. _start, which has no line table, would
             * get the last line of main) */
            if (function && row_addr && row_addr < sym_start) {
                file = NULL;
                line = 0;
            }
            if (fl->lines < 0) {
                Dwarf_Addr bias;
                fl->lines = dwfl_module_getdwarf(fl->mod, &bias) != NULL;
            }
            if (fl->lines && (rc = kept_add(fl, off, function, file, line))) return rc;
        }
    } else {
        if ((rc = mt_stmt_bind_null(upd, 1))) return rc;
        if ((rc = mt_stmt_bind_null(upd, 2))) return rc;
    }
    /* "__libc_start_main@@GLIBC_2.34": the symbol version is not part of
     * the function's name as people write it */
    char plain[1024];
    const char *at = function ? strchr(function, '@') : NULL;
    if (at && at > function && (size_t)(at - function) < sizeof plain) {
        memcpy(plain, function, (size_t)(at - function));
        plain[at - function] = 0;
        function = plain;
    }
    if ((rc = mt_stmt_bind_text(upd, 3, function))) return rc;
    if ((rc = mt_stmt_bind_text(upd, 4, file))) return rc;
    if (line > 0) rc = mt_stmt_bind_int(upd, 5, line);
    else rc = mt_stmt_bind_null(upd, 5);
    if (rc) return rc;
    if ((rc = mt_stmt_bind_int(upd, 6, f->id))) return rc;
    if ((rc = mt_stmt_run(upd))) return rc;
    *resolved = function != NULL;
    return 0;
}

/* Reads every frame with symbolized = 0 into *out (ordered by process, ip).
 * Returns 0 or a negative MT_E* code. */
static int read_pending_frames(mt_db_t *db, frame_t **out, size_t *nout)
{
    mt_stmt_t *sel = NULL;
    frame_t *frames = NULL;
    size_t n = 0, cap = 0;
    int rc = mt_stmt_prepare(db, "SELECT id, process_id, ip FROM frames WHERE symbolized = 0 "
                                 "ORDER BY process_id, ip", &sel);
    if (rc) goto out;
    while ((rc = mt_stmt_step(sel)) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            frame_t *grown = realloc(frames, cap * sizeof *frames);
            if (!grown) { rc = MT_ENOMEM; goto out; }
            frames = grown;
        }
        frames[n].id = mt_stmt_int(sel, 0);
        frames[n].process_id = mt_stmt_int(sel, 1);
        frames[n].ip = (uint64_t)mt_stmt_int(sel, 2);
        n++;
    }
out:
    mt_stmt_finalize(sel);
    if (rc < 0) {
        free(frames);
        return rc;
    }
    *out = frames;
    *nout = n;
    return 0;
}

/* Contract: call outside a transaction (it opens its own).  On failure the
 * transaction is rolled back (a trace still in its recording set-up runs
 * without a journal, where SQLite cannot promise that: re-run or discard). */
int mt_symbolize(mt_db_t *db, long *nresolved)
{
    mt_stmt_t *upd = NULL;
    frame_t *frames = NULL;
    mod_row_t *rows = NULL;
    file_table_t files = {.max_open = max_open_files()};
    size_t nframes = 0, nrows = 0;
    int in_tx = 0, rc;
    long resolved = 0;

    if (nresolved) *nresolved = 0;
    if (!db) return MT_EINVAL;
    if ((rc = mt_db_begin(db))) goto out;
    in_tx = 1;
    if ((rc = read_pending_frames(db, &frames, &nframes))) goto out;
    if (nframes == 0) goto out;
    if ((rc = read_modules(db, &rows, &nrows))) goto out;
    /* the cache first, then libdwfl's default places (".debug" beside the
     * file and in its directory, then /usr/lib/debug) */
    static char path[PATH_MAX + 32];
    if (cache_dir(g_cache, sizeof g_cache) && (size_t)snprintf(path, sizeof path, ":.debug:%s:/usr/lib/debug", g_cache) < sizeof path)
        debuginfo_path = path;
    else {
        g_cache[0] = 0;
        debuginfo_path = NULL;
    }
    rc = mt_stmt_prepare(db, "UPDATE frames SET module_id = ?1, \"offset\" = ?2, function = ?3, "
                             "file = ?4, line = ?5, symbolized = 1 WHERE id = ?6", &upd);
    if (rc) goto out;

    /* frames and rows are both sorted by process: walk them together */
    size_t r0 = 0;
    for (size_t i = 0; i < nframes;) {
        int64_t pid = frames[i].process_id;
        while (r0 < nrows && rows[r0].process_id < pid) r0++;
        size_t r1 = r0;
        while (r1 < nrows && rows[r1].process_id == pid) r1++;
        for (; i < nframes && frames[i].process_id == pid; i++) {
            int got;
            /* no modules at all: rows is NULL (NULL + 0 is undefined in C) */
            rc = symbolize_frame(upd, &files, rows ? rows + r0 : NULL, r1 - r0, &frames[i], &got);
            if (rc) goto out;
            resolved += got;
        }
        r0 = r1;
    }
out:
    free_files(&files);
    free_rows(rows, nrows);
    mt_stmt_finalize(upd);
    free(frames);
    if (in_tx) {
        if (!rc) rc = mt_db_commit(db);
        if (rc) mt_db_exec(db, "ROLLBACK");
    }
    if (!rc && nresolved) *nresolved = resolved;
    return rc;
}
