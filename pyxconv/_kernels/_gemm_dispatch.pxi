# Part of _im2col.pyx (included there, in order): the matrix products: the own float32
# GEMM (gemm_kernels.h) by instruction set, else the BLAS through scipy's cython_blas.

# ---------------------------------------------------------------------------
# The GEMMs call the BLAS that SciPy links (scipy.linalg.cython_blas: OpenBLAS
# in SciPy's wheels, MKL under conda, Accelerate on macOS), cimported at build
# time, so every installation has the same path, unless pyxconv's own float32
# GEMM serves them. The callers hold the BLAS to one thread while the kernels'
# threads call it (pyxconv._parallel.blas_on_one_thread).

from scipy.linalg.cython_blas cimport (dgemm as _blas_dgemm, dgemv as _blas_dgemv,
                                       sgemm as _blas_sgemm, sgemv as _blas_sgemv)

#: The largest size the BLAS's 32-bit integers hold; callers keep every GEMM
#: dimension and leading dimension at or under it (:func:`gemm_dimension_limit`).
cdef Py_ssize_t _GEMM_INT_MAX = 2147483647


def gemm_dimension_limit():
    """The largest m, n, k or leading dimension the per-sample kernels' GEMM accepts."""
    return _GEMM_INT_MAX


cdef extern from "simd_kernels.h":
    # one source for every instruction set; the `isa` argument picks the instance
    void pyxconv_transpose_f32(const float* src, float* dst, Py_ssize_t rows,
                               Py_ssize_t cols) noexcept nogil
    void pyxconv_transpose_f64(const double* src, double* dst, Py_ssize_t rows,
                               Py_ssize_t cols) noexcept nogil
    double pyxconv_sum_f32(const float* values, Py_ssize_t count) noexcept nogil
    void pyxconv_deinterleave_f32(int isa, const float* row, float* even, float* odd,
                                  Py_ssize_t half) noexcept nogil
    void pyxconv_deinterleave_f64(int isa, const double* row, double* even, double* odd,
                                  Py_ssize_t half) noexcept nogil
    void pyxconv_fold_plane_f32(int isa, const float* cols, float* plane, float* buffer,
                                int has_bias, float bias, Py_ssize_t c, Py_ssize_t positions,
                                const conv_geometry* g, Py_ssize_t band_rows,
                                const Py_ssize_t* tables) noexcept nogil
    void pyxconv_fold_plane_f64(int isa, const double* cols, double* plane, double* buffer,
                                int has_bias, double bias, Py_ssize_t c, Py_ssize_t positions,
                                const conv_geometry* g, Py_ssize_t band_rows,
                                const Py_ssize_t* tables) noexcept nogil


cdef extern from "gemm_kernels.h":
    void pyxconv_sgemm_isa(int isa, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
                           Py_ssize_t a_row, Py_ssize_t a_col, const float* b,
                           Py_ssize_t ldb, float* c, Py_ssize_t ldc,
                           int accumulate) noexcept nogil


# pyxconv's own float32 GEMM (gemm_kernels.h) serves the float32 products on the
# best instruction set the CPU has (AVX-512, AVX2 + FMA or NEON) unless set_isa
# picks a lower one; float64, small products and other CPUs use the BLAS. The
# helpers of simd_kernels.h run their instance of the same instruction set
# (the baseline under "none"): one switch for every kernel.
cdef int _gemm_isa = best_isa()


cdef inline Py_ssize_t _aligned_count(Py_ssize_t count, Py_ssize_t itemsize) noexcept nogil:
    """count rounded up to whole 64-byte lines of items."""
    cdef Py_ssize_t per_line = 64 // itemsize
    return (count + per_line - 1) // per_line * per_line


cdef inline void* _align_up(void* block) noexcept nogil:
    """The first 64-byte boundary in ``block``, allocated 64 bytes larger than needed.

    The own GEMM's loads of b are a tenth faster from line-aligned rows.
    """
    return <void*>((<size_t>block + 63) & ~(<size_t>63))


cdef inline void _transpose(const floating* src, floating* dst, Py_ssize_t rows,
                            Py_ssize_t cols) noexcept nogil:
    """dst (cols x rows) = src (rows x cols)^T, both contiguous, in blocks (simd_kernels.h)."""
    if floating is float:
        pyxconv_transpose_f32(src, dst, rows, cols)
    else:
        pyxconv_transpose_f64(src, dst, rows, cols)


