/* Ctrl-C inside the kernels' parallel loops.

   A loop declares a pyxconv_interrupt on its stack, initialises it with the
   GIL held, and calls pyxconv_interrupt_poll(&st) at the top of every task
   (a sample, a chunk, a (sample, group) pair). Only the loop's OpenMP thread
   0 (the Python thread that called the kernel) checks for signals, and at
   most every PYXCONV_POLL_SECONDS: it takes the GIL briefly and runs
   PyErr_CheckSignals, which runs Python's signal handlers (the default
   SIGINT handler raises KeyboardInterrupt). If a handler raised, the
   exception is kept in the struct and the shared stop flag set; every
   thread then skips the tasks it has not started. After the loop, with the
   GIL, pyxconv_interrupt_raise(&st) restores the exception (returns -1) so
   the kernel's caller sees it.

   Cost: one clock read every PYXCONV_POLL_TASKS tasks on one thread, and a
   GIL round trip every 50 ms; nothing for other threads but a load of the
   flag. */
#ifndef PYXCONV_INTERRUPT_H
#define PYXCONV_INTERRUPT_H
#include <time.h>
#include "_omp_compat.h"

#define PYXCONV_POLL_SECONDS 0.05
/* Thread 0 reads the clock at every this many tasks, the first included: a
   read and omp_get_thread_num() cost ~15 ns, which a pooled row of LeNet's
   (5 to 14 outputs) does not. The longest tasks (a wide layer's sample, a
   few ms) then delay an interrupt by tens of ms. */
#define PYXCONV_POLL_TASKS 8

typedef struct {
    volatile int stop;
    int countdown;  /* thread 0's tasks before its next clock read */
    double next_poll;
    PyObject *type, *value, *traceback;
} pyxconv_interrupt;

/* The coarse clock (Linux: the last timer tick, a few ms old) is read without a
   system call in a few ns, and a few ms are nothing against PYXCONV_POLL_SECONDS;
   kernels whose tasks are short (a pooled row) call the poll millions of times. */
static inline double pyxconv_monotonic(void) {
    struct timespec t;
#if defined(CLOCK_MONOTONIC_COARSE)
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
#else
    clock_gettime(CLOCK_MONOTONIC, &t);
#endif
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline void pyxconv_interrupt_init(pyxconv_interrupt *st) {
    st->stop = 0;
    st->countdown = 0;
    st->next_poll = pyxconv_monotonic() + PYXCONV_POLL_SECONDS;
    st->type = st->value = st->traceback = NULL;
}

/* Whether the loop should stop; callable with or without the GIL, from any thread. */
static inline int pyxconv_interrupt_poll(pyxconv_interrupt *st) {
    if (st->stop)
        return 1;
    if (omp_get_thread_num() != 0)
        return 0;
    if (st->countdown-- > 0)
        return 0;
    st->countdown = PYXCONV_POLL_TASKS - 1;
    double now = pyxconv_monotonic();
    if (now < st->next_poll)
        return 0;
    st->next_poll = now + PYXCONV_POLL_SECONDS;
    PyGILState_STATE gil = PyGILState_Ensure();
    if (PyErr_CheckSignals() != 0) {
        PyErr_Fetch(&st->type, &st->value, &st->traceback);
        st->stop = 1;
    }
    PyGILState_Release(gil);
    return st->stop;
}

/* With the GIL, after the loop: -1 with the handler's exception set if it raised. */
static inline int pyxconv_interrupt_raise(pyxconv_interrupt *st) {
    if (!st->stop)
        return 0;
    if (st->type == NULL)
        { Py_INCREF(PyExc_KeyboardInterrupt); st->type = PyExc_KeyboardInterrupt; }
    PyErr_Restore(st->type, st->value, st->traceback);
    st->type = st->value = st->traceback = NULL;
    return -1;
}
#endif
