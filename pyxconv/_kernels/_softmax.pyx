"""Softmax, log-softmax and the fused softmax cross-entropy.

Design
------
Everything works on rows: a C-contiguous ``(M, C)`` array whose last axis is
the class axis (the Python layer moves the class axis last and flattens the
rest). One row is one task; ``prange`` hands whole rows to the threads, and
nothing is ever summed across rows here, so the result of every row, and so of
every call, does not depend on the thread count, bit for bit. The mean over
rows is taken by the caller from the per-row losses, in a fixed order.

Numerical stability (log-sum-exp): with ``m = max_j z_j``,

    log sum_j exp(z_j) = m + log s,   s = sum_j exp(z_j - m),

every exponent is <= 0 (no overflow) and the largest term is exp(0) = 1, so
``1 <= s <= C`` (no underflow to log 0). The loss ``log-sum-exp - z_c`` is
formed as ``(m - z_c) + log s``: two non-negative terms, no cancellation, so
logits of +-1e8 give the right finite loss (0.693 for two equal logits).

One row of the cross-entropy makes three passes over its C values, which are
in L1 cache after the first: the maximum, ``e_j = exp(z_j - m)`` written into
the gradient row (or a per-thread scratch row when no gradient is wanted) and
their sum, then the gradient ``scale * (p_j * A - a_j)`` written in place.
Rows of fewer than 32 classes (10 for MNIST) are taken in blocks of about
2048 values, one block per task, so that the exponentials of a block are a
single long vector loop; the blocks depend on the shape only. Per-thread
scratch (row maxima and sums of a block, and the exponentials when no
gradient is wanted) is one allocation per call, indexed by ``threadid()``.

float32 uses ``pyxconv_exp_nonpositive_f``, a branch-free Cephes-style expf
(range reduction to ``2^k * exp(r)``, |r| <= ln2/2, degree-6 polynomial, about
1 ulp) that the C compiler can vectorise; the libm ``expf`` call cannot be.
The float32 maximum is taken over integer keys that order like the floats, for
the same reason. float64 has its own branch-free exp (degree-13 polynomial, a
few ulp). These loops are C (``softmax_kernels.h``), compiled per instruction
set (see there). The sums use eight
independent accumulators in a fixed order (a single accumulator is a serial
dependency chain that the compiler may not reorder), in double for float32
rows too: over 2**26 float32 classes a float32 sum drifted by 6e-3.

The callers guarantee: arrays C-contiguous with matching shapes, C >= 1,
class indices either ``ignore_index`` or in ``[0, C)`` (checked by
:func:`first_bad_target` before any kernel runs), weights of length C.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport log
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from libc.stdint cimport int64_t

from pyxconv._kernels._isa cimport available_isa_number, best_isa, isa_name
from pyxconv._kernels._interrupt cimport (
    pyxconv_interrupt, pyxconv_interrupt_init, pyxconv_interrupt_poll, pyxconv_interrupt_raise)


# ------------------------------------------------------------------ row loops in C
#
# The loops that dominate the time (maximum, exponentials and their sum) are C
# (softmax_kernels.h), compiled once per instruction set, as the GEMM and the
# fold helpers are, and run on the one that pyxconv._blas.set_isa (PYXCONV_ISA)
# chose: Cython code is compiled for the baseline only. Every thread runs the
# same instance, so results do not depend on the thread count.
cdef extern from "softmax_kernels.h":
    float pyxconv_row_max_f(int isa, const float* z, Py_ssize_t n) noexcept nogil
    float pyxconv_exp_sum_f(int isa, const float* z, float m, float* e,
                            Py_ssize_t n) noexcept nogil
    void pyxconv_exp_inplace_f(int isa, float* e, Py_ssize_t count) noexcept nogil
    double pyxconv_exp_sum_d(int isa, const double* z, double m, double* e,
                             Py_ssize_t n) noexcept nogil
    void pyxconv_exp_inplace_d(int isa, double* e, Py_ssize_t count) noexcept nogil


cdef int _isa = best_isa()


def set_isa(str isa):
    """Run the row loops on ``isa`` (as pyxconv._blas.set_isa, which calls this); returns the old one."""
    global _isa
    previous = isa_name(_isa)
    _isa = available_isa_number(isa)
    return previous


def get_isa():
    """The instruction set the row loops run on."""
    return isa_name(_isa)


# Rows shorter than SMALL_ROW are processed in blocks of about BLOCK_ELEMENTS
# values: the exponentials of a whole block are one contiguous vector loop,
# where one short row would fall into the loop's scalar remainder. The blocks
# are fixed by the shape alone, never by the thread count.
cdef enum:
    SMALL_ROW = 32
    BLOCK_ELEMENTS = 2048


# ---------------------------------------------------------------- scalar helpers

cdef inline double _row_max_d(const double* z, Py_ssize_t n) noexcept nogil:
    """max_j z[j] (n >= 1), with four accumulators."""
    cdef double m0 = z[0], m1 = z[0], m2 = z[0], m3 = z[0]
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t n4 = n - n % 4
    while j < n4:
        m0 = z[j] if z[j] > m0 else m0
        m1 = z[j + 1] if z[j + 1] > m1 else m1
        m2 = z[j + 2] if z[j + 2] > m2 else m2
        m3 = z[j + 3] if z[j + 3] > m3 else m3
        j += 4
    while j < n:
        m0 = z[j] if z[j] > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


cdef inline floating _row_max(const floating* z, Py_ssize_t n) noexcept nogil:
    """max_j z[j] (n >= 1)."""
    if floating is float:
        return pyxconv_row_max_f(_isa, z, n)
    else:
        return _row_max_d(z, n)


cdef inline floating _row_sum(const floating* e, Py_ssize_t n) noexcept nogil:
    """sum_j e[j], with eight accumulators in a fixed order, in double for float32 too."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t n8 = n - n % 8
    while j < n8:
        s0 = s0 + e[j]
        s1 = s1 + e[j + 1]
        s2 = s2 + e[j + 2]
        s3 = s3 + e[j + 3]
        s4 = s4 + e[j + 4]
        s5 = s5 + e[j + 5]
        s6 = s6 + e[j + 6]
        s7 = s7 + e[j + 7]
        j += 8
    while j < n:
        s0 = s0 + e[j]
        j += 1
    return <floating>(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)))


