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
 *      process and ip, so no statement reads `frames` while it is updated.
 *   2. Per process: its `modules` rows are read sorted by start, and every
 *      file that exists is reported to one fresh offline Dwfl at its load
 *      bias.  Rows with the same path and bias share one Dwfl_Module.
 *   3. Per frame: the module row whose [start, end) holds ip is found by
 *      bisection (a prefix maximum of `end` makes overlapping rows safe; the
 *      row with the greatest start wins).  The row gives module_id and
 *      offset = ip - base.  Function, file and line are looked up at ip - 1:
 *      ip is a return address, the byte after the call, which may already
 *      belong to the next line or even the next function.
 *   4. All updates run through one prepared UPDATE in one transaction.
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
#include <elfutils/libdwfl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A code symbol of a module, address already relocated. */
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

/* An address range of a compilation unit, relocated (see find_line). */
typedef struct {
    uint64_t lo, hi;
    uint64_t maxhi;     /* max(hi) over this entry and all before */
    Dwarf_Die cudie;
} cu_range_t;

/* One `modules` row of the process being symbolized. */
typedef struct {
    int64_t id;
    char *path;
    uint64_t base, start, end;
    uint64_t maxend;    /* max(end) over this row and every row before it */
    Dwfl_Module *mod;   /* NULL: file missing, unreadable or not ELF */
    int owner;          /* index of the row holding mod's symbol and CU
                         * tables (rows sharing mod share them) */
    int syms_loaded;    /* owner rows: syms/nsyms are valid */
    sym_t *syms;
    size_t nsyms;
    int cus_loaded;     /* owner rows: cus/ncus are valid */
    cu_range_t *cus;
    size_t ncus;
    Dwarf_Addr dwbias;  /* bias of the module's DWARF addresses */
} mod_row_t;

/* A pending frame. */
typedef struct {
    int64_t id, process_id;
    uint64_t ip;
} frame_t;

static char *debuginfo_path; /* NULL: libdwfl's default search path */

static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf, /* unused: files are reported by path */
    .find_debuginfo = dwfl_standard_find_debuginfo,
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

/* Fills r->syms with the code symbols of r->mod sorted by address: typed
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
static int load_syms(mod_row_t *r)
{
    r->syms_loaded = 1;
    int n = dwfl_module_getsymtab(r->mod);
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
        const char *name = dwfl_module_getsym_info(r->mod, i, &sym, &addr, &shndx, &elf, &bias);
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
    r->syms = s;
    r->nsyms = out;
    return 0;
}

/* Name of the code symbol holding `pc` (the one starting last when they
 * nest), or NULL: a gap is a function absent from the table. */
static const char *find_sym(const mod_row_t *r, uint64_t pc)
{
    size_t lo = 0, hi = r->nsyms; /* first index with addr > pc */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->syms[mid].addr <= pc) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i-- > 0 && r->syms[i].maxend > pc;)
        if (pc - r->syms[i].addr < r->syms[i].size) return r->syms[i].name;
    return NULL;
}

/* Index of the row whose [start, end) holds ip (greatest start wins), or
 * -1.  rows are sorted by start with maxend filled. */
static int find_row(const mod_row_t *rows, int nrows, uint64_t ip)
{
    int lo = 0, hi = nrows; /* first index with start > ip */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (rows[mid].start <= ip) lo = mid + 1;
        else hi = mid;
    }
    for (int i = lo - 1; i >= 0 && rows[i].maxend > ip; i--)
        if (rows[i].end > ip) return i;
    return -1;
}

static void free_rows(mod_row_t *rows, int nrows)
{
    for (int i = 0; i < nrows; i++) {
        free(rows[i].path);
        free(rows[i].syms);
        free(rows[i].cus);
    }
    free(rows);
}

/* Reads the modules of process `pid` (sorted by start) through `sel` into
 * *rows_out / *nrows_out.  Returns 0 or a negative MT_E* code. */
