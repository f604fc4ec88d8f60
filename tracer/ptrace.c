/* ptrace.c - the tracer thread: mmap, munmap, mremap, brk and madvise as
 * system calls, from every thread and process of the target.
 *
 * Why: glibc's malloc maps and unmaps memory with internal system calls
 * that never pass through an interposable symbol, and the dynamic loader
 * maps every library before any preloaded code runs.  Only the kernel's
 * view is complete.
 *
 * How (MT_PT_RUN).  The child installs a seccomp filter before exec
 * (mt_ptrace_install_filter) that returns SECCOMP_RET_TRACE for the five
 * memory calls (madvise only with a memory-returning advice, or memtrace's
 * own MT_MADV_MEMTRACE) and lets every other call run untouched.  The
 * tracer seizes the child first, with options to follow fork, vfork, clone
 * and exec.  A filter stop is the call's entry: the tracer reads the
 * registers, takes the sequence number now for the calls that release
 * memory (munmap, madvise), and restarts with PTRACE_SYSCALL to see the
 * exit, where it reads the result, takes the sequence number of the calls
 * that create memory (mmap, mremap, brk) and writes the record.  That is
 * the preload hooks' rule, so an mmap made inside malloc precedes the
 * malloc event and a munmap inside free follows the free event.
 * MT_PT_ATTACH cannot install a filter into a running process (and a filter
 * left behind after detaching would fail those calls), so it stops at every
 * system call with PTRACE_SYSCALL: slower, and only for attach.
 *
 * Which call a system call serves.  The preload library announces, once per
 * process image, where its per-thread words t_in_hook and t_serving lie
 * relative to the thread pointer (MT_HELLO_TLS).  At each entry stop the
 * tracer reads both from the stopped thread: t_serving != 0 means the call
 * serves a malloc-family call (via = libc) or an sbrk (via = os); t_in_hook
 * set with t_serving 0, or t_serving MT_SERVING_OWN, means memtrace's own
 * call (its region, per-thread state, libunwind's caches): counted, not
 * recorded; MT_SERVING_HOOKED a call the hook records itself.  The
 * program's own mapping calls through the hooks usually do not stop at all:
 * they carry a tag the filter lets through (mt_shm.h: MT_SYSCALL_TAG).
 *
 * Stacks: tracer/remote_unwind.c.  Static programs' malloc and free:
 * tracer/static_malloc.c (breakpoints).
 *
 * Where records go.  Each process image has a region (mt_shm.h).  The
 * preload library names its region (MT_HELLO_REGION); records made before
 * that (the loader's mappings) wait in a list and are written then.  An
 * image without the preload library (a static program, --mode=ptrace,
 * attach, a program that clears LD_PRELOAD) gets a region made here, with
 * its threads' records, the modules from /proc/PID/maps and no stacks from
 * the hooks.  The tracer owns one chunk per traced thread in a region,
 * claimed like the hooks claim theirs.
 *
 * Key invariant: a traced thread is stopped while its record is written,
 * so every record of a process is in its region before the process can end.
 */
#define _GNU_SOURCE
#include "ptrace_internal.h"

#include "mt_clock.h"
#include "mt_error.h"
#include "mt_event.h"
#include "mt_remote_unwind.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>


#define OWN_CHUNKS 64u        /* chunks of a region made by the tracer */
#define OWN_TRIE_SLOTS (1u << 16)

/* ---- the seccomp filter (child side) ---- */

int mt_ptrace_install_filter(void)
{
/* the low and high 32 bits of a 64-bit argument (little-endian) */
#define LD_ARG(n) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[n]))
#define LD_ARG_HI(n) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[n]) + 4)
#define TRACE BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE)
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define TAG_LO ((uint32_t)MT_SYSCALL_TAG)
#define TAG_HI ((uint32_t)(MT_SYSCALL_TAG >> 32))
    /* the calls the preload hooks record themselves carry the tag (mt_shm.h)
     * and run without a stop: TAGGED(n) allows a call whose argument n is
     * the tag and traces the others */
#define TAGGED(n, lo, hi) LD_ARG(n), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, lo, 0, 3), LD_ARG_HI(n), \
                          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, hi, 0, 1), ALLOW, TRACE
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        ALLOW, /* 32-bit calls: not followed */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 5, 0), /* to the mmap block */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_munmap, 10, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mremap, 15, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_brk, 20, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 25, 0),
        ALLOW,
        /* mmap: offset == MT_SYSCALL_TAG_OFFSET (an anonymous mapping's
         * offset, which the kernel ignores) */
        TAGGED(5, (uint32_t)MT_SYSCALL_TAG_OFFSET, (uint32_t)(MT_SYSCALL_TAG_OFFSET >> 32)),
        /* munmap: third argument, mremap: sixth, brk: second (unused) */
        TAGGED(2, TAG_LO, TAG_HI),
        TAGGED(5, TAG_LO, TAG_HI),
        TAGGED(1, TAG_LO, TAG_HI),
        /* madvise: only the advice that gives memory back, and ours; the
         * hooks' own carry the tag in the fourth argument */
        LD_ARG(2),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MT_MADV_MEMTRACE, 9, 0), /* to the last TRACE */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_DONTNEED, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_FREE, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_REMOVE, 1, 0),
        ALLOW,
        TAGGED(3, TAG_LO, TAG_HI),
    };
