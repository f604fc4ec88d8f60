/* nofp.c - allocations from code built WITHOUT frame pointers (tests/
 * CMakeLists.txt compiles this file with -O2 -fomit-frame-pointer), so the
 * tracer must unwind through it with DWARF information.
 *
 * alloc_here() mallocs 24 bytes; caller_a() calls it 10 times and
 * caller_b() 10 times, from one call site each, and main calls both.  A
 * correct stack of every malloc is alloc_here <- caller_a (or caller_b) <-
 * main: 20 mallocs, 2 distinct stacks, 10 each.  No stdio; nothing freed.
 */
#include <stdlib.h>

#define CALLS 10

static void *volatile sink;
static volatile int after;

__attribute__((noipa)) void alloc_here(void)
{
    sink = malloc(24);
    after++; /* keeps the call from being a tail call */
}

__attribute__((noipa)) void caller_a(void)
{
    for (int i = 0; i < CALLS; i++) alloc_here();
    after++;
}

__attribute__((noipa)) void caller_b(void)
{
    for (int i = 0; i < CALLS; i++) alloc_here();
    after++;
}

int main(void)
{
    caller_a();
    caller_b();
    return 0;
}
