/* static_malloc.c - malloc and free of static programs, through
 * breakpoints, for the system-call tracer (tracer/ptrace.c).
 *
 * A static program has the allocator inside it, so no preload library can
 * reach it.  When its symbol table names malloc, calloc, realloc and free,
 * the tracer puts an int3 at each entry.  At an entry stop it reads the
 * arguments and the return address ([rsp]); free is recorded there (its
 * number is taken before the call, as the hooks do); for the others it puts
 * an int3 at the return address and records the call there, with the result
 * in rax (numbered after the call).  To go on, it puts the original byte
 * back, single-steps, and puts the int3 in again.  Calls made inside an
 * allocator call (realloc(NULL, n) calls malloc) are not recorded, like the
 * hooks, which see only calls through the symbol; the system calls made
 * inside get via = libc.  Only the stopped thread is held while a
 * breakpoint is stepped over: another thread passing the same entry then
 * goes unseen (docs/os-layer.md). */
#define _GNU_SOURCE
#include "ptrace_internal.h"

#include "mt_event.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <unistd.h>


static int poke_byte(pid_t tid, uint64_t addr, uint8_t byte, uint8_t *old)
{
    errno = 0;
    long w = ptrace(PTRACE_PEEKDATA, tid, (void *)(uintptr_t)addr, 0);
    if (errno) return -1;
    if (old) *old = (uint8_t)(w & 0xff);
    w = (long)(((unsigned long)w & ~0xfful) | byte);
    return ptrace(PTRACE_POKEDATA, tid, (void *)(uintptr_t)addr, (void *)w) == 0 ? 0 : -1;
}

static bp_t *bp_find(image_t *img, uint64_t addr)
{
    for (size_t i = 0; i < img->nbps; i++)
        if (img->bps[i].addr == addr) return &img->bps[i];
    return NULL;
}

static bp_t *bp_add(image_t *img, pid_t tid, uint64_t addr, int what)
{
    bp_t *b = bp_find(img, addr);
    /* a return breakpoint no call waited for was taken out: back in */
    if (b && b->what == BP_RETURN && b->refs == 0) poke_byte(tid, addr, 0xcc, NULL);
    if (b) return b;
    if (mt_pt_grow((void **)&img->bps, &img->capbps, img->nbps + 1, sizeof *img->bps)) return NULL;
    b = &img->bps[img->nbps];
    *b = (bp_t){addr, 0, what, 0};
    if (poke_byte(tid, addr, 0xcc, &b->orig) != 0) return NULL;
    img->nbps++;
    return b;
}

/* The entries of the allocator functions of a static executable, from its
 * symbol table.  Returns how many breakpoints were set. */
int mt_pt_set_alloc_breakpoints(image_t *img, pid_t tid)
{
    static const struct { const char *name; int what; } fns[] = {
        {"malloc", BP_MALLOC}, {"calloc", BP_CALLOC}, {"realloc", BP_REALLOC}, {"free", BP_FREE}};
    int fd = open(img->exe, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat sb;
    void *map = MAP_FAILED;
    if (fstat(fd, &sb) == 0 && sb.st_size > (off_t)sizeof(Elf64_Ehdr))
        map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return 0;
    const uint8_t *f = map;
    size_t len = (size_t)sb.st_size;
    const Elf64_Ehdr *eh = map;
    int n = 0;
    uint64_t bias = 0;
    if (eh->e_type == ET_DYN && img->r && img->r->nmodules) bias = mt_region_modules(img->r)[0].base; /* static-pie */
    if (eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > len) goto out;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(f + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
        const Elf64_Shdr *str = &sh[sh[i].sh_link];
        if (sh[i].sh_offset + sh[i].sh_size > len || str->sh_offset + str->sh_size > len) continue;
        const Elf64_Sym *sym = (const Elf64_Sym *)(f + sh[i].sh_offset);
        size_t nsym = sh[i].sh_size / sizeof *sym;
        for (size_t j = 0; j < nsym; j++) {
            if (ELF64_ST_TYPE(sym[j].st_info) != STT_FUNC || !sym[j].st_value || sym[j].st_name >= str->sh_size)
                continue;
            const char *name = (const char *)(f + str->sh_offset + sym[j].st_name);
            for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++)
                if (!strcmp(name, fns[k].name) && !bp_find(img, sym[j].st_value + bias) &&
                    bp_add(img, tid, sym[j].st_value + bias, fns[k].what))
                    n++;
        }
    }
out:
    munmap(map, len);
    return n;
}

