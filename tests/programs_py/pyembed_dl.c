/* pyembed_dl.c - an embedding host that opens the shared libpython at run
 * time with dlopen(RTLD_LOCAL): its symbols are reachable only through the
 * handle.  usage: pyembed_dl LIBPYTHON CODE */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "pyembed_dl: %s\n", dlerror());
        return 2;
    }
    void (*init)(void) = (void (*)(void))dlsym(h, "Py_Initialize");
    int (*run)(const char *) = (int (*)(const char *))dlsym(h, "PyRun_SimpleString");
    int (*fini)(void) = (int (*)(void))dlsym(h, "Py_FinalizeEx");
    if (!init || !run || !fini) return 2;
    init();
    int rc = run(argv[2]);
    if (fini() < 0) rc = 1;
    return rc ? 1 : 0;
}
