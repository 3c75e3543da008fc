# Ctrl-C inside the kernels' parallel loops: see _interrupt.h.
#
#     cdef pyxconv_interrupt st
#     cdef pyxconv_interrupt* stp = &st
#     pyxconv_interrupt_init(stp)
#     for s in prange(n, nogil=True, ...):
#         if pyxconv_interrupt_poll(stp):
#             continue          # drop the tasks not started
#         ...
#     pyxconv_interrupt_raise(stp)   # with the GIL: raises what the handler raised
cdef extern from "_interrupt.h":
    ctypedef struct pyxconv_interrupt:
        pass
    void pyxconv_interrupt_init(pyxconv_interrupt* st)
    int pyxconv_interrupt_poll(pyxconv_interrupt* st) nogil
    int pyxconv_interrupt_raise(pyxconv_interrupt* st) except -1