static int read_modules(mt_stmt_t *sel, int64_t pid, mod_row_t **rows_out, int *nrows_out)
{
    mod_row_t *rows = NULL;
    int nrows = 0, cap = 0, rc;
    *rows_out = NULL;
    *nrows_out = 0;
    if ((rc = mt_stmt_bind_int(sel, 1, pid))) goto out;
    while ((rc = mt_stmt_step(sel)) == 1) {
        if (nrows == cap) {
            cap = cap ? cap * 2 : 64;
            mod_row_t *grown = realloc(rows, (size_t)cap * sizeof *rows);
            if (!grown) { rc = MT_ENOMEM; goto out; }
            rows = grown;
        }
        mod_row_t *r = &rows[nrows];
        memset(r, 0, sizeof *r);
        const char *path = mt_stmt_text(sel, 1);
        r->path = strdup(path ? path : "");
        if (!r->path) { rc = MT_ENOMEM; goto out; }
        nrows++;
        r->id = mt_stmt_int(sel, 0);
        r->base = (uint64_t)mt_stmt_int(sel, 2);
        r->start = (uint64_t)mt_stmt_int(sel, 3);
        r->end = (uint64_t)mt_stmt_int(sel, 4);
        r->maxend = nrows > 1 && rows[nrows - 2].maxend > r->end ? rows[nrows - 2].maxend : r->end;
        r->owner = nrows - 1;
    }
out:
    mt_stmt_reset(sel);
    if (rc < 0) {
        free_rows(rows, nrows);
        return rc;
    }
    *rows_out = rows;
    *nrows_out = nrows;
    return 0;
}

/* Reports every existing file of `rows` to a new Dwfl; rows that cannot be
 * reported keep mod = NULL.  Returns the Dwfl, or NULL (out of memory:
 * every row then stays without symbols). */
static Dwfl *report_modules(mod_row_t *rows, int nrows)
{
    Dwfl *dwfl = dwfl_begin(&offline_callbacks);
    if (!dwfl) return NULL;
    dwfl_report_begin(dwfl);
    for (int i = 0; i < nrows; i++) {
        mod_row_t *r = &rows[i];
        struct stat sb;
        if (!r->path[0] || stat(r->path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        int shared = 0;
        for (int j = 0; j < i && !shared; j++) {
            if (rows[j].mod && rows[j].base == r->base && !strcmp(rows[j].path, r->path)) {
                r->mod = rows[j].mod;
                r->owner = rows[j].owner;
                shared = 1;
            }
        }
        /* base is the load bias (dlpi_addr): add_p_vaddr = true places the
         * first PT_LOAD at base + p_vaddr, which is also right for the rare
         * (prelinked) ET_DYN whose p_vaddr is not 0.  ET_EXEC ignores it. */
        if (!shared) r->mod = dwfl_report_elf(dwfl, r->path, r->path, -1, r->base, true);
    }
    dwfl_report_end(dwfl, NULL, NULL);
    return dwfl;
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

/* Fills r->cus with the address ranges of every compilation unit of
 * r->mod's DWARF, sorted.  No DWARF gives an empty table.  Returns 0 or
 * MT_ENOMEM. */
static int load_cus(mod_row_t *r)
{
    r->cus_loaded = 1;
    Dwarf *dw = dwfl_module_getdwarf(r->mod, &r->dwbias);
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
            cus[n].lo = lo + r->dwbias;
            cus[n].hi = hi + r->dwbias;
            cus[n].cudie = cudie;
            n++;
        }
    }
    qsort(cus, n, sizeof *cus, cu_cmp);
    for (size_t i = 0; i < n; i++)
        cus[i].maxhi = i && cus[i - 1].maxhi > cus[i].hi ? cus[i - 1].maxhi : cus[i].hi;
    r->cus = cus;
    r->ncus = n;
    return 0;
}

/* The compilation unit of r whose ranges hold pc, or NULL. */
static Dwarf_Die *find_cu(mod_row_t *r, uint64_t pc)
{
    size_t lo = 0, hi = r->ncus; /* first index with lo > pc */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->cus[mid].lo <= pc) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i-- > 0 && r->cus[i].maxhi > pc;)
        if (pc < r->cus[i].hi) return &r->cus[i].cudie;
    return NULL;
}

/* Source file and line of pc in module `mod` (its symbol and CU tables in
 * owner row `o`): *file (NULL when unknown; may point into buf) and *line
 * (0 when unknown).  libdwfl finds the compilation unit through
 * .debug_aranges, which clang does not emit by default; when it finds
 * nothing, the CU is looked up in o's table of CU ranges (DW_AT_ranges /
 * low_pc of every CU, built on first need).  Returns 0 or MT_ENOMEM. */
