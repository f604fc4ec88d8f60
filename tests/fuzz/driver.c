/* driver.c - replays fuzz inputs without libFuzzer, so that the kept
 * corpus runs in the normal test suite with any compiler.
 *
 * usage: NAME_replay FILE|DIR...
 * Every file named (and every regular file in a named directory, in name
 * order) is passed once to the target's LLVMFuzzerTestOneInput.  A target
 * that finds a bug aborts (assertion, sanitizer), failing the test; the
 * driver fails too when it found no input at all.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        exit(1);
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *n = realloc(buf, cap);
            if (!n) abort();
            buf = n;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        if (!k) break;
        len += k;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 1;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

int main(int argc, char **argv)
{
    long n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "%s: no such file or directory\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(sb.st_mode)) {
            n += run_file(argv[i]);
            continue;
        }
        struct dirent **names;
        int k = scandir(argv[i], &names, NULL, by_name);
        for (int j = 0; j < k; j++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
            if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) n += run_file(path);
            free(names[j]);
        }
        free(names);
    }
    printf("%ld inputs replayed\n", n);
    return n ? 0 : 1;
}