#undef LD_ARG
#undef LD_ARG_HI
#undef TRACE
#undef ALLOW
#undef TAG_LO
#undef TAG_HI
#undef TAGGED
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    /* without CAP_SYS_ADMIN a filter needs no_new_privs (set-user-ID
     * programs then run without their privileges) */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
    if (errno != EACCES) return -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0 ? 0 : -errno;
}

int mt_elf_is_static(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    Elf64_Ehdr eh;
    int rc = 0;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
        goto out; /* not a 64-bit ELF file (a script, say): not static */
    rc = 1;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) != (ssize_t)sizeof ph) break;
        if (ph.p_type == PT_INTERP) {
            rc = 0;
            break;
        }
    }
out:
    close(fd);
    return rc;
}

/* ---- bookkeeping (the types are in ptrace_internal.h) ---- */

/* A record's timestamp on the session's clock (lib/mt_clock.h: TSC ticks
 * when the session uses them, else CLOCK_MONOTONIC ns), as the hooks'. */
uint64_t mt_pt_record_ts(const mt_ptracer_t *t)
{
    return mt_session_now(t->cfg.session);
}

uint64_t mt_pt_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int mt_pt_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need) n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p) return MT_ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

static task_t *task_find(mt_ptracer_t *t, pid_t tid)
{
    for (size_t i = 0; i < t->ntasks; i++)
        if (t->tasks[i]->tid == tid) return t->tasks[i];
    return NULL;
}

static void task_free(task_t *k) { free(k); }

static void task_drop(mt_ptracer_t *t, pid_t tid)
{
    for (size_t i = 0; i < t->ntasks; i++)
        if (t->tasks[i]->tid == tid) {
            task_free(t->tasks[i]);
            t->tasks[i] = t->tasks[--t->ntasks];
            return;
        }
}

/* The image a live process pid is in now (its newest). */
static image_t *image_of_pid(mt_ptracer_t *t, pid_t pid)
{
    for (size_t i = t->nimages; i-- > 0;)
        if (t->images[i]->pid == pid && !t->images[i]->ended) return t->images[i];
    return NULL;
}

/* Tgid and PPid of a task, from /proc/TID/status. */
static int task_ids(pid_t tid, pid_t *tgid, pid_t *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
    mt_read_small_file(path, buf, sizeof buf, NULL);
    char *a = strstr(buf, "\nTgid:"), *b = strstr(buf, "\nPPid:");
    if (!a || !b) return -1;
    *tgid = (pid_t)atoi(a + 6);
    *ppid = (pid_t)atoi(b + 6);
    return 0;
}

/* exe, cmdline and the start of the brk heap of a process, now. */
static void image_identity(image_t *img)
{
    char stat[1024];
    char spath[64];
    snprintf(spath, sizeof spath, "/proc/%d/stat", (int)img->pid);
    mt_read_small_file(spath, stat, sizeof stat, NULL);
    const char *p = strrchr(stat, ')');
    /* field 47 is start_brk; p points before field 3 */
    for (int field = 2; p && field < 47; field++) p = strchr(p + 1, ' ');
    if (p) img->heap_start = strtoull(p + 1, NULL, 10);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)img->pid);
    ssize_t k = readlink(path, img->exe, sizeof img->exe - 1);
    img->exe[k > 0 ? k : 0] = 0;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)img->pid);
    mt_read_small_file(path, img->cmdline, sizeof img->cmdline, &img->cmdline_len);
}

/* ---- regions and records ---- */

/* The executable file mappings of a process, as modules (for symbols). */
static void read_modules(image_t *img)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)img->pid);
    FILE *f = fopen(path, "re");
    if (!f) return;
    mt_region_t *r = img->r;
    mt_module_t *mods = mt_region_modules(r);
    char line[MT_PATH_MAX + 128];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off;
        char perms[8];
        int pos = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &lo, &hi, perms, &off, &pos) < 4 || !pos) continue;
        char *name = line + pos;
        name[strcspn(name, "\n")] = 0;
        if (name[0] != '/') continue;
        uint32_t n = r->nmodules, i;
        for (i = 0; i < n; i++)
            if (!strcmp(mods[i].path, name)) break;
        if (i < n) { /* one more segment of a known file */
            if (lo < mods[i].start) mods[i].start = lo;
            if (hi > mods[i].end) mods[i].end = hi;
            if (off == 0) mods[i].base = lo;
            continue;
        }
        if (n >= MT_MAX_MODULES) break;
        mods[n].start = lo;
        mods[n].end = hi;
        /* load bias of a shared object or PIE: where offset 0 is mapped
         * (a position-dependent executable is mapped at its link address:
         * bias 0, corrected below) */
        mods[n].base = off == 0 ? lo : lo - off;
        snprintf(mods[n].path, sizeof mods[n].path, "%s", name);
        __atomic_store_n(&r->nmodules, n + 1, __ATOMIC_RELEASE);
    }
    fclose(f);
    /* ET_EXEC files are not relocated */
    for (uint32_t i = 0; i < r->nmodules; i++) {
        int fd = open(mods[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        Elf64_Ehdr eh;
        if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && eh.e_type == ET_EXEC) mods[i].base = 0;
        close(fd);
    }
}

