/* remote_unwind.c - call stacks of a stopped thread of another process,
 * for the OS events the tracer records (tracer/ptrace.c).
 *
 * libunwind does the unwinding (DWARF call-frame information, as the
 * preload library's unwinder); this file gives it memory cheaply.  Its
 * stock ptrace accessors read the target a word at a time with
 * PTRACE_PEEKDATA and re-read /proc/PID/maps and the ELF file whenever a
 * frame lies in another object, hundreds of system calls per stack.  Here:
 *   - registers come from the PTRACE_GETREGS the tracer made anyway;
 *   - the top of the stack (WINDOW_PAGES pages from the stack pointer) is
 *     read with one process_vm_readv;
 *   - the unwind tables (.eh_frame_hdr, .eh_frame) are read from a local
 *     read-only mapping of each object's file, mapped once per process
 *     image: module table from /proc/PID/maps, refreshed when an address
 *     is in no known object (at most once per stack);
 *   - anything else: process_vm_readv of one word.
 * Objects without .eh_frame_hdr (gcc -static leaves it out) end the stack.
 */
#define _GNU_SOURCE
#include "mt_remote_unwind.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <libunwind.h>

/* libunwind's table search, exported but not declared in its headers */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t *di,
                                              unw_proc_info_t *pi, int need_unwind_info, void *arg);

#define WINDOW_PAGES 16
#define MAX_OBJECTS 512

typedef struct {
    uint64_t lo, hi;        /* address range of the object's mappings */
    uint64_t bias;          /* load bias */
    const uint8_t *file;    /* the file, mapped here read-only */
    size_t file_len;
    const Elf64_Phdr *ph;
    unsigned phnum;
    int have_di;
    unw_dyn_info_t di;      /* its .eh_frame_hdr search table */
} object_t;

struct mt_runwind {
    pid_t pid;
    unw_addr_space_t as;
    object_t obj[MAX_OBJECTS];
    unsigned nobj;
    int refreshed;          /* the module table was re-read during this stack */
    /* during one unwind */
    pid_t tid;
    const struct user_regs_struct *regs;
    uint64_t win_lo, win_hi;
    uint8_t win[WINDOW_PAGES * 4096];
};

static void drop_objects(mt_runwind_t *u)
{
    for (unsigned i = 0; i < u->nobj; i++)
        if (u->obj[i].file) munmap((void *)u->obj[i].file, u->obj[i].file_len);
    u->nobj = 0;
}

/* Maps `path` and fills the object's program headers, bias and search
 * table.  `start` is where its offset-0 page is mapped in the target. */
static void load_object(object_t *o, const char *path, uint64_t start)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat sb;
    void *p = MAP_FAILED;
    if (fstat(fd, &sb) == 0 && sb.st_size >= (off_t)sizeof(Elf64_Ehdr))
        p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return;
    const Elf64_Ehdr *eh = p;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > (uint64_t)sb.st_size) {
        munmap(p, (size_t)sb.st_size);
        return;
    }
    o->file = p;
    o->file_len = (size_t)sb.st_size;
    o->ph = (const Elf64_Phdr *)((const uint8_t *)p + eh->e_phoff);
    o->phnum = eh->e_phnum;
    uint64_t first = UINT64_MAX;
    for (unsigned i = 0; i < o->phnum; i++)
        if (o->ph[i].p_type == PT_LOAD && o->ph[i].p_vaddr < first) first = o->ph[i].p_vaddr & ~(uint64_t)4095;
    o->bias = eh->e_type == ET_EXEC ? 0 : start - (first == UINT64_MAX ? 0 : first);
    const Elf64_Phdr *hdr = NULL, *text = NULL;
    for (unsigned i = 0; i < o->phnum; i++) {
        if (o->ph[i].p_type == PT_GNU_EH_FRAME) hdr = &o->ph[i];
        if (o->ph[i].p_type == PT_LOAD && (o->ph[i].p_flags & PF_X)) text = &o->ph[i];
    }
    if (!hdr || !text || hdr->p_offset + 12 > o->file_len) return;
    /* .eh_frame_hdr: version 1, encodings; the binary search table must be
     * datarel sdata4 (0x3b), as every linker writes it */
    const uint8_t *h = o->file + hdr->p_offset;
    if (h[0] != 1 || h[3] != 0x3b || (h[2] & 0x0f) != 0x03) return;
    uint32_t count;
    memcpy(&count, h + 8, 4); /* fde_count, udata4 (eh_frame_ptr before it is 4 bytes) */
    if ((h[1] & 0x0f) != 0x0b && (h[1] & 0x0f) != 0x03) return;
    o->di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    o->di.start_ip = text->p_vaddr + o->bias;
    o->di.end_ip = text->p_vaddr + text->p_memsz + o->bias;
    o->di.gp = 0;
    o->di.u.rti.name_ptr = 0;
    o->di.u.rti.segbase = hdr->p_vaddr + o->bias;
    o->di.u.rti.table_data = hdr->p_vaddr + o->bias + 12;
    o->di.u.rti.table_len = (uint64_t)count * 8 / sizeof(unw_word_t);
    o->have_di = 1;
}

