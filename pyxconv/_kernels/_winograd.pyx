"""Winograd F(2x2, 3x3) float32 convolution: 3x3 kernels, stride 1, no dilation, one group.

The transforms and their order are in ``winograd_kernels.h``. Tasks are runs
of ``tile_block`` consecutive 2x2 output tiles of one sample, handed to the
threads in a dynamic schedule; each task owns its outputs and the run
boundaries depend on the shapes only, so the results do not depend on the
thread count. Each thread mallocs its scratch, ``16 * (C_in + C_out) *
tile_block`` floats and a little more (:func:`workspace_floats`), at the start of the parallel
block: :func:`tile_block` keeps it near 1 MiB, a core's L2 on current CPUs,
where the 16 products read it back.

The caller checks the arguments (``pyxconv.functional``); the kernels check
again what would otherwise read or write out of bounds.
"""
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cimport numpy as cnp

from pyxconv._kernels._arrays cimport array_data
from pyxconv._kernels._isa cimport isa_number, pyxconv_cpu_has_isa
from pyxconv._kernels._interrupt cimport (
    pyxconv_interrupt, pyxconv_interrupt_init, pyxconv_interrupt_poll, pyxconv_interrupt_raise)


cdef extern from "winograd_kernels.h" nogil:
    ctypedef struct pyxconv_winograd_geometry:
        Py_ssize_t c_in, c_out, in_h, in_w, out_h, out_w
        Py_ssize_t pad_top, pad_left
        Py_ssize_t tiles_h, tiles_w
    void pyxconv_winograd_weights(const float* w, float* u, Py_ssize_t c_out,
                                  Py_ssize_t c_in, Py_ssize_t o) noexcept
    Py_ssize_t pyxconv_winograd_scratch(const pyxconv_winograd_geometry* g,
                                        Py_ssize_t count) noexcept
    void pyxconv_winograd_tiles(int isa, const pyxconv_winograd_geometry* g, const float* x,
                                const float* u, const float* bias, int relu, float* out,
                                Py_ssize_t first, Py_ssize_t count, float* scratch) noexcept
    void pyxconv_winograd_weight_grad_tiles(int isa, const pyxconv_winograd_geometry* g,
                                            const float* x, const float* gy, float* du,
                                            Py_ssize_t first, Py_ssize_t count,
                                            float* scratch, int accumulate) noexcept


cnp.import_array()

#: scratch floats a thread aims at: 1 MiB, where the 16 products find V and M again
SCRATCH_FLOATS = 1 << 18