/* Makes the region of an image without the preload library: a file in the
 * session directory like the ones the library makes, published once its
 * header is filled.  Returns 0 or a negative MT_E*. */
static int make_region(mt_ptracer_t *t, image_t *img)
{
    mt_session_t *s = t->cfg.session;
    uint32_t index = __atomic_fetch_add(&s->region_count, 1, __ATOMIC_RELAXED);
    char path[4096];
    snprintf(path, sizeof path, "%s/proc.%d.%u", t->cfg.dir, (int)img->pid, index);
    uint64_t total = MT_REGION_SIZE(OWN_CHUNKS, OWN_TRIE_SLOTS);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return MT_EIO;
    if (ftruncate(fd, (off_t)total) != 0) {
        close(fd);
        return MT_EIO;
    }
    void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return MT_ENOMEM;
    mt_region_t *r = p;
    r->version = MT_SHM_VERSION;
    r->index = index;
    r->pid = img->pid;
    r->ppid = img->ppid;
    r->parent_region = img->parent_index;
    r->flags = img->rflags;
    r->start_ns = img->start_ns;
    mt_region_layout(r, OWN_CHUNKS, OWN_TRIE_SLOTS);
    memcpy(r->exe, img->exe, sizeof r->exe);
    memcpy(r->cmdline, img->cmdline, sizeof r->cmdline);
    r->cmdline_len = img->cmdline_len;
    img->r = r;
    img->rsize = total;
    if (!img->ended) read_modules(img);
    __atomic_store_n(&r->magic, MT_REGION_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

/* Maps the region the preload library made for this image. */
static int open_region(mt_ptracer_t *t, image_t *img, uint64_t index)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/proc.%d.%llu", t->cfg.dir, (int)img->pid, (unsigned long long)index);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return MT_ENOENT;
    struct stat sb;
    void *p = MAP_FAILED;
    if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size >= sizeof(mt_region_t))
        p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return MT_EIO;
    mt_region_t *r = p;
    if (__atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) != MT_REGION_MAGIC || r->total_size != (uint64_t)sb.st_size ||
        r->chunk_off + (uint64_t)r->nchunks * MT_CHUNK_SIZE > r->total_size) {
        munmap(p, (size_t)sb.st_size);
        return MT_EINVAL;
    }
    img->r = r;
    img->rsize = (uint64_t)sb.st_size;
    return 0;
}

/* Claims a free chunk of the image's region for thread `tid`, waiting for
 * the collector when every chunk is in use. */
