/* pyoffsets.h - the CPython 3.11 structure offsets tracer/pyhooks.c reads
 * Python frames with (memtrace builds without Python headers).
 *
 * From Include/internal/pycore_frame.h, Include/cpython/code.h and
 * Include/cpython/pystate.h of 3.11 (64-bit); tests/programs_py/
 * test_pyoffsets.c checks them against the installed headers.
 */
#ifndef MT_PYOFFSETS_H
#define MT_PYOFFSETS_H

enum {
    TS_CFRAME = 56,          /* PyThreadState.cframe */
    CF_CURRENT = 8,          /* _PyCFrame.current_frame */
    FR_CODE = 32,            /* _PyInterpreterFrame.f_code */
    FR_PREVIOUS = 48,        /* .previous */
    FR_PREV_INSTR = 56,      /* .prev_instr */
    FR_IS_ENTRY = 68,        /* .is_entry */
    FR_OWNER = 69,           /* .owner */
    OWNED_BY_GENERATOR = 1,
    CO_FILENAME = 112,       /* PyCodeObject.co_filename */
    CO_QUALNAME = 128,       /* .co_qualname */
    CO_FIRSTTRACEABLE = 168, /* ._co_firsttraceable (int) */
    CO_CODE = 184,           /* .co_code_adaptive */
};

#endif