static int find_line(mod_row_t *o, Dwfl_Module *mod, uint64_t pc, const char **file, int *line,
                     char *buf, size_t len)
{
    const char *comp_dir = NULL;
    *file = NULL;
    *line = 0;
    Dwfl_Line *dl = dwfl_module_getsrc(mod, pc);
    if (dl) {
        Dwarf_Addr a;
        int col;
        Dwarf_Word mtime, length;
        *file = dwfl_lineinfo(dl, &a, line, &col, &mtime, &length);
        comp_dir = dwfl_line_comp_dir(dl);
    } else {
        int rc;
        if (!o->cus_loaded && (rc = load_cus(o))) return rc;
        Dwarf_Die *cudie = find_cu(o, pc);
        Dwarf_Line *l = cudie ? dwarf_getsrc_die(cudie, pc - o->dwbias) : NULL;
        if (l) {
            Dwarf_Attribute attr;
            *file = dwarf_linesrc(l, NULL, NULL);
            if (dwarf_lineno(l, line) != 0) *line = 0;
            comp_dir = dwarf_formstring(dwarf_attr(cudie, DW_AT_comp_dir, &attr));
        }
    }
    *file = full_path(*file, comp_dir, buf, len);
    return 0;
}

/* Looks up one frame and writes its row through `upd`.  *resolved is set
 * when a function name was stored.  Returns 0 or a negative MT_E* code. */
static int symbolize_frame(mt_stmt_t *upd, mod_row_t *rows, int nrows, const frame_t *f, int *resolved)
{
    const char *function = NULL, *file = NULL;
    char joined[4096];
    int line = 0, rc;
    *resolved = 0;
    int ri = find_row(rows, nrows, f->ip);
    if (ri >= 0) {
        mod_row_t *r = &rows[ri];
        mod_row_t *o = &rows[r->owner];
        if ((rc = mt_stmt_bind_int(upd, 1, r->id))) return rc;
        if ((rc = mt_stmt_bind_int(upd, 2, (int64_t)(f->ip - r->base)))) return rc;
        if (r->mod) {
            uint64_t pc = f->ip ? f->ip - 1 : 0;
            if (!o->syms_loaded && (rc = load_syms(o))) return rc;
            function = find_sym(o, pc);
            if ((rc = find_line(o, r->mod, pc, &file, &line, joined, sizeof joined))) return rc;
        }
    } else {
        if ((rc = mt_stmt_bind_null(upd, 1))) return rc;
        if ((rc = mt_stmt_bind_null(upd, 2))) return rc;
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
    mt_stmt_t *sel_mod = NULL, *upd = NULL;
    frame_t *frames = NULL;
    mod_row_t *rows = NULL;
    int nrows = 0, in_tx = 0, rc;
    size_t nframes = 0;
    long resolved = 0;
    Dwfl *dwfl = NULL;

    if (nresolved) *nresolved = 0;
    if (!db) return MT_EINVAL;
    if ((rc = mt_db_begin(db))) goto out;
    in_tx = 1;
    if ((rc = read_pending_frames(db, &frames, &nframes))) goto out;
    if (nframes == 0) goto out;
    rc = mt_stmt_prepare(db, "SELECT id, path, base, start, \"end\" FROM modules "
                             "WHERE process_id = ?1 ORDER BY start, id", &sel_mod);
    if (rc) goto out;
    rc = mt_stmt_prepare(db, "UPDATE frames SET module_id = ?1, \"offset\" = ?2, function = ?3, "
                             "file = ?4, line = ?5, symbolized = 1 WHERE id = ?6", &upd);
    if (rc) goto out;

    for (size_t i = 0; i < nframes;) {
        int64_t pid = frames[i].process_id;
        if ((rc = read_modules(sel_mod, pid, &rows, &nrows))) goto out;
        dwfl = nrows ? report_modules(rows, nrows) : NULL;
        for (; i < nframes && frames[i].process_id == pid; i++) {
            int got;
            if ((rc = symbolize_frame(upd, rows, nrows, &frames[i], &got))) goto out;
            resolved += got;
        }
        dwfl_end(dwfl); /* the symbol names in rows point into it */
        dwfl = NULL;
        free_rows(rows, nrows);
        rows = NULL;
        nrows = 0;
    }
out:
    dwfl_end(dwfl);
    free_rows(rows, nrows);
    mt_stmt_finalize(sel_mod);
    mt_stmt_finalize(upd);
    free(frames);
    if (in_tx) {
        if (!rc) rc = mt_db_commit(db);
        if (rc) mt_db_exec(db, "ROLLBACK");
    }
    if (!rc && nresolved) *nresolved = resolved;
    return rc;
}
