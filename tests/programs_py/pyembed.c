/* pyembed.c - an embedding host linked against the shared libpython
 * (DT_NEEDED): the interpreter starts inside a C program, not from
 * python3's main.  Runs argv[1] as Python code. */
#include <Python.h>

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    Py_Initialize();
    int rc = PyRun_SimpleString(argv[1]);
    if (Py_FinalizeEx() < 0) rc = 1;
    return rc ? 1 : 0;
}