cdef inline floating _sum(const floating* values, Py_ssize_t count) noexcept nogil:
    """values[0] + ... + values[count - 1], accumulated in double in eight running
    sums added in a fixed order: the same bits on every run and thread. (float32
    in C, pyxconv_sum_f32, which the compiler vectorises; the same sums.)"""
    if floating is float:
        return <floating>pyxconv_sum_f32(values, count)
    else:
        return _sum_f64(values, count)


cdef inline double _sum_f64(const double* values, Py_ssize_t count) noexcept nogil:
    """The float64 form of :func:`_sum` (pyxconv_sum_f32's order)."""
    cdef double lanes[8]
    cdef Py_ssize_t i, lane
    for lane in range(8):
        lanes[lane] = 0
    for i in range(count - count % 8):
        lanes[i % 8] += values[i]
    cdef double total = (((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                         + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])))
    for i in range(count - count % 8, count):
        total += values[i]
    return total


# Which float32 products the own kernel makes: all but the narrowest and the
# shallowest, whatever the BLAS. How fast a BLAS is on small products depends on
# its build and on whether it knows the CPU: OpenBLAS 0.3.30 (SciPy's wheels) ran
# LeNet's layers (6 and 16 output channels, 25 and 150 rows) 5-8% faster than the
# own kernel on a Zen 4, which it knows, and 1.4-3.4x slower on a Zen 5, which it
# runs with its Haswell kernels; there the own kernel was faster on every product
# of 6-64 rows, depth 9-150 and 100-784 columns (AVX-512 and AVX2 alike). Its speed
# and its bits are then the same whichever BLAS NumPy and SciPy bring.
cdef enum:
    _OWN_SGEMM_MIN_ROWS = 1
    _OWN_SGEMM_MIN_COLUMNS = 32
    _OWN_SGEMM_MIN_DEPTH = 8