/* Re-reads the objects of the process from /proc/PID/maps. */
static void read_objects(mt_runwind_t *u)
{
    drop_objects(u);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)u->pid);
    FILE *f = fopen(path, "re");
    if (!f) return;
    char line[4096 + 128], lastname[4096] = "";
    while (fgets(line, sizeof line, f) && u->nobj < MAX_OBJECTS) {
        unsigned long lo, hi, off;
        int pos = 0;
        if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %n", &lo, &hi, &off, &pos) < 3 || !pos) continue;
        char *name = line + pos;
        name[strcspn(name, "\n")] = 0;
        if (name[0] != '/') continue;
        object_t *last = u->nobj ? &u->obj[u->nobj - 1] : NULL;
        if (last && off != 0 && !strcmp(name, lastname)) { /* another segment of the same file */
            if (hi > last->hi) last->hi = hi;
            continue;
        }
        if (off != 0) continue;
        snprintf(lastname, sizeof lastname, "%s", name);
        object_t *o = &u->obj[u->nobj++];
        memset(o, 0, sizeof *o);
        o->lo = lo;
        o->hi = hi;
        load_object(o, name, lo);
    }
    fclose(f);
}

static object_t *find_object(mt_runwind_t *u, uint64_t addr)
{
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < u->nobj; i++)
            if (addr >= u->obj[i].lo && addr < u->obj[i].hi) return &u->obj[i];
        if (pass || u->refreshed) break;
        u->refreshed = 1; /* a newly mapped object: once per stack */
        read_objects(u);
    }
    return NULL;
}

/* Reads a word of the target: the stack copy, an object's file, or the
 * process itself. */
static int acc_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
    (void)as;
    mt_runwind_t *u = arg;
    if (write) return -UNW_EINVAL;
    if (addr >= u->win_lo && addr + sizeof *val <= u->win_hi) {
        memcpy(val, u->win + (addr - u->win_lo), sizeof *val);
        return 0;
    }
    for (unsigned i = 0; i < u->nobj; i++) {
        object_t *o = &u->obj[i];
        if (!o->file || addr < o->lo || addr >= o->hi) continue;
        uint64_t va = addr - o->bias;
        for (unsigned k = 0; k < o->phnum; k++) {
            const Elf64_Phdr *ph = &o->ph[k];
            if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) || va < ph->p_vaddr ||
                va + sizeof *val > ph->p_vaddr + ph->p_filesz || ph->p_offset + (va - ph->p_vaddr) + sizeof *val > o->file_len)
                continue;
            memcpy(val, o->file + ph->p_offset + (va - ph->p_vaddr), sizeof *val);
            return 0;
        }
    }
    struct iovec l = {val, sizeof *val}, r = {(void *)(uintptr_t)addr, sizeof *val};
    return process_vm_readv(u->tid, &l, 1, &r, 1, 0) == (ssize_t)sizeof *val ? 0 : -UNW_EINVAL;
}