/* An allocator call of a static program, recorded. */
static void record_call(mt_ptracer_t *t, task_t *k, int kind, uint64_t addr, uint64_t size, uint64_t old, int failed,
                        const uint64_t *ips, uint32_t nips)
{
    mt_rec_t r;
    memset(&r, 0, sizeof r);
    r.type = MT_REC_EVENT;
    r.kind = (uint8_t)kind;
    r.flags = failed ? MT_RF_FAILED : 0;
    r.seq = __atomic_fetch_add(&t->cfg.session->seq, 1, __ATOMIC_RELAXED);
    r.ts = mt_pt_record_ts(t);
    r.addr = addr;
    r.size = size;
    r.old_addr = old;
    mt_pt_put(t, k->img, k->tid, &r, ips, nips);
}

/* A SIGTRAP of a static program with breakpoints: one of ours (then
 * handled and the thread resumed: 1) or the program's (0). */
int mt_pt_on_breakpoint(mt_ptracer_t *t, task_t *k)
{
    image_t *img = k->img;
    pid_t tid = k->tid;
    struct user_regs_struct regs;
    if (k->stepping) { /* the stepped-over instruction has run: the int3 goes back */
        bp_t *b = bp_find(img, k->stepping);
        if (b && (b->what != BP_RETURN || b->refs > 0)) poke_byte(tid, b->addr, 0xcc, NULL);
        k->stepping = 0;
        ptrace(PTRACE_CONT, tid, 0, 0);
        return 1;
    }
    if (ptrace(PTRACE_GETREGS, tid, 0, &regs) != 0) return 0;
    bp_t *b = bp_find(img, regs.rip - 1);
    if (!b) return 0;
    regs.rip -= 1;
    if (b->what == BP_RETURN) {
        /* the call it was set for, when this is its return (same stack depth) */
        if (k->in_call && k->call_ret == b->addr && regs.rsp == k->call_sp + 8) {
            int kind = k->in_call - 1;
            uint64_t res = regs.rax;
            b->refs--;
            if (kind == BP_MALLOC) record_call(t, k, MT_EV_malloc, res, k->call_a0, 0, !res, k->call_ips, k->call_nips);
            else if (kind == BP_CALLOC) {
                uint64_t total;
                if (__builtin_mul_overflow(k->call_a0, k->call_a1, &total)) total = UINT64_MAX;
                record_call(t, k, MT_EV_calloc, res, total, 0, !res, k->call_ips, k->call_nips);
            } else if (kind == BP_REALLOC) {
                record_call(t, k, MT_EV_realloc, res, k->call_a1, k->call_a0, !res && !(k->call_a0 && !k->call_a1),
                            k->call_ips, k->call_nips);
            } /* BP_FREE: recorded at its entry */
            k->in_call = 0;
        }
    } else if (!k->in_call) { /* an entry, not inside another allocator call */
        int what = b->what; /* b may move: bp_add below can grow the table */
        b = NULL;
        if (what == BP_FREE) {
            if (!regs.rdi) {
                if (img->r) __atomic_fetch_add(&img->r->free_null, 1, __ATOMIC_RELAXED);
            } else {
                record_call(t, k, MT_EV_free, regs.rdi, 0, 0, 0, NULL, 0);
                k->in_call = BP_FREE + 1; /* until it returns: its munmap is via libc */
            }
        } else {
            k->in_call = what + 1;
        }
        if (k->in_call) {
            errno = 0;
            long ret = ptrace(PTRACE_PEEKDATA, tid, (void *)(uintptr_t)regs.rsp, 0);
            bp_t *rb = errno ? NULL : bp_add(img, tid, (uint64_t)ret, BP_RETURN);
            if (!rb) {
                k->in_call = 0;
            } else {
                rb->refs++;
                k->call_a0 = regs.rdi;
                k->call_a1 = regs.rsi;
                k->call_ret = (uint64_t)ret;
                k->call_sp = regs.rsp;
                uint16_t fl = 0;
                k->call_nips = what == BP_FREE ? 0 : mt_pt_unwind(t, k, &regs, k->call_ips, &fl);
            }
        }
    }
    /* step over: the original instruction, then the int3 again */
    ptrace(PTRACE_SETREGS, tid, 0, &regs);
    b = bp_find(img, regs.rip); /* (bp_add may have moved the table) */
    if (b) poke_byte(tid, b->addr, b->orig, NULL);
    k->stepping = regs.rip;
    ptrace(PTRACE_SINGLESTEP, tid, 0, 0);
    return 1;
}