static mt_chunk_t *claim_chunk(image_t *img, int32_t tid)
{
    mt_region_t *r = img->r;
    for (unsigned spins = 0; spins < 100000; spins++) {
        uint32_t i;
        mt_chunk_t *c = mt_chunk_claim(r, img->chunk_hint % r->nchunks, tid, &i);
        if (c) {
            img->chunk_hint = i + 1;
            return c;
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void release_writer(writer_t *w)
{
    if (w->chunk) __atomic_store_n(&w->chunk->state, MT_CHUNK_FULL, __ATOMIC_RELEASE);
    w->chunk = NULL;
}

/* Appends a record for thread `tid` to the image's region. */
static void emit(mt_ptracer_t *t, image_t *img, int32_t tid, const mt_rec_t *rec)
{
    writer_t *w = NULL;
    for (size_t i = 0; i < img->nw; i++)
        if (img->w[i].tid == tid) w = &img->w[i];
    if (!w) {
        if (mt_pt_grow((void **)&img->w, &img->capw, img->nw + 1, sizeof *img->w)) return;
        w = &img->w[img->nw++];
        *w = (writer_t){tid, NULL, 0};
    }
    if (!w->chunk || w->pos + sizeof *rec > MT_CHUNK_DATA) {
        release_writer(w);
        w->chunk = claim_chunk(img, tid);
        w->pos = 0;
        if (!w->chunk) {
            __atomic_fetch_add(&img->r->lost, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    memcpy((char *)(w->chunk + 1) + w->pos, rec, sizeof *rec);
    w->pos += sizeof *rec;
    __atomic_store_n(&w->chunk->used, w->pos, __ATOMIC_RELEASE);
    t->st.events += rec->type == MT_REC_EVENT;
}

/* The trie node of a stack (innermost first) in a region. */
static uint32_t stack_node(mt_region_t *r, const uint64_t *ips, uint32_t n)
{
    uint32_t id = 0;
    for (uint32_t i = n; i-- > 0;) { /* outermost first */
        uint32_t next = mt_trie_insert(r, id, ips[i]);
        if (!next) break;
        id = next;
    }
    return id;
}

/* Writes a record (with its stack) now, or keeps it until the image's
 * region is known. */
void mt_pt_put(mt_ptracer_t *t, image_t *img, int32_t tid, mt_rec_t *rec, const uint64_t *ips, uint32_t nips)
{
    if (img->discard) return;
    if (!img->r && img->own && make_region(t, img) != 0) img->discard = 1;
    if (img->r) {
        rec->stack = stack_node(img->r, ips, nips);
        emit(t, img, tid, rec);
        return;
    }
    if (mt_pt_grow((void **)&img->pend, &img->cappend, img->npend + 1, sizeof *img->pend)) return;
    pending_t *p = &img->pend[img->npend++];
    *p = (pending_t){tid, *rec, 0, NULL};
    if (nips && (p->ips = malloc(nips * sizeof *ips))) {
        memcpy(p->ips, ips, nips * sizeof *ips);
        p->nips = nips;
    }
}

static void flush_pending(mt_ptracer_t *t, image_t *img)
{
    for (size_t i = 0; i < img->npend; i++) {
        pending_t *p = &img->pend[i];
        p->rec.stack = stack_node(img->r, p->ips, p->nips);
        emit(t, img, p->tid, &p->rec);
        free(p->ips);
    }
    free(img->pend);
    img->pend = NULL;
    img->npend = img->cappend = 0;
}

/* The image is over (exec or exit): its records go out, its chunks to the
 * collector.  An image that never named a region but made calls gets one. */
static void end_image(mt_ptracer_t *t, image_t *img)
{
    if (img->ended) return;
    img->ended = 1;
    if (img->discard) return;
    if (!img->r && img->npend) {
        if (make_region(t, img) != 0) img->discard = 1;
    }
    if (img->r) flush_pending(t, img);
    for (size_t i = 0; i < img->nw; i++) release_writer(&img->w[i]);
}

/* How an image began. */
enum { IMG_FORK, IMG_EXEC, IMG_ATTACH, IMG_LAUNCHER /* our child before its exec: not recorded */ };

static image_t *new_image(mt_ptracer_t *t, pid_t pid, pid_t ppid, image_t *parent, int how)
{
    if (mt_pt_grow((void **)&t->images, &t->capimages, t->nimages + 1, sizeof *t->images)) return NULL;
    image_t *img = calloc(1, sizeof *img);
    if (!img) return NULL;
    img->pid = pid;
    img->ppid = ppid;
    img->parent_index = -1;
    img->start_ns = mt_pt_mono_ns();
    if (how == IMG_LAUNCHER) {
        img->discard = 1;
    } else if (how == IMG_EXEC) {
        img->rflags = MT_RG_EXECED;
        image_identity(img);
        int st = mt_elf_is_static(img->exe);
        img->own = !t->cfg.preload || st == 1;
    } else if (how == IMG_FORK && parent) { /* the same program, the same preload state */
        img->rflags = MT_RG_FORKED;
        img->own = parent->own;
        img->discard = parent->discard;
        img->have_tls = parent->have_tls;
        img->off_in_hook = parent->off_in_hook;
        img->off_serving = parent->off_serving;
        img->brk = parent->brk;
        img->heap_start = parent->heap_start;
        if (parent->nbps && !mt_pt_grow((void **)&img->bps, &img->capbps, parent->nbps, sizeof *img->bps)) {
            memcpy(img->bps, parent->bps, parent->nbps * sizeof *img->bps); /* its memory has them too */
            img->nbps = parent->nbps;
            for (size_t i = 0; i < img->nbps; i++) img->bps[i].refs = 0;
        }
        if (parent->r) img->parent_index = (int32_t)parent->r->index;
        memcpy(img->exe, parent->exe, sizeof img->exe);
        memcpy(img->cmdline, parent->cmdline, sizeof img->cmdline);
        img->cmdline_len = parent->cmdline_len;
    } else { /* attached, or a process whose parent we do not follow */
        image_identity(img);
        img->own = 1;
    }
    t->images[t->nimages++] = img;
    if (img->own && !img->discard && make_region(t, img) != 0) img->discard = 1;
    return img;
}

/* The task of a tid seen for the first time: a thread of a known image or
 * the first thread of a new process (its parent's event may come later). */
static task_t *task_new(mt_ptracer_t *t, pid_t tid)
{
    if (mt_pt_grow((void **)&t->tasks, &t->captasks, t->ntasks + 1, sizeof *t->tasks)) return NULL;
    task_t *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->tid = tid;
    pid_t tgid = tid, ppid = 0;
    if (task_ids(tid, &tgid, &ppid) != 0) {
        /* gone already (a short thread that exited before its creation
         * was seen): no image of its own - it is not a new process */
        t->tasks[t->ntasks++] = k;
        return k;
    }
    if (tgid != tid) {
        k->img = image_of_pid(t, tgid);
    } else {
        k->img = image_of_pid(t, tid);
        if (!k->img) {
            image_t *parent = image_of_pid(t, ppid);
            int how = t->nimages == 0 ? (t->cfg.how == MT_PT_ATTACH ? IMG_ATTACH : IMG_LAUNCHER) : IMG_FORK;
            k->img = new_image(t, tid, ppid, parent, how);
        }
    }
    t->tasks[t->ntasks++] = k;
    return k;
}

/* ---- system calls ---- */

static int followed_nr(long nr)
{
    return nr == SYS_mmap || nr == SYS_munmap || nr == SYS_mremap || nr == SYS_brk || nr == SYS_madvise;
}

static int returns_memory_advice(uint64_t advice)
{
    return advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE;
}

/* Reads t_in_hook and t_serving of a stopped thread (MT_HELLO_TLS). */
static void read_call_state(image_t *img, pid_t tid, uint64_t fs_base, task_t *k)
{
    k->via = 0;
    k->own = 0;
    if (!img->have_tls || !fs_base) return;
    int in_hook = 0;
    uint8_t serving = 0;
    struct iovec local[2] = {{&in_hook, sizeof in_hook}, {&serving, 1}};
    struct iovec remote[2] = {{(void *)(uintptr_t)(fs_base + (uint64_t)img->off_in_hook), sizeof in_hook},
                              {(void *)(uintptr_t)(fs_base + (uint64_t)img->off_serving), 1}};
    if (process_vm_readv(tid, local, 2, remote, 2, 0) != (ssize_t)(sizeof in_hook + 1)) return;
    if (serving == MT_SERVING_OWN || serving == MT_SERVING_HOOKED) k->own = 1; /* not for us to record */
    else if (serving) k->via = serving & 15u;
    else k->own = in_hook != 0; /* memtrace's code at work in the target */
}

static void hello(mt_ptracer_t *t, task_t *k, const uint64_t *a)
{
    image_t *img = k->img;
    if (!img) return;
    if (a[3] == MT_HELLO_TLS) {
        img->have_tls = 1;
        img->off_in_hook = (int64_t)a[0];
        img->off_serving = (int64_t)a[1];
    } else if (a[3] == MT_HELLO_REGION && !img->own && !img->ended) {
        if (img->r) { /* a fork child leaves its parent's region */
            for (size_t i = 0; i < img->nw; i++) img->w[i].chunk = NULL;
            img->nw = 0;
            munmap(img->r, img->rsize);
            img->r = NULL;
        }
        if (open_region(t, img, a[0]) == 0) flush_pending(t, img);
    }
}

/* Entry of a followed call: what it is and, for releases, its number. */
static void sys_entry(mt_ptracer_t *t, task_t *k, const struct user_regs_struct *regs)
{
    k->nr = (long)regs->orig_rax;
    k->a[0] = regs->rdi;
    k->a[1] = regs->rsi;
    k->a[2] = regs->rdx;
    k->a[3] = regs->r10;
    k->a[4] = regs->r8;
    k->a[5] = regs->r9;
    k->followed = 0;
    if (!followed_nr(k->nr) || !k->img || k->img->discard) return;
    if (k->nr == SYS_madvise) {
        if (k->a[2] == MT_MADV_MEMTRACE) {
            hello(t, k, k->a);
            return;
        }
        if (!returns_memory_advice(k->a[2])) return;
    }
    read_call_state(k->img, k->tid, regs->fs_base, k);
    if (k->in_call) k->via = MT_RF_VIA_LIBC; /* inside malloc of a static program (breakpoints) */
    if (k->own) t->st.own++;
    if (k->own && k->nr != SYS_brk) return;
    k->followed = 1; /* memtrace's own brk too: the break it leaves is the program's next start */
    k->seq = k->nr == SYS_munmap || k->nr == SYS_madvise
                 ? __atomic_fetch_add(&t->cfg.session->seq, 1, __ATOMIC_RELAXED)
                 : 0;
}

/* The call stack of a stopped thread (remote_unwind.c), innermost first. */
uint32_t mt_pt_unwind(mt_ptracer_t *t, task_t *k, const struct user_regs_struct *regs, uint64_t *ips, uint16_t *flags)
{
    uint32_t max = t->cfg.stack_depth < MT_MAX_DEPTH ? t->cfg.stack_depth : MT_MAX_DEPTH;
    image_t *img = k->img;
    if (!max || !img) return 0;
    if (!img->uw && !(img->uw = mt_runwind_new(img->pid))) return 0;
    int truncated;
    uint32_t n = mt_runwind_stack(img->uw, k->tid, regs, ips, max, &truncated);
    if (truncated) *flags |= MT_RF_STACK_TRUNCATED;
    return n;
}

/* Resident and virtual size of the process right after an OS event
 * (/proc/PID/status, without shared memory: mt_status_rss), as a sample
 * for rss_samples. */
static void sample_rss(mt_ptracer_t *t, image_t *img, int32_t tid, uint64_t seq)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/status", (int)img->pid);
    uint32_t len = 0;
    mt_read_small_file(path, buf, sizeof buf, &len);
    uint64_t vm, rss;
    if (!len || mt_status_rss(buf, &rss, &vm)) return;
    mt_rec_t r;
    memset(&r, 0, sizeof r);
    r.type = MT_REC_RSS;
    r.seq = seq;
    r.ts = mt_pt_record_ts(t);
    r.addr = rss;
    r.size = vm;
    mt_pt_put(t, img, tid, &r, NULL, 0);
}

/* Exit of a followed call: the record. */
static void sys_exit(mt_ptracer_t *t, task_t *k, const struct user_regs_struct *regs)
{
    if (!k->followed) return;
    k->followed = 0;
    image_t *img = k->img;
    int64_t ret = (int64_t)regs->rax;
    if (k->own) { /* a brk of memtrace's own (sys_entry): only the break moves */
        if (k->nr == SYS_brk) img->brk = (uint64_t)ret;
        return;
    }
    int failed = ret < 0 && ret > -4096;
    mt_rec_t r;
    memset(&r, 0, sizeof r);
    r.type = MT_REC_EVENT;
    r.flags = (uint16_t)((failed ? MT_RF_FAILED : 0) | (k->via << MT_RF_VIA_SHIFT));
    switch (k->nr) {
    case SYS_mmap:
        r.kind = MT_EV_mmap;
        r.addr = failed ? 0 : (uint64_t)ret;
        r.size = k->a[1];
        break;
    case SYS_munmap:
        r.kind = MT_EV_munmap;
        r.addr = k->a[0];
        r.size = k->a[1];
        break;
    case SYS_mremap:
        r.kind = MT_EV_mremap;
        r.addr = failed ? 0 : (uint64_t)ret;
        r.size = k->a[2];
        r.old_addr = k->a[0];
        break;
    case SYS_brk: {
        /* the kernel returns the break after the call (the old one when
         * it refused); the request 0 only asks for it */
        uint64_t now = (uint64_t)ret, before = img->brk;
        if (img->r) { /* the hooks may have moved it since (the C library's brk) */
            uint64_t hooks = __atomic_load_n(&img->r->brk_now, __ATOMIC_RELAXED);
            if (hooks) before = hooks;
            __atomic_store_n(&img->r->brk_now, now, __ATOMIC_RELAXED);
        }
        failed = k->a[0] != 0 && now != k->a[0];
        r.flags = (uint16_t)((failed ? MT_RF_FAILED : 0) | (k->via << MT_RF_VIA_SHIFT));
        r.kind = MT_EV_brk;
        r.addr = now;
        r.old_addr = before;
        if (!img->heap_start) img->heap_start = now; /* the first call is a probe */
        r.size = now >= img->heap_start ? now - img->heap_start : 0;
        img->brk = now;
        break;
    }
    case SYS_madvise:
        r.kind = MT_EV_madvise;
        r.addr = k->a[0];
        r.size = k->a[1];
        r.old_addr = k->a[2];
        break;
    default: return;
    }
    r.seq = k->seq ? k->seq : __atomic_fetch_add(&t->cfg.session->seq, 1, __ATOMIC_RELAXED);
    r.ts = mt_pt_record_ts(t);
    uint64_t ips[MT_MAX_DEPTH];
    uint32_t nips = mt_pt_unwind(t, k, regs, ips, &r.flags);
    /* a new executable mapping in a process without the preload library:
     * one more module for the symbolizer */
    if (k->nr == SYS_mmap && !failed && (k->a[2] & PROT_EXEC) && img->own && img->r) read_modules(img);
    mt_pt_put(t, img, k->tid, &r, ips, nips);
    sample_rss(t, img, k->tid, r.seq + 1);
}

/* ---- the loop ---- */

static void push_exit(mt_ptracer_t *t, pid_t pid, int status, const struct rusage *ru)
{
    int64_t cpu = ((int64_t)ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000000 +
                  ((int64_t)ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) * 1000;
    pthread_mutex_lock(&t->lock);
    if (mt_pt_grow((void **)&t->exits, &t->capexits, t->nexits + 1, sizeof *t->exits) == 0)
        t->exits[t->nexits++] = (exit_t){pid, status, (int64_t)ru->ru_maxrss * 1024, cpu};
    pthread_mutex_unlock(&t->lock);
}

static void resume(mt_ptracer_t *t, pid_t tid, int sig)
{
    ptrace(t->cfg.how == MT_PT_ATTACH ? PTRACE_SYSCALL : PTRACE_CONT, tid, 0, sig);
}

static long seize_opts(const mt_ptracer_t *t)
{
    long o = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
             PTRACE_O_TRACEEXEC;
    if (t->cfg.how == MT_PT_RUN) o |= PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL;
    return o;
}

static void on_event(mt_ptracer_t *t, task_t *k, int status)
{
    int sig = WSTOPSIG(status), ev = status >> 16;
    pid_t tid = k->tid;
    struct user_regs_struct regs;
    switch (ev) {
    case PTRACE_EVENT_SECCOMP:
        if (ptrace(PTRACE_GETREGS, tid, 0, &regs) != 0) break;
        sys_entry(t, k, &regs);
        /* see the exit only for a call that is recorded */
        ptrace(k->followed ? PTRACE_SYSCALL : PTRACE_CONT, tid, 0, 0);
        return;
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE: {
        unsigned long child = 0;
        ptrace(PTRACE_GETEVENTMSG, tid, 0, &child);
        if (child && !task_find(t, (pid_t)child)) task_new(t, (pid_t)child);
        break;
    }
    case PTRACE_EVENT_EXEC: {
        unsigned long former = 0;
        ptrace(PTRACE_GETEVENTMSG, tid, 0, &former);
        if (former && (pid_t)former != tid) task_drop(t, (pid_t)former);
        image_t *old = k->img;
        pid_t ppid = old ? old->ppid : 0;
        if (old) end_image(t, old);
        /* the other threads of the old image are gone */
        for (size_t i = 0; i < t->ntasks;)
            if (t->tasks[i] != k && t->tasks[i]->img == old && old) {
                task_free(t->tasks[i]);
                t->tasks[i] = t->tasks[--t->ntasks];
            } else {
                i++;
            }
        k->img = new_image(t, tid, ppid, NULL, IMG_EXEC);
        k->followed = 0;
        k->in_call = 0;
        k->stepping = 0;
        if (k->img && k->img->own && t->cfg.how == MT_PT_RUN && mt_elf_is_static(k->img->exe) == 1)
            t->st.breakpoints += mt_pt_set_alloc_breakpoints(k->img, tid);
        break;
    }
    case PTRACE_EVENT_STOP:
        if (k->started && (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)) {
            ptrace(PTRACE_LISTEN, tid, 0, 0); /* a group stop: stay stopped */
            return;
        }
        break;
    case 0:
        if (sig == (SIGTRAP | 0x80)) { /* a system-call stop */
            if (ptrace(PTRACE_GETREGS, tid, 0, &regs) != 0) break;
            int entry = 0;
            if (t->cfg.how == MT_PT_ATTACH) { /* every call stops twice: which one is this? */
                struct __ptrace_syscall_info si;
                entry = ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof si, &si) > 0 &&
                        si.op == PTRACE_SYSCALL_INFO_ENTRY;
            }
            if (entry) sys_entry(t, k, &regs);
            else sys_exit(t, k, &regs);
            break;
        }
        if (sig == SIGTRAP && k->img && k->img->nbps && mt_pt_on_breakpoint(t, k)) return;
        k->started = 1;
        resume(t, tid, sig); /* a signal for the process: deliver it */
        return;
    default: break;
    }
    k->started = 1;
    resume(t, tid, 0);
}

static void on_exit_status(mt_ptracer_t *t, pid_t tid, int status, const struct rusage *ru)
{
    task_t *k = task_find(t, tid);
    image_t *img = k ? k->img : NULL;
    if (img && img->pid == tid) {
        end_image(t, img);
        push_exit(t, tid, status, ru);
    } else if (img) { /* a thread: its chunk goes to the collector */
        for (size_t i = 0; i < img->nw; i++)
            if (img->w[i].tid == tid) release_writer(&img->w[i]);
    } else {
        push_exit(t, tid, status, ru); /* a child we did not follow */
    }
    if (k) task_drop(t, tid);
}

/* Leaves every traced thread running (MT_PT_ATTACH). */
static void detach_all(mt_ptracer_t *t)
{
    for (size_t i = 0; i < t->ntasks; i++) {
        pid_t tid = t->tasks[i]->tid;
        if (ptrace(PTRACE_DETACH, tid, 0, 0) == 0) continue; /* it was stopped */
        ptrace(PTRACE_INTERRUPT, tid, 0, 0);
        for (;;) {
            int st;
            pid_t p = waitpid(tid, &st, __WALL);
            if (p < 0 && errno == EINTR) continue;
            if (p < 0 || WIFEXITED(st) || WIFSIGNALED(st)) break;
            int sig = WSTOPSIG(st), ev = st >> 16;
            /* keep a signal that was about to be delivered */
            int pass = ev == 0 && sig != (SIGTRAP | 0x80) ? sig : 0;
            if (ptrace(PTRACE_DETACH, tid, 0, pass) == 0) break;
        }
    }
    for (size_t i = 0; i < t->nimages; i++) {
        if (t->images[i]->ended) continue;
        end_image(t, t->images[i]);
        t->st.detached += 1;
    }
}

static int attach_all(mt_ptracer_t *t, pid_t pid)
{
    /* the leader first: its threads join its image */
    if (ptrace(PTRACE_SEIZE, pid, 0, seize_opts(t)) != 0) return -errno;
    ptrace(PTRACE_INTERRUPT, pid, 0, 0);
    if (!task_new(t, pid)) return -ENOMEM;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    /* threads can start while we attach: go round until no new one shows */
    for (int round = 0, added = 1; added && round < 50; round++) {
        added = 0;
        DIR *d = opendir(path);
        if (!d) return -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
            pid_t tid = (pid_t)atoi(de->d_name);
            if (tid <= 0 || task_find(t, tid)) continue;
            if (ptrace(PTRACE_SEIZE, tid, 0, seize_opts(t)) != 0) {
                int e = errno;
                closedir(d);
                if (tid == pid) return -e;
                continue;
            }
            ptrace(PTRACE_INTERRUPT, tid, 0, 0);
            task_t *k = task_new(t, tid);
            if (k) k->started = 0;
            added = 1;
        }
        closedir(d);
    }
    return 0;
}

/* Why ptrace refused the first process, and what to do, into t->err. */
static void why_not(mt_ptracer_t *t, int err)
{
    int pid = (int)t->first;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    uint32_t len = 0;
    mt_read_small_file(path, buf, sizeof buf, &len);
    const char *tp = len ? strstr(buf, "TracerPid:") : NULL;
    long tracer = tp ? strtol(tp + 10, NULL, 10) : 0;
    if (tracer > 0) {
        snprintf(t->err, sizeof t->err,
                 "cannot trace process %d: it is already traced by process %ld (a debugger, strace, "
                 "another memtrace): detach that first",
                 pid, tracer);
        return;
    }
    if (err == EPERM) {
        int scope = -1;
        len = 0;
        mt_read_small_file("/proc/sys/kernel/yama/ptrace_scope", buf, sizeof buf, &len);
        if (len) scope = atoi(buf);
        if (scope >= 1 && geteuid() != 0)
            snprintf(t->err, sizeof t->err,
                     "cannot trace process %d: kernel.yama.ptrace_scope is %d (only a parent may trace): run "
                     "memtrace as root, or set it to 0 (sysctl kernel.yama.ptrace_scope=0)",
                     pid, scope);
        else
            snprintf(t->err, sizeof t->err,
                     "cannot trace process %d: not permitted (another user's process, or tracing is "
                     "forbidden here: a container without CAP_SYS_PTRACE): run memtrace as its user or as root",
                     pid);
        return;
    }
    snprintf(t->err, sizeof t->err, "cannot trace process %d: %s", pid, strerror(err));
}

static void *tracer_main(void *arg)
{
    mt_ptracer_t *t = arg;
    int rc = 0;
    if (t->cfg.how == MT_PT_ATTACH) {
        rc = attach_all(t, t->first);
    } else {
        rc = ptrace(PTRACE_SEIZE, t->first, 0, seize_opts(t)) == 0 ? 0 : -errno;
        if (!rc) {
            task_t *k = task_new(t, t->first); /* the launcher's code until exec: not recorded */
            if (k) k->started = 1;
        }
    }
    pthread_mutex_lock(&t->lock);
    if (rc) why_not(t, -rc);
    t->ready = rc ? -1 : 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (rc) return NULL;

    for (;;) {
        if (t->detach_req) {
            detach_all(t);
            break;
        }
        int status;
        struct rusage ru;
        /* attach: a detach request must not wait for the next stop, which
         * may never come (a sleeping process) */
        int attach = t->cfg.how == MT_PT_ATTACH;
        pid_t tid = wait4(-1, &status, __WALL | (attach ? WNOHANG : 0), &ru);
        if (tid == 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (tid < 0) {
            if (errno == EINTR) continue;
            break; /* ECHILD: nothing left */
        }
        t->st.stops++;
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            on_exit_status(t, tid, status, &ru);
            continue;
        }
        if (!WIFSTOPPED(status)) continue;
        task_t *k = task_find(t, tid);
        if (!k) k = task_new(t, tid);
        if (!k) {
            ptrace(PTRACE_CONT, tid, 0, 0);
            continue;
        }
        on_event(t, k, status);
    }
    for (size_t i = 0; i < t->nimages; i++) end_image(t, t->images[i]);
    pthread_mutex_lock(&t->lock);
    t->done = 1;
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int mt_ptracer_start(const mt_ptracer_cfg_t *cfg, pid_t pid, mt_ptracer_t **out, char *err, size_t errlen)
{
    mt_ptracer_t *t = calloc(1, sizeof *t);
    if (!t) return MT_ENOMEM;
    t->cfg = *cfg;
    t->first = pid;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    /* signals for memtrace go to the other threads: the tracer thread
     * starts with all of them blocked */
    sigset_t all, keep;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &keep);
    int rc = pthread_create(&t->thread, NULL, tracer_main, t);
    pthread_sigmask(SIG_SETMASK, &keep, NULL);
    if (rc) {
        free(t);
        snprintf(err, errlen, "cannot start the tracer thread: %s", strerror(rc));
        return MT_ENOMEM;
    }
    pthread_mutex_lock(&t->lock);
    while (!t->ready) pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
    if (t->ready < 0) {
        snprintf(err, errlen, "%s", t->err);
        pthread_join(t->thread, NULL);
        free(t);
        return MT_EPERM;
    }
    *out = t;
    return 0;
}

int mt_ptracer_reaped(void *tracer, pid_t *pid, int *status, int64_t *maxrss, int64_t *cpu_ns)
{
    mt_ptracer_t *t = tracer;
    int got = 0;
    pthread_mutex_lock(&t->lock);
    if (t->exits_read < t->nexits) {
        exit_t *e = &t->exits[t->exits_read++];
        *pid = e->pid;
        *status = e->status;
        *maxrss = e->maxrss;
        *cpu_ns = e->cpu_ns;
        got = 1;
    }
    pthread_mutex_unlock(&t->lock);
    return got;
}

int mt_ptracer_children_left(void *tracer)
{
    mt_ptracer_t *t = tracer;
    pthread_mutex_lock(&t->lock);
    int left = !t->done;
    pthread_mutex_unlock(&t->lock);
    return left;
}

void mt_ptracer_detach(mt_ptracer_t *t) { t->detach_req = 1; }

void mt_ptracer_join(mt_ptracer_t *t, mt_ptracer_stats_t *stats)
{
    if (!t) return;
    pthread_join(t->thread, NULL);
    if (stats) *stats = t->st;
    for (size_t i = 0; i < t->nimages; i++) {
        image_t *img = t->images[i];
        if (img->r) munmap(img->r, img->rsize);
        mt_runwind_free(img->uw);
        free(img->bps);
        for (size_t j = 0; j < img->npend; j++) free(img->pend[j].ips);
        free(img->pend);
        free(img->w);
        free(img);
    }
    for (size_t i = 0; i < t->ntasks; i++) task_free(t->tasks[i]);
    free(t->images);
    free(t->tasks);
    free(t->exits);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    free(t);
}