def tile_block(Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t tiles, Py_ssize_t n=1,
               int n_threads=1):
    """Tiles per task: runs that keep a thread's scratch near :data:`SCRATCH_FLOATS`
    (and of at least 32 tiles, two of the AVX-512 GEMM's panels of columns, where a
    sample has them), evened out over each sample's tiles, and split further so that
    ``n`` samples give every one of ``n_threads`` threads a task; with fewer than 8
    tasks per thread, split until the tasks are a multiple of the threads (one image's
    7 runs on 2 threads would run 4 against 3). The block does not change a result's
    bits: each output tile is its own column of the 16 products and its own
    transforms."""
    cdef Py_ssize_t most = SCRATCH_FLOATS // (16 * (c_in + c_out)) // 32 * 32
    if most < 32:
        most = 32
    cdef Py_ssize_t runs = (tiles + most - 1) // most
    cdef Py_ssize_t wanted = (n_threads + n - 1) // n if n > 0 else 1
    if runs < wanted:
        runs = max(runs, min(wanted, tiles // 32))
    if n > 0 and n * runs < 8 * n_threads:
        while (n * runs) % n_threads and runs < tiles // 32:
            runs += 1
    return max(1, (tiles + runs - 1) // runs)


def workspace_floats(Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t out_h, Py_ssize_t out_w):
    """Scratch floats of one thread: V and M of a task's tiles, and 4 padded input rows."""
    cdef pyxconv_winograd_geometry g
    g.c_in, g.c_out, g.out_h, g.out_w = c_in, c_out, out_h, out_w
    g.tiles_h, g.tiles_w = (out_h + 1) // 2, (out_w + 1) // 2
    return pyxconv_winograd_scratch(&g, tile_block(c_in, c_out, g.tiles_h * g.tiles_w))



def transform_weights(weight, int n_threads=1):
    """U (16, C_out, C_in) = G g G^T for each 3x3 kernel g of ``weight`` (C_out, C_in, 3, 3).

    The output channels are shared among ``n_threads`` threads.
    """
    if not (isinstance(weight, cnp.ndarray) and weight.ndim == 4 and weight.shape[2] == 3
            and weight.shape[3] == 3):
        raise ValueError(f"weight must be a (C_out, C_in, 3, 3) array, got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    cdef Py_ssize_t c_out = weight.shape[0], c_in = weight.shape[1], o
    cdef const float* w = <const float*>array_data(weight, "weight", cnp.NPY_FLOAT32,
                                                   c_out * c_in * 9)
    u = cnp.PyArray_EMPTY(3, [16, c_out, c_in], cnp.NPY_FLOAT32, 0)
    cdef float* ud = <float*>cnp.PyArray_DATA(u)
    if n_threads < 1 or c_out * c_in < 4096:  # a small layer: no parallel region
        n_threads = 1
    if n_threads == 1:
        with nogil:
            for o in range(c_out):
                pyxconv_winograd_weights(w, ud, c_out, c_in, o)
    else:
        for o in prange(c_out, nogil=True, num_threads=n_threads, schedule="static"):
            pyxconv_winograd_weights(w, ud, c_out, c_in, o)
    return u


cdef int _prepare(object x, object y, str y_name, Py_ssize_t pad_top, Py_ssize_t pad_left,
                  str isa, pyxconv_winograd_geometry* g) except -1:
    """Check x (N, C_in, H, W), y (N, C_out, OH, OW: the output or its gradient), the
    paddings and the instruction set; fill ``g``; return the ISA number."""
    for name, array in (("x", x), (y_name, y)):
        if not isinstance(array, cnp.ndarray) or array.ndim != 4:
            raise TypeError(f"{name} must be a 4-D ndarray")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x {x.shape} and {y_name} {y.shape} do not match")
    if min(pad_top, pad_left) < 0 or y.shape[2] < 1 or y.shape[3] < 1:
        raise ValueError(f"paddings ({pad_top}, {pad_left}) and output {y.shape} must be "
                         f">= 0 and >= 1")
    cdef int number = isa_number(isa)
    if number == 0 or not pyxconv_cpu_has_isa(number):
        raise ValueError(f"the Winograd kernel needs an own-GEMM instruction set; got {isa!r}")
    g.c_in, g.in_h, g.in_w = x.shape[1], x.shape[2], x.shape[3]
    g.c_out, g.out_h, g.out_w = y.shape[1], y.shape[2], y.shape[3]
    g.pad_top, g.pad_left = pad_top, pad_left
    g.tiles_h, g.tiles_w = (g.out_h + 1) // 2, (g.out_w + 1) // 2
    return number


def conv_forward(x, u, bias, out, Py_ssize_t pad_top, Py_ssize_t pad_left, str isa,
                 int n_threads, bint relu=False):
    """out (N, C_out, OH, OW) = the 3x3 stride-1 convolution of x (N, C_in, H, W), + bias.

    ``u`` is :func:`transform_weights` of the weight, ``bias`` a (C_out,)
    array or None, ``pad_top`` and ``pad_left`` the paddings before the input
    (those after are what OH and OW imply), ``isa`` the own GEMM's instruction
    set (not "none"). ``relu`` applies ``0 if y < 0 else y`` after the bias.
    Raises MemoryError if a thread's scratch cannot be allocated.
    """
    cdef pyxconv_winograd_geometry g
    cdef int number = _prepare(x, out, "out", pad_top, pad_left, isa, &g)
    cdef Py_ssize_t n = x.shape[0], c_in = g.c_in, c_out = g.c_out
    if not isinstance(u, cnp.ndarray) or u.shape != (16, c_out, c_in):
        raise ValueError(f"u {getattr(u, 'shape', type(u).__name__)} does not match x "
                         f"{x.shape} and out {out.shape}: (16, {c_out}, {c_in}) wanted")
    cdef const float* xd = <const float*>array_data(x, "x", cnp.NPY_FLOAT32,
                                                    n * c_in * g.in_h * g.in_w)
    cdef const float* ud = <const float*>array_data(u, "u", cnp.NPY_FLOAT32, 16 * c_out * c_in)
    cdef float* od = <float*>array_data(out, "out", cnp.NPY_FLOAT32,
                                        n * c_out * g.out_h * g.out_w, True)
    cdef const float* bd = NULL
    if bias is not None:
        bd = <const float*>array_data(bias, "bias", cnp.NPY_FLOAT32, c_out)
    cdef Py_ssize_t in_h = g.in_h, in_w = g.in_w, out_h = g.out_h, out_w = g.out_w
    cdef Py_ssize_t tiles = g.tiles_h * g.tiles_w
    if n_threads < 1:
        n_threads = 1
    cdef Py_ssize_t block = tile_block(c_in, c_out, tiles, n, n_threads)
    cdef Py_ssize_t blocks = (tiles + block - 1) // block
    cdef Py_ssize_t scratch = pyxconv_winograd_scratch(&g, block)
    if n == 0 or c_out == 0:
        return
    cdef pyxconv_interrupt st
    pyxconv_interrupt_init(&st)
    cdef pyxconv_interrupt* stp = &st
    cdef int failed = 0
    cdef int* failed_flag = &failed  # variables assigned in a parallel block are private
    cdef float* v = NULL
    cdef Py_ssize_t task, s, first, count
    with nogil, parallel(num_threads=n_threads):
        v = <float*>malloc(scratch * sizeof(float))
        if v == NULL:
            failed_flag[0] = 1
        for task in prange(n * blocks, schedule="dynamic"):
            if v == NULL or pyxconv_interrupt_poll(stp):
                continue
            s = task // blocks
            first = (task - s * blocks) * block
            count = tiles - first if tiles - first < block else block
            pyxconv_winograd_tiles(number, &g, xd + s * c_in * in_h * in_w, ud, bd, relu,
                                   od + s * c_out * out_h * out_w, first, count, v)
        free(v)
    pyxconv_interrupt_raise(&st)
    if failed:
        raise MemoryError(f"winograd: no memory for {scratch * 4} bytes of scratch per thread")


#: the weight gradient's partial sums, one per run of tiles, take at most this many
#: bytes together (as pyxconv.functional's WEIGHT_GRAD_PARTIAL_BYTES)
PARTIAL_BYTES = 16 * 2**20


def weight_grad_runs(Py_ssize_t c_in, Py_ssize_t c_out, Py_ssize_t total_tiles):
    """Runs of consecutive tiles (over the whole batch) whose weight-gradient sums are
    made apart and added in order: up to 8, fewer where their partial sums would pass
    :data:`PARTIAL_BYTES`, at least 64 tiles each; fixed by the shapes, never by the
    thread count, so the bits are too."""
    cdef Py_ssize_t most = PARTIAL_BYTES // (64 * c_in * c_out)
    return int(max(1, min(8, most, total_tiles // 64)))


def conv_weight_grad(x, gy, du, Py_ssize_t pad_top, Py_ssize_t pad_left, str isa,
                     int n_threads):
    """du (R, 16, C_in, C_out): run r's sum over its tiles of V_e @ M'_e (see
    winograd_kernels.h), for x (N, C_in, H, W) and the output gradient gy (N, C_out,
    OH, OW) of a 3x3 stride-1 convolution padded by ``pad_top`` and ``pad_left``
    before the input. Run r takes the batch's tiles [r T / R, (r + 1) T / R), T =
    N x tiles per sample, in order; the caller adds the runs in order and transforms
    the sum back (G^T dU G). Raises MemoryError if a thread's scratch cannot be
    allocated.
    """
    cdef pyxconv_winograd_geometry g
    cdef int number = _prepare(x, gy, "gy", pad_top, pad_left, isa, &g)
    cdef Py_ssize_t n = x.shape[0], c_in = g.c_in, c_out = g.c_out
    if (not isinstance(du, cnp.ndarray) or du.ndim != 4 or du.shape[0] < 1
            or du.shape[1:] != (16, c_in, c_out)):
        raise ValueError(f"du {getattr(du, 'shape', type(du).__name__)} does not match x "
                         f"{x.shape} and gy {gy.shape}: (runs, 16, {c_in}, {c_out}) wanted")
    cdef Py_ssize_t runs = du.shape[0]
    cdef Py_ssize_t in_h = g.in_h, in_w = g.in_w, out_h = g.out_h, out_w = g.out_w
    cdef const float* xd = <const float*>array_data(x, "x", cnp.NPY_FLOAT32,
                                                    n * c_in * in_h * in_w)
    cdef const float* gd = <const float*>array_data(gy, "gy", cnp.NPY_FLOAT32,
                                                    n * c_out * out_h * out_w)
    cdef float* dd = <float*>array_data(du, "du", cnp.NPY_FLOAT32, runs * 16 * c_in * c_out,
                                        True)
    cdef Py_ssize_t tiles = g.tiles_h * g.tiles_w
    cdef Py_ssize_t total = n * tiles
    cdef Py_ssize_t block = tile_block(c_in, c_out, tiles)
    cdef Py_ssize_t scratch = pyxconv_winograd_scratch(&g, block)
    cdef Py_ssize_t share = 16 * c_in * c_out
    if n == 0:
        du[...] = 0
        return
    cdef pyxconv_interrupt st
    pyxconv_interrupt_init(&st)
    cdef pyxconv_interrupt* stp = &st
    cdef int failed = 0
    cdef int* failed_flag = &failed  # variables assigned in a parallel block are private
    cdef float* v = NULL
    cdef Py_ssize_t r, t, hi, s, first, count
    cdef int accumulate
    if n_threads < 1:
        n_threads = 1
    with nogil, parallel(num_threads=n_threads):
        v = <float*>malloc(scratch * sizeof(float))
        if v == NULL:
            failed_flag[0] = 1
        for r in prange(runs, schedule="dynamic"):
            if v == NULL or pyxconv_interrupt_poll(stp):
                continue
            t = r * total // runs
            hi = (r + 1) * total // runs
            accumulate = 0
            while t < hi:
                s = t // tiles
                first = t - s * tiles
                count = min(block, tiles - first, hi - t)
                pyxconv_winograd_weight_grad_tiles(
                    number, &g, xd + s * c_in * in_h * in_w, gd + s * c_out * out_h * out_w,
                    dd + r * share, first, count, v, accumulate)
                accumulate = 1
                t = t + count
            if accumulate == 0:  # an empty run (never: runs <= total // 64)
                memset(dd + r * share, 0, share * sizeof(float))
        free(v)
    pyxconv_interrupt_raise(&st)
    if failed:
        raise MemoryError(f"winograd: no memory for {scratch * 4} bytes of scratch per thread")