cdef inline floating _exp_shifted(const floating* z, floating m, floating* e,
                                  Py_ssize_t n) noexcept nogil:
    """e[j] = exp(z[j] - m); returns sum_j e[j]."""
    if floating is float:
        return pyxconv_exp_sum_f(_isa, z, m, e, n)
    else:
        return pyxconv_exp_sum_d(_isa, z, m, e, n)


cdef inline void _block_exp(const floating* z, Py_ssize_t rows, Py_ssize_t n, floating* e,
                            floating* row_max, floating* row_sum) noexcept nogil:
    """For rows consecutive rows of length n: e = exp(z - row max), and each row's max and sum."""
    cdef Py_ssize_t r, j
    cdef floating m
    for r in range(rows):
        m = _row_max_small(z + r * n, n)
        row_max[r] = m
        for j in range(n):
            e[r * n + j] = z[r * n + j] - m
    if floating is float:
        pyxconv_exp_inplace_f(_isa, e, rows * n)
    else:
        pyxconv_exp_inplace_d(_isa, e, rows * n)
    for r in range(rows):
        row_sum[r] = _row_sum(e + r * n, n)


cdef inline floating _row_max_small(const floating* z, Py_ssize_t n) noexcept nogil:
    """max_j z[j] (n >= 1) of a short row, plainly."""
    cdef floating m = z[0]
    cdef Py_ssize_t j
    for j in range(1, n):
        if z[j] > m:
            m = z[j]
    return m


# ---------------------------------------------------------------- row kernels

