# The kernels' instruction sets, numbered as gemm_kernels.h numbers them: one
# definition for every module whose code comes per instruction set (_im2col's GEMM
# and fold helpers, _softmax's row loops), which each keep the one in use.

cdef extern from "gemm_kernels.h":
    int PYXCONV_ISA_NONE, PYXCONV_ISA_AVX2, PYXCONV_ISA_AVX512, PYXCONV_ISA_NEON
    # CPUID and the operating system's register state; NONE is always available
    int pyxconv_cpu_has_isa(int isa) noexcept nogil


cdef inline int best_isa() noexcept nogil:
    """The best instruction set this CPU and build run: AVX-512, AVX2 with FMA, NEON, or none."""
    # each tested by name: a loop over a tuple of them, its variable left to inference,
    # once became a bint under Cython 3.3, and every AVX-512 machine started on AVX2
    if pyxconv_cpu_has_isa(PYXCONV_ISA_AVX512):
        return PYXCONV_ISA_AVX512
    if pyxconv_cpu_has_isa(PYXCONV_ISA_AVX2):
        return PYXCONV_ISA_AVX2
    if pyxconv_cpu_has_isa(PYXCONV_ISA_NEON):
        return PYXCONV_ISA_NEON
    return PYXCONV_ISA_NONE


cdef inline int isa_number(str name) except -1:
    """The number of ``name`` ("avx512", "avx2", "neon", "none"); ValueError for another."""
    if name == "avx512":
        return PYXCONV_ISA_AVX512
    if name == "avx2":
        return PYXCONV_ISA_AVX2
    if name == "neon":
        return PYXCONV_ISA_NEON
    if name == "none":
        return PYXCONV_ISA_NONE
    raise ValueError(f"unknown instruction set {name!r}; known: none, avx2, avx512, neon")


cdef inline int available_isa_number(str name) except -1:
    """:func:`isa_number` of ``name``; ValueError unless this CPU and build run it."""
    cdef int number = isa_number(name)
    if not pyxconv_cpu_has_isa(number):
        raise ValueError(f"instruction set {name!r} is not available on this CPU or build")
    return number


cdef inline str isa_name(int number):
    """The name of instruction set ``number``, as :func:`isa_number` takes it."""
    if number == PYXCONV_ISA_AVX512:
        return "avx512"
    if number == PYXCONV_ISA_AVX2:
        return "avx2"
    if number == PYXCONV_ISA_NEON:
        return "neon"
    return "none"