cdef inline bint _own_sgemm_serves(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Whether a float32 product (m x k) @ (k x n) goes to pyxconv's own GEMM."""
    return (_gemm_isa != PYXCONV_ISA_NONE and m >= _OWN_SGEMM_MIN_ROWS and n >= _OWN_SGEMM_MIN_COLUMNS
            and k >= _OWN_SGEMM_MIN_DEPTH)


def isa_available(str isa):
    """Whether the own float32 GEMM can run on ``isa`` ("avx512", "avx2", "neon", "none") here."""
    return bool(pyxconv_cpu_has_isa(isa_number(isa)))


def get_isa():
    """The instruction set the own float32 GEMM runs on ("none": every product on the BLAS)."""
    return isa_name(_gemm_isa)


def set_isa(str isa):
    """Run the own float32 GEMM on ``isa``, which :func:`isa_available` allows; returns the old one."""
    global _gemm_isa
    if not isa_available(isa):
        raise ValueError(f"instruction set {isa!r} is not available on this CPU or build")
    previous = get_isa()
    _gemm_isa = isa_number(isa)
    return previous


def sgemm_own(const float[:, :] a, const float[:, :] b, float[:, :] c,
              bint transpose_a=False, bint accumulate=False, str isa=None):
    """``c = a @ b`` on pyxconv's own float32 GEMM, for tests.

    With transpose_a, ``a.T @ b``; with accumulate, ``c += ...``; ``isa``
    picks the instruction set (default: the one in use). Rows may be strided
    (views of wider arrays), elements within a row contiguous.
    """
    cdef int chosen = _gemm_isa if isa is None else isa_number(isa)
    if chosen == PYXCONV_ISA_NONE or chosen < 0 or not pyxconv_cpu_has_isa(chosen):
        raise RuntimeError(f"pyxconv's own GEMM is not available here on {isa or get_isa()!r}")
    if a.strides[1] != sizeof(float) or b.strides[1] != sizeof(float) \
            or c.strides[1] != sizeof(float) or a.strides[0] < 0 or b.strides[0] < 0 \
            or c.strides[0] < 0:
        raise ValueError("a, b and c need contiguous rows (and rows in increasing order)")
    cdef Py_ssize_t m = a.shape[1] if transpose_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if transpose_a else a.shape[1]
    cdef Py_ssize_t n = b.shape[1]
    if b.shape[0] != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError(f"shapes do not match: a ({a.shape[0]}, {a.shape[1]}), "
                         f"b ({b.shape[0]}, {b.shape[1]}), c ({c.shape[0]}, {c.shape[1]}), "
                         f"transpose_a={transpose_a}")
    if m == 0 or n == 0:
        return
    cdef Py_ssize_t lda = a.strides[0] // sizeof(float)
    cdef const float* a_ptr = &a[0, 0] if a.shape[0] and a.shape[1] else NULL
    cdef const float* b_ptr = &b[0, 0] if k else NULL
    with nogil:
        pyxconv_sgemm_isa(chosen, m, n, k, a_ptr, 1 if transpose_a else lda,
                          lda if transpose_a else 1, b_ptr, b.strides[0] // sizeof(float),
                          &c[0, 0], c.strides[0] // sizeof(float), accumulate)


def blas_product(const floating[:, :] a, const floating[:, :] b, floating[:, :] c,
                 bint transpose_a=False, bint transpose_b=False, bint accumulate=False):
    """``c = op(a) @ op(b)`` (``+=`` with accumulate) on the BLAS path of the kernels, for tests.

    op transposes with ``transpose_a`` / ``transpose_b``. One row or one column of
    c goes to gemv, as in the kernels; the rest to gemm. Rows may be strided
    (views of wider arrays: leading dimensions past the width), elements within a
    row contiguous.
    """
    if (a.strides[1] != sizeof(floating) or b.strides[1] != sizeof(floating)
            or c.strides[1] != sizeof(floating) or a.strides[0] < a.shape[1] * sizeof(floating)
            or b.strides[0] < b.shape[1] * sizeof(floating)
            or c.strides[0] < c.shape[1] * sizeof(floating)):
        raise ValueError("a, b and c need contiguous rows, in increasing order, not overlapping")
    cdef Py_ssize_t m = a.shape[1] if transpose_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if transpose_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if transpose_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if transpose_b else b.shape[1]
    if kb != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError(f"shapes do not match: a ({a.shape[0]}, {a.shape[1]}), "
                         f"b ({b.shape[0]}, {b.shape[1]}), c ({c.shape[0]}, {c.shape[1]})")
    if max(m, n, k, a.shape[1], b.shape[1]) > _GEMM_INT_MAX:
        raise ValueError("a dimension passes the BLAS's 32-bit integers")
    if m == 0 or n == 0:
        return
    if k == 0:
        if not accumulate:
            c[:, :] = 0
        return
    with nogil:
        _blas_gemm(transpose_a, transpose_b, m, n, k, &a[0, 0], a.strides[0] // sizeof(floating),
                   &b[0, 0], b.strides[0] // sizeof(floating), &c[0, 0],
                   c.strides[0] // sizeof(floating), accumulate)


cdef inline void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                       floating* c, Py_ssize_t ldc, bint accumulate=False) noexcept nogil:
    """Row-major ``c = op(a) @ op(b)``, as NumPy's matmul calls it (``+=`` with accumulate).

    float32 goes to pyxconv's own kernel when it is in use, except with a
    transposed b (its vector loads need b's rows contiguous); callers that
    need that product transpose b themselves first (:func:`unfold_samples`).
    """
    if floating is float:
        if _own_sgemm_serves(m, n, k) and not trans_b:
            pyxconv_sgemm_isa(_gemm_isa, m, n, k, a, 1 if trans_a else lda,
                              lda if trans_a else 1, b, ldb, c, ldc, accumulate)
            return
    _blas_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, accumulate)


cdef inline void _blas_gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                            Py_ssize_t k, const floating* a, Py_ssize_t lda,
                            const floating* b, Py_ssize_t ldb, floating* c, Py_ssize_t ldc,
                            bint accumulate) noexcept nogil:
    """:func:`_gemm` on the BLAS whatever the size, on the calling thread's BLAS threads."""
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the Fortran
    # BLAS gets the operands swapped, each still with its own transpose flag.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int m_ = <int>m, n_ = <int>n, k_ = <int>k
    # BLAS wants leading dimensions >= 1 even for empty operands
    cdef int lda_ = <int>(lda if lda > 1 else 1)
    cdef int ldb_ = <int>(ldb if ldb > 1 else 1)
    cdef int ldc_ = <int>(ldc if ldc > 1 else 1)
    cdef floating alpha = 1
    cdef floating beta = 1 if accumulate else 0
    if m == 0 or n == 0:
        return
    if (m == 1 or n == 1) and k > 0:
        # one row or one column of C: a matrix-vector product. OpenBLAS 0.3.30's
        # sgemm took 24-32 us for (1, 400) @ (400, 120), LeNet's first Linear at
        # batch 1 (on a Zen 5, which it runs with its Haswell kernels); sgemv 1-2 us.
        _blas_gemv(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, beta)
        return
    if floating is float:
        _blas_sgemm(&tb, &ta, &n_, &m_, &k_, &alpha, <float*>b, &ldb_, <float*>a, &lda_,
                    &beta, c, &ldc_)
    else:
        _blas_dgemm(&tb, &ta, &n_, &m_, &k_, &alpha, <double*>b, &ldb_, <double*>a, &lda_,
                    &beta, c, &ldc_)