cdef inline double _ce_index_row(const floating* z, Py_ssize_t c, const floating* w,
                                 double w_total, double eps, Py_ssize_t n,
                                 floating* e, bint want_grad, double scale) noexcept nogil:
    """Loss of one row with class index c; if want_grad, e becomes the gradient.

    loss = (1 - eps) w_c (lse - z_c) + (eps / C) sum_k w_k (lse - z_k)
    grad_j = scale * (p_j A - (1 - eps) w_c [j == c] - (eps / C) w_j),
    A = (1 - eps) w_c + (eps / C) W,  W = sum_k w_k  (w = 1 when w is NULL).
    """
    cdef floating m = _row_max(z, n)
    cdef floating s = _exp_shifted(z, m, e, n)
    return _ce_index_finish(z, c, w, w_total, eps, n, e, m, s, want_grad, scale)


cdef inline double _ce_index_finish(const floating* z, Py_ssize_t c, const floating* w,
                                    double w_total, double eps, Py_ssize_t n, floating* e,
                                    floating m, floating s, bint want_grad,
                                    double scale) noexcept nogil:
    """_ce_index_row once e = exp(z - m) and s = sum(e) are known."""
    cdef double log_s = log(<double>s)
    cdef double wc = <double>w[c] if w != NULL else 1.0
    cdef double loss = wc * ((<double>m - <double>z[c]) + log_s)
    cdef double smooth = 0.0, a_total
    cdef floating k, off
    cdef Py_ssize_t j
    if eps != 0.0:
        if w != NULL:
            for j in range(n):
                smooth += <double>w[j] * (<double>m - <double>z[j])
        else:
            for j in range(n):
                smooth += <double>m - <double>z[j]
        loss = (1.0 - eps) * loss + (eps / n) * (w_total * log_s + smooth)
    if want_grad:
        a_total = (1.0 - eps) * wc + (eps / n) * w_total
        k = <floating>(scale * a_total / <double>s)
        if eps == 0.0:
            for j in range(n):
                e[j] = e[j] * k
        elif w != NULL:
            off = <floating>(scale * eps / n)
            for j in range(n):
                e[j] = e[j] * k - off * w[j]
        else:
            off = <floating>(scale * eps / n)
            for j in range(n):
                e[j] = e[j] * k - off
        e[c] = e[c] - <floating>(scale * (1.0 - eps) * wc)
    return loss


cdef inline double _ce_prob_row(const floating* z, const floating* t, const floating* w,
                                double eps, Py_ssize_t n, floating* e, bint want_grad,
                                double scale) noexcept nogil:
    """Loss of one row with target probabilities t; if want_grad, e becomes the gradient.

    a_k = w_k ((1 - eps) t_k + eps / C);  loss = sum_k a_k (lse - z_k);
    grad_j = scale * (p_j sum_k a_k - a_j).
    """
    cdef floating m = _row_max(z, n)
    cdef floating s = _exp_shifted(z, m, e, n)
    return _ce_prob_finish(z, t, w, eps, n, e, m, s, want_grad, scale)


cdef inline double _ce_prob_finish(const floating* z, const floating* t, const floating* w,
                                   double eps, Py_ssize_t n, floating* e, floating m,
                                   floating s, bint want_grad, double scale) noexcept nogil:
    """_ce_prob_row once e = exp(z - m) and s = sum(e) are known."""
    cdef double log_s = log(<double>s)
    cdef double a, a_total = 0.0, weighted = 0.0
    cdef double k
    cdef Py_ssize_t j
    for j in range(n):
        a = (1.0 - eps) * <double>t[j] + eps / n
        if w != NULL:
            a = a * <double>w[j]
        a_total += a
        weighted += a * (<double>m - <double>z[j])
    if want_grad:
        k = scale * a_total / <double>s
        for j in range(n):
            a = (1.0 - eps) * <double>t[j] + eps / n
            if w != NULL:
                a = a * <double>w[j]
            e[j] = <floating>(<double>e[j] * k - scale * a)
    return a_total * log_s + weighted


# ---------------------------------------------------------------- entry points

def first_bad_target(const int64_t[::1] target, Py_ssize_t n_classes, int64_t ignore_index):
    """Position of the first class index outside [0, n_classes) that is not ignore_index, or -1."""
    cdef Py_ssize_t i, bad = -1
    cdef int64_t t
    with nogil:
        for i in range(target.shape[0]):
            t = target[i]
            if (t < 0 or t >= n_classes) and t != ignore_index:
                bad = i
                break
    return bad