static int acc_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write, void *arg)
{
    (void)as;
    mt_runwind_t *u = arg;
    const struct user_regs_struct *r = u->regs;
    if (write || !r) return -UNW_EREADONLYREG;
    switch (reg) {
    case UNW_X86_64_RAX: *val = r->rax; return 0;
    case UNW_X86_64_RDX: *val = r->rdx; return 0;
    case UNW_X86_64_RCX: *val = r->rcx; return 0;
    case UNW_X86_64_RBX: *val = r->rbx; return 0;
    case UNW_X86_64_RSI: *val = r->rsi; return 0;
    case UNW_X86_64_RDI: *val = r->rdi; return 0;
    case UNW_X86_64_RBP: *val = r->rbp; return 0;
    case UNW_X86_64_RSP: *val = r->rsp; return 0;
    case UNW_X86_64_R8: *val = r->r8; return 0;
    case UNW_X86_64_R9: *val = r->r9; return 0;
    case UNW_X86_64_R10: *val = r->r10; return 0;
    case UNW_X86_64_R11: *val = r->r11; return 0;
    case UNW_X86_64_R12: *val = r->r12; return 0;
    case UNW_X86_64_R13: *val = r->r13; return 0;
    case UNW_X86_64_R14: *val = r->r14; return 0;
    case UNW_X86_64_R15: *val = r->r15; return 0;
    case UNW_X86_64_RIP: *val = r->rip; return 0;
    default: return -UNW_EBADREG;
    }
}

static int acc_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write, void *arg)
{
    (void)as, (void)reg, (void)val, (void)write, (void)arg;
    return -UNW_EBADREG;
}

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi, int need, void *arg)
{
    mt_runwind_t *u = arg;
    object_t *o = find_object(u, ip);
    if (!o || !o->have_di || ip < o->di.start_ip || ip >= o->di.end_ip) return -UNW_ENOINFO;
    return _Ux86_64_dwarf_search_unwind_table(as, ip, &o->di, pi, need, arg);
}

/* Table-format unwind information is freed by libunwind itself. */
static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg) { (void)as, (void)pi, (void)arg; }

static int acc_dyn_list(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
    (void)as, (void)addr, (void)arg;
    return -UNW_ENOINFO; /* no dynamically registered unwind information */
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
    (void)as, (void)c, (void)arg;
    return -UNW_EINVAL;
}

static int acc_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len, unw_word_t *off, void *arg)
{
    (void)as, (void)addr, (void)buf, (void)len, (void)off, (void)arg;
    return -UNW_ENOINFO; /* names come from the symbolizer, after the run */
}

mt_runwind_t *mt_runwind_new(pid_t pid)
{
    static unw_accessors_t acc = {
        .find_proc_info = acc_find_proc_info,
        .put_unwind_info = acc_put_unwind_info,
        .get_dyn_info_list_addr = acc_dyn_list,
        .access_mem = acc_mem,
        .access_reg = acc_reg,
        .access_fpreg = acc_fpreg,
        .resume = acc_resume,
        .get_proc_name = acc_proc_name,
    };
    mt_runwind_t *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->pid = pid;
    u->as = unw_create_addr_space(&acc, 0);
    if (!u->as) {
        free(u);
        return NULL;
    }
    unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
    return u;
}

void mt_runwind_free(mt_runwind_t *u)
{
    if (!u) return;
    drop_objects(u);
    unw_destroy_addr_space(u->as);
    free(u);
}

uint32_t mt_runwind_stack(mt_runwind_t *u, pid_t tid, const struct user_regs_struct *regs, uint64_t *ips,
                          uint32_t max, int *truncated)
{
    *truncated = 0;
    if (!u || !max) return 0;
    u->tid = tid;
    u->regs = regs;
    u->refreshed = 0;
    struct iovec local[WINDOW_PAGES], remote[WINDOW_PAGES];
    uint64_t lo = regs->rsp & ~(uint64_t)4095;
    for (int i = 0; i < WINDOW_PAGES; i++) {
        local[i] = (struct iovec){u->win + i * 4096, 4096};
        remote[i] = (struct iovec){(void *)(uintptr_t)(lo + (uint64_t)i * 4096), 4096};
    }
    ssize_t got = process_vm_readv(tid, local, WINDOW_PAGES, remote, WINDOW_PAGES, 0);
    u->win_lo = lo;
    u->win_hi = got > 0 ? lo + (uint64_t)got : lo;
    unw_cursor_t c;
    uint32_t n = 0;
    if (unw_init_remote(&c, u->as, u) == 0) {
        int more = 0;
        do {
            unw_word_t ip;
            if (unw_get_reg(&c, UNW_REG_IP, &ip) != 0 || !ip) break;
            ips[n++] = ip;
        } while ((more = unw_step(&c)) > 0 && n < max);
        *truncated = n == max && more > 0;
    }
    u->regs = NULL;
    return n;
}