cdef inline void _blas_gemv(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                            Py_ssize_t k, const floating* a, Py_ssize_t lda,
                            const floating* b, Py_ssize_t ldb, floating* c, Py_ssize_t ldc,
                            floating beta) noexcept nogil:
    """:func:`_blas_gemm` where m == 1 or n == 1 (and k >= 1), as one gemv.

    Row-major operands seen column-major: B (k x n, ldb) is an n x k matrix, A
    (m x k, lda) a k x m one. With m == 1, C's row = op(B)^T op(A)'s row; with
    n == 1, C's column (stride ldc) = op(A) op(B)'s column.
    """
    cdef char trans
    cdef int rows, cols, ld, inc_x, inc_y
    cdef const floating* matrix
    cdef const floating* vector
    cdef floating alpha = 1
    if m == 1:
        matrix, ld = b, <int>(ldb if ldb > 1 else 1)
        trans = b'T' if trans_b else b'N'
        rows, cols = (<int>k, <int>n) if trans_b else (<int>n, <int>k)
        vector, inc_x = a, <int>(lda if trans_a and lda > 1 else 1)
        inc_y = 1
    else:
        matrix, ld = a, <int>(lda if lda > 1 else 1)
        trans = b'N' if trans_a else b'T'
        rows, cols = (<int>m, <int>k) if trans_a else (<int>k, <int>m)
        vector, inc_x = b, <int>(ldb if not trans_b and ldb > 1 else 1)
        inc_y = <int>(ldc if ldc > 1 else 1)
    if floating is float:
        _blas_sgemv(&trans, &rows, &cols, &alpha, <float*>matrix, &ld, <float*>vector, &inc_x,
                    &beta, c, &inc_y)
    else:
        _blas_dgemv(&trans, &rows, &cols, &alpha, <double*>matrix, &ld, <double*>vector,
                    &inc_x, &beta, c, &inc_y)


def own_sgemm_serves(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k):
    """Whether a float32 product (m x k) @ (k x n) without a transposed right operand goes
    to pyxconv's own GEMM (else to the BLAS) under the current instruction set."""
    return _own_sgemm_serves(m, n, k)


cdef inline Py_ssize_t _position_tiles(Py_ssize_t positions, Py_ssize_t tile) noexcept nogil:
    """Tiles of ``tile`` positions covering ``positions``, the last one widened (up to
    tile + 31) rather than left narrower than the own GEMM's 32 columns: a narrow last
    tile went to the BLAS, whose sums round otherwise than the whole product's."""
    cdef Py_ssize_t tiles = (positions + tile - 1) // tile
    if tiles > 1 and positions - (tiles - 1) * tile < _OWN_SGEMM_MIN_COLUMNS:
        tiles -= 1
    return tiles


cdef inline Py_ssize_t _tile_width(Py_ssize_t positions, Py_ssize_t tile, Py_ssize_t t,
                                   Py_ssize_t tiles) noexcept nogil:
    """Positions of tile t of :func:`_position_tiles`: ``tile``, the last one what is left."""
    return positions - t * tile if t == tiles - 1 else tile