cdef inline void _softmax_finish(const floating* z, floating* o, Py_ssize_t n, floating m,
                                 floating s, bint log_output) noexcept nogil:
    """o holds exp(z - m) with sum s; turn it into softmax or log-softmax."""
    cdef floating inv, shift
    cdef Py_ssize_t j
    if log_output:
        shift = <floating>log(<double>s)
        for j in range(n):
            o[j] = (z[j] - m) - shift
    else:
        inv = 1 / s
        for j in range(n):
            o[j] = o[j] * inv


cdef class _Scratch:
    """Per-thread scratch: n_threads regions of ``per_thread`` values, freed with the object."""
    cdef void* data
    cdef Py_ssize_t per_thread

    def __cinit__(self, Py_ssize_t n_threads, Py_ssize_t per_thread, Py_ssize_t itemsize):
        self.per_thread = per_thread
        self.data = PyMem_RawMalloc(max(1, n_threads * per_thread) * itemsize)
        if self.data == NULL:
            raise MemoryError(f"no memory for {n_threads} x {per_thread} scratch values")

    def __dealloc__(self):
        PyMem_RawFree(self.data)


cdef inline Py_ssize_t _block_rows(Py_ssize_t n) noexcept nogil:
    """Rows per task: 1 for long rows, about BLOCK_ELEMENTS values' worth for short ones."""
    if n >= SMALL_ROW:
        return 1
    return BLOCK_ELEMENTS // n


