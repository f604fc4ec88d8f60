/* test_pyoffsets.c - the 3.11 offsets of tracer/pyoffsets.h equal the
 * installed CPython headers' (built only when they are 3.11's). */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_frame.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "pyoffsets.h"

static void test_thread_state(void **state)
{
    (void)state;
    assert_int_equal(TS_CFRAME, offsetof(PyThreadState, cframe));
    assert_int_equal(CF_CURRENT, offsetof(_PyCFrame, current_frame));
}

static void test_frame(void **state)
{
    (void)state;
    assert_int_equal(FR_CODE, offsetof(_PyInterpreterFrame, f_code));
    assert_int_equal(FR_PREVIOUS, offsetof(_PyInterpreterFrame, previous));
    assert_int_equal(FR_PREV_INSTR, offsetof(_PyInterpreterFrame, prev_instr));
    assert_int_equal(FR_IS_ENTRY, offsetof(_PyInterpreterFrame, is_entry));
    assert_int_equal(FR_OWNER, offsetof(_PyInterpreterFrame, owner));
    assert_int_equal(OWNED_BY_GENERATOR, FRAME_OWNED_BY_GENERATOR);
}

static void test_code(void **state)
{
    (void)state;
    assert_int_equal(CO_FILENAME, offsetof(PyCodeObject, co_filename));
    assert_int_equal(CO_QUALNAME, offsetof(PyCodeObject, co_qualname));
    assert_int_equal(CO_FIRSTTRACEABLE, offsetof(PyCodeObject, _co_firsttraceable));
    assert_int_equal(CO_CODE, offsetof(PyCodeObject, co_code_adaptive));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_state),
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