def softmax_rows(const floating[:, ::1] x, floating[:, ::1] out, bint log_output,
                 int n_threads):
    """out = softmax(x) (or log_softmax(x)) along the last axis of (M, C) arrays."""
    cdef Py_ssize_t rows = x.shape[0], n = x.shape[1]
    cdef Py_ssize_t block = _block_rows(n)
    cdef Py_ssize_t n_blocks = (rows + block - 1) // block
    cdef Py_ssize_t b, r, r0, nr
    cdef floating m, s
    cdef floating* row_max
    cdef floating* row_sum
    cdef _Scratch scratch
    if rows == 0 or n == 0:
        return
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    if block == 1:
        for r in prange(rows, nogil=True, schedule="static", num_threads=n_threads):
            if pyxconv_interrupt_poll(stp):
                continue
            m = _row_max(&x[r, 0], n)
            s = _exp_shifted(&x[r, 0], m, &out[r, 0], n)
            _softmax_finish(&x[r, 0], &out[r, 0], n, m, s, log_output)
        pyxconv_interrupt_raise(stp)
        return
    scratch = _Scratch(n_threads, 2 * block, sizeof(floating))
    for b in prange(n_blocks, nogil=True, schedule="static", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        r0 = b * block
        nr = min(block, rows - r0)
        row_max = <floating*>scratch.data + threadid() * scratch.per_thread
        row_sum = row_max + block
        _block_exp(&x[r0, 0], nr, n, &out[r0, 0], row_max, row_sum)
        for r in range(nr):
            _softmax_finish(&x[r0 + r, 0], &out[r0 + r, 0], n, row_max[r], row_sum[r],
                            log_output)
    pyxconv_interrupt_raise(stp)


def cross_entropy_index(const floating[:, ::1] logits, const int64_t[::1] target,
                        const floating[::1] weight, double eps, int64_t ignore_index,
                        double[::1] row_loss, floating[:, ::1] grad, bint mean,
                        int n_threads):
    """Per-row losses (and the gradient) for class-index targets.

    ``weight`` may be None (all ones); ``grad`` may be None (no gradient).
    Returns ``(total, denominator)``: the sum of the row losses, taken
    serially in row order, and the summed weights of the rows whose target is
    not ``ignore_index``. With ``mean`` the gradient is divided by the latter.
    """
    cdef Py_ssize_t rows = logits.shape[0], n = logits.shape[1]
    cdef Py_ssize_t block = _block_rows(n)
    cdef Py_ssize_t n_blocks = (rows + block - 1) // block
    cdef Py_ssize_t b, r, r0, nr, i, j
    cdef int64_t c
    cdef const floating* w = NULL
    cdef double denom = 0.0, w_total = <double>n, scale = 1.0
    cdef bint want_grad = grad is not None
    cdef floating* e
    cdef floating* row_max
    cdef floating* row_sum
    cdef floating* region
    cdef _Scratch scratch
    if weight is not None:
        w = &weight[0]
        w_total = 0.0
        for j in range(n):
            w_total += <double>w[j]
    # the denominator, serially and in row order
    for i in range(rows):
        c = target[i]
        if c != ignore_index:
            denom += <double>w[c] if w != NULL else 1.0
    if mean and want_grad:
        scale = 1.0 / denom if denom != 0.0 else float("nan")
    if rows == 0:
        return 0.0, denom
    # per thread: row maxima and sums of a block, then exp values unless grad holds them
    scratch = _Scratch(n_threads, 2 * block + (0 if want_grad else block * n),
                       sizeof(floating))
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for b in prange(n_blocks, nogil=True, schedule="static", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        r0 = b * block
        nr = min(block, rows - r0)
        region = <floating*>scratch.data + threadid() * scratch.per_thread
        row_max = region
        row_sum = region + block
        e = &grad[r0, 0] if want_grad else region + 2 * block
        if block == 1:
            row_max[0] = _row_max(&logits[r0, 0], n)
            row_sum[0] = _exp_shifted(&logits[r0, 0], row_max[0], e, n)
        else:
            _block_exp(&logits[r0, 0], nr, n, e, row_max, row_sum)
        for r in range(nr):
            c = target[r0 + r]
            if c == ignore_index:
                row_loss[r0 + r] = 0.0
                if want_grad:
                    for j in range(n):
                        e[r * n + j] = 0
            else:
                row_loss[r0 + r] = _ce_index_finish(
                    &logits[r0 + r, 0], c, w, w_total, eps, n, e + r * n, row_max[r],
                    row_sum[r], want_grad, scale)
    pyxconv_interrupt_raise(stp)
    return _serial_sum(row_loss), denom


cdef double _serial_sum(const double[::1] values) noexcept:
    """sum of values, one by one in index order: the same bits for any thread count."""
    cdef double total = 0.0
    cdef Py_ssize_t i
    for i in range(values.shape[0]):
        total += values[i]
    return total


def cross_entropy_prob(const floating[:, ::1] logits, const floating[:, ::1] target,
                       const floating[::1] weight, double eps, double[::1] row_loss,
                       floating[:, ::1] grad, double scale, int n_threads):
    """Per-row losses (and the gradient times ``scale``) for class-probability targets.

    Returns the sum of the row losses, taken serially in row order.
    """
    cdef Py_ssize_t rows = logits.shape[0], n = logits.shape[1]
    cdef Py_ssize_t block = _block_rows(n)
    cdef Py_ssize_t n_blocks = (rows + block - 1) // block
    cdef Py_ssize_t b, r, r0, nr
    cdef const floating* w = NULL
    cdef bint want_grad = grad is not None
    cdef floating* e
    cdef floating* row_max
    cdef floating* row_sum
    cdef floating* region
    cdef _Scratch scratch
    if rows == 0:
        return 0.0
    if weight is not None:
        w = &weight[0]
    scratch = _Scratch(n_threads, 2 * block + (0 if want_grad else block * n),
                       sizeof(floating))
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for b in prange(n_blocks, nogil=True, schedule="static", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        r0 = b * block
        nr = min(block, rows - r0)
        region = <floating*>scratch.data + threadid() * scratch.per_thread
        row_max = region
        row_sum = region + block
        e = &grad[r0, 0] if want_grad else region + 2 * block
        if block == 1:
            row_max[0] = _row_max(&logits[r0, 0], n)
            row_sum[0] = _exp_shifted(&logits[r0, 0], row_max[0], e, n)
        else:
            _block_exp(&logits[r0, 0], nr, n, e, row_max, row_sum)
        for r in range(nr):
            row_loss[r0 + r] = _ce_prob_finish(
                &logits[r0 + r, 0], &target[r0 + r, 0], w, eps, n, e + r * n, row_max[r],
                row_sum[r], want_grad, scale)
    pyxconv_interrupt_raise(stp)
    return _serial_sum(row_loss)
