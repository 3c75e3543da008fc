"""The Conv2d layer's per-sample kernels, which make their own GEMM calls (pyxconv._blas).

Both paths of the layer's training mode (the direct-GEMM kernels and the
NumPy path they replace) are checked against plain loops; the direct
kernels' own argument checks are checked to refuse what would write out of
bounds.
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from reference import conv2d_by_loops
import pyxconv
from pyxconv import _blas, functional as F, nn
from pyxconv._kernels import _im2col
from pyxconv._kernels._geometry import ConvGeometry

DIRECT = _blas.ensure_gemm()
needs_direct = pytest.mark.skipif(not DIRECT, reason="PYXCONV_DIRECT_GEMM=0 in the environment")


# (c_in, c_out, kernel, stride, padding, dilation, bias, (H, W), input grad)
CASES = [
    (1, 6, 5, 1, 0, 1, True, (9, 8), False),  # LeNet's first layer, no input gradient
    (2, 3, 3, 1, 1, 1, True, (5, 6), True),
    (3, 2, (3, 2), (2, 1), (1, 0), 1, False, (7, 5), True),
    (2, 4, 3, 2, 1, (1, 2), True, (7, 8), True),  # dilation, stride-2 tap pairs
    (15, 2, 3, 1, 1, 1, True, (3, 4), True),  # K = 135: products taken transposed
    (2, 2, 4, 2, ((2, 1), (0, 3)), 1, True, (6, 5), True),  # uneven padding
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_conv2d_training_path_matches_plain_loops(gemm_path, case, dtype):
    c_in, c_out, kernel, stride, padding, dilation, bias, hw, input_grad = case
    rng = np.random.default_rng(len(str(case)))
    nn.manual_seed(1)
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=bias, dtype=dtype)
    conv.requires_input_grad = input_grad
    x = rng.standard_normal((3, c_in) + hw).astype(dtype)
    out = conv(x)
    # the columns kept for backward by the algorithms that make them whole, but where
    # the direct kernel runs a batch's forward (ConvPlan.keeps_columns)
    assert (conv._cols is not None) == (conv._plan.algorithm in ("samples", "tiles")
                                        and conv._plan.keeps_columns)
    expected, backward = conv2d_by_loops(x, conv.weight.data, None if conv.bias is None
                                         else conv.bias.data, conv.stride, conv._pads,
                                         conv.dilation)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    g = rng.standard_normal(out.shape).astype(dtype)
    grad_x = conv.backward(g)
    ref_gx, ref_gw, ref_gb = backward(g)
    np.testing.assert_allclose(conv.weight.grad, ref_gw, rtol=tol, atol=10 * tol)
    if bias:
        np.testing.assert_allclose(conv.bias.grad, ref_gb, rtol=tol, atol=10 * tol)
    if input_grad:
        assert grad_x.dtype == dtype
        np.testing.assert_allclose(grad_x, ref_gx, rtol=tol, atol=10 * tol)
    else:
        assert grad_x is None


@needs_direct
@pytest.mark.parametrize("c_in", [6, 15])  # K = 54 and 135: both weight-gradient forms
def test_direct_and_numpy_paths_agree(c_in):
    """Both make the same GEMMs sample by sample, on SciPy's BLAS and NumPy's.

    (With pyxconv's own float32 GEMM off: it sums each product in another order.
    The two BLAS libraries may be different builds, so agreement is to rounding.)
    """
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, c_in, 10, 9)).astype(np.float32)
    results = []
    for direct in (True, False):
        old = _blas.allow_direct_gemm(direct)
        old_isa = _blas.set_isa("none")
        try:
            nn.manual_seed(2)
            conv = nn.Conv2d(c_in, 5, 3, stride=(1, 2), padding=1)
            out = conv(x)
            results.append((out, conv.backward(np.sin(out)), conv.weight.grad, conv.bias.grad))
        finally:
            _blas.set_isa(old_isa)
            _blas.allow_direct_gemm(old)
    for a, b in zip(*results):
        # to rounding of the terms: grad_x's sums of 45 products (weights up to 0.09) cancel;
        # values of 0.15 differed by 6e-6 between OpenBLAS 0.3.30 (SciPy) and 0.3.31 (NumPy)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=3e-5 * np.abs(b).max())


@needs_direct
def test_direct_kernels_give_the_same_bits_at_any_thread_count():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 3, 11, 12)).astype(np.float32)
    results = []
    for n_threads in (1, 2, 3):
        nn.manual_seed(4)
        conv = nn.Conv2d(3, 8, 3, padding=1)
        with pyxconv.num_threads(n_threads):
            out = _run_direct(conv, x, n_threads)
        results.append(out)
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_array_equal(a, b)


def _run_direct(conv, x, n_threads):
    """The kernels called as the layer calls them, with n_threads forced."""
    g = F.prepare_conv(x, conv.weight.data, None, conv.stride, conv._pads, conv.dilation)[3].g
    n, k, positions = g.n, g.rows, g.positions
    w2 = conv.weight.data.reshape(conv.out_channels, -1)
    cols = np.empty((n, k, positions), x.dtype)
    out = np.empty((n, conv.out_channels, positions), x.dtype)
    _im2col.conv_forward_samples(x.reshape((n, 3, 1) + x.shape[2:]), w2, conv.bias.data, cols,
                                 out, g.kernel_geometry, n_threads)
    grad_out = np.cos(out)
    products = np.empty((n, conv.out_channels, k), x.dtype)
    grad_x = np.zeros_like(x)
    size = _im2col.backward_workspace_size(k, conv.out_channels, positions, False, True)
    workspace = np.empty((n_threads, size), x.dtype)
    _im2col.conv_backward_samples(cols, grad_out, w2, products, False,
                                  grad_x.reshape((n, 3, 1) + x.shape[2:]), workspace,
                                  g.kernel_geometry, n_threads)
    return out, products, grad_x


def _forward_args(n=2, c_in=2, c_out=3, hw=5, k=3, dtype=np.float32):
    """Consistent arguments for conv_forward_samples (3x3, stride 1, no padding)."""
    out_hw = hw - k + 1
    return dict(x=np.zeros((n, c_in, 1, hw, hw), dtype),
                weight=np.zeros((c_out, c_in * k * k), dtype),
                bias=np.zeros(c_out, dtype),
                cols=np.zeros((n, c_in * k * k, out_hw * out_hw), dtype),
                out=np.zeros((n, c_out, out_hw * out_hw), dtype),
                geometry=_plain_geometry(hw, out_hw, k))


def _plain_geometry(hw, out_hw, k):
    """A 2-D k x k convolution's geometry, stride 1, no padding."""
    return ConvGeometry((1, hw, hw), (1, out_hw, out_hw), (1, k, k), (1, 1, 1), (0, 0, 0),
                        (1, 1, 1))


def _call_forward(args, n_threads=1):
    _im2col.conv_forward_samples(args["x"], args["weight"], args["bias"], args["cols"],
                                 args["out"], args["geometry"], n_threads)


@needs_direct
@pytest.mark.parametrize("name,bad", [
    ("weight", np.zeros((3, 17), np.float32)),
    ("weight", np.zeros((4, 18), np.float32)),
    ("bias", np.zeros(4, np.float32)),
    ("cols", np.zeros((2, 18, 8), np.float32)),
    ("cols", np.zeros((1, 18, 9), np.float32)),
    ("out", np.zeros((3, 3, 9), np.float32)),
    ("out", np.zeros((2, 3, 10), np.float32)),
])
def test_forward_kernel_refuses_inconsistent_shapes(name, bad):
    args = _forward_args()
    _call_forward(args)  # consistent: runs
    args[name] = bad
    with pytest.raises(ValueError):
        _call_forward(args)


@needs_direct
def test_forward_kernel_refuses_a_geometry_that_does_not_fit_the_arrays():
    args = _forward_args()
    args["geometry"] = _plain_geometry(5, 4, 3)  # claims 16 output positions
    with pytest.raises(ValueError, match="inconsistent"):
        _call_forward(args)
    args = _forward_args()
    args["geometry"] = _plain_geometry(5, 3, 2)  # 2x2 kernel, K = 8
    with pytest.raises(ValueError, match="inconsistent"):
        _call_forward(args)
    args = _forward_args()
    args["geometry"] = _plain_geometry(6, 3, 3)  # planes of 6 x 6, not x's 5 x 5
    with pytest.raises(ValueError, match="planes of 1 x 5 x 5"):
        _call_forward(args)
    with pytest.raises(TypeError):
        _im2col.conv_forward_samples(args["x"], args["weight"], args["bias"], args["cols"],
                                     args["out"], None, 1)


@needs_direct
@pytest.mark.parametrize("transposed", [False, True])
def test_backward_kernel_refuses_a_short_workspace_and_wrong_products(transposed):
    f = _forward_args()
    _call_forward(f)
    k, positions = f["cols"].shape[1:]
    c_out = f["out"].shape[1]
    products = np.zeros((2, k, c_out) if transposed else (2, c_out, k), np.float32)
    grad_x = np.zeros_like(f["x"])
    size = _im2col.backward_workspace_size(k, c_out, positions, transposed, True)
    assert size == k * positions

    def call(workspace, products=products, n_threads=2):
        _im2col.conv_backward_samples(f["cols"], f["out"], f["weight"], products, transposed,
                                      grad_x, workspace, f["geometry"], n_threads)

    call(np.zeros((2, size), np.float32))
    for workspace in (None, np.zeros((1, size), np.float32), np.zeros((2, size - 1), np.float32)):
        with pytest.raises(ValueError, match="workspace"):
            call(workspace)
    with pytest.raises(ValueError, match="products"):
        call(np.zeros((2, size), np.float32), products=np.ascontiguousarray(products[:, :-1]))
    # without the input gradient only the transposed form needs a workspace, of C_out * L
    assert _im2col.backward_workspace_size(k, c_out, positions, transposed, False) == (
        c_out * positions if transposed else 0)


def test_without_direct_gemm_the_layer_takes_the_numpy_path():
    """PYXCONV_DIRECT_GEMM=0: the layer takes the NumPy path, and still works."""
    code = """
import numpy as np
from pyxconv import _blas, nn
assert not _blas.ensure_gemm()
conv = nn.Conv2d(2, 3, 3)
x = np.ones((2, 2, 5, 5), np.float32)
out = conv(x)
conv.backward(np.ones_like(out))
assert conv._plan.algorithm == "chunks" and conv._cols is None
print("ok")
"""
    env = dict(os.environ, PYXCONV_DIRECT_GEMM="0")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _fold_args(n=2, m=3, c=2, hw=5, k=3):
    """Consistent arguments for fold_samples/unfold_samples (3x3, stride 1, no padding)."""
    positions = (hw - k + 1) ** 2
    rows = c * k * k
    return dict(x=np.zeros((n, m, positions)), weight=np.zeros((m, rows)),
                out=np.zeros((n, c, 1, hw, hw)), bias=np.zeros(c),
                geometry=_plain_geometry(hw, hw - k + 1, k),
                rows=rows, positions=positions)


@needs_direct
def test_fold_and_unfold_kernels_refuse_inconsistent_arrays():
    a = _fold_args()
    rows, positions = a["rows"], a["positions"]

    def fold(workspace, bias=a["bias"], out=a["out"], threads=2):
        _im2col.fold_samples(a["x"], a["weight"], bias, out, workspace, a["geometry"], threads)

    fold(np.zeros((2, rows * positions)))
    for workspace in (np.zeros((1, rows * positions)), np.zeros((2, rows * positions - 1))):
        with pytest.raises(ValueError, match="workspace"):
            fold(workspace)
    with pytest.raises(ValueError, match="bias"):
        fold(np.zeros((2, rows * positions)), bias=np.zeros(3))
    with pytest.raises(ValueError):
        fold(np.zeros((2, rows * positions)), out=np.zeros((2, 3, 1, 5, 5)))

    def unfold(workspace, grad_x=np.zeros((2, 3, positions)),
               products=np.zeros((2, rows, 3))):
        _im2col.unfold_samples(a["out"], a["weight"], grad_x, a["x"], products, workspace,
                               a["geometry"], 2)

    unfold(np.zeros((2, rows * positions)))
    unfold(np.zeros((2, rows * positions)), grad_x=None)
    with pytest.raises(ValueError, match="workspace"):
        unfold(np.zeros((2, rows * positions - 1)))
    with pytest.raises(ValueError, match="products"):
        unfold(np.zeros((2, rows * positions)), products=np.zeros((2, 3, rows)))
    with pytest.raises(ValueError, match="out must be"):
        unfold(np.zeros((2, rows * positions)), grad_x=np.zeros((2, 3, positions + 1)))
    with pytest.raises(ValueError, match="products need x"):
        _im2col.unfold_samples(a["out"], a["weight"], None, None, np.zeros((2, rows, 3)),
                               np.zeros((2, rows * positions)), a["geometry"], 2)


def _conv2d_layer(x, w):
    conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:])
    conv.weight.data[...] = w
    out = conv(x)
    return out, conv.backward(np.cos(out)), conv.weight.grad


def _conv2d_functional(x, w):
    from pyxconv.functional import conv2d, conv2d_backward
    out = conv2d(x, w)
    return (out, *conv2d_backward(np.cos(out), x, w))


def _conv_transpose2d(x, w):
    from pyxconv.functional import conv_transpose2d, conv_transpose2d_backward
    out = conv_transpose2d(x, w, stride=2)
    return (out, *conv_transpose2d_backward(np.cos(out), x, w, stride=2))


@pytest.mark.parametrize("run,x_shape,w_shape", [
    # shapes large enough for OpenBLAS to split its GEMMs over 2 threads, which sums
    # some products in another order than on 1 (found in review)
    (_conv2d_layer, (3, 76, 24, 24), (12, 76, 3, 3)),
    (_conv2d_functional, (3, 76, 24, 24), (12, 76, 3, 3)),
    (_conv_transpose2d, (2, 39, 37, 22), (39, 5, 2, 2)),
    # the benchmark's kind of layer, smaller: 9 samples make runs of 2 (5 runs, shared
    # unevenly by 2 and 3 threads), products on pyxconv's own GEMM with x[n]^T copied
    (_conv_transpose2d, (9, 32, 8, 8), (32, 16, 4, 4)),
])
def test_bits_depend_neither_on_pyxconv_nor_on_blas_thread_counts(gemm_path, run, x_shape,
                                                                   w_shape):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(8)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    results = []
    for blas, ours in ((1, 1), (2, 1), (2, 2), (1, 3)):
        with threadpoolctl.threadpool_limits(blas, user_api="blas"), pyxconv.num_threads(ours):
            nn.manual_seed(0)
            results.append(run(x, w))
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_array_equal(a, b)


OWN_ISAS = [isa for isa in _blas.available_isas() if isa != "none"]
each_own_isa = pytest.mark.parametrize("isa", OWN_ISAS or [pytest.param(
    "none", marks=pytest.mark.skip(reason="no AVX2, AVX-512 or NEON: no own GEMM here"))])


def _own_sgemm_cases():
    """(m, n, k, transpose_a, accumulate): every tile height (12, 8, 4, 2, 1), partial
    column panels, an empty sum and depths beyond one pass (512)."""
    return [(1, 1, 1, False, False), (12, 32, 64, False, False), (13, 33, 7, True, False),
            (31, 47, 513, False, True), (27, 16, 1100, True, True), (5, 70, 0, False, False),
            (5, 70, 0, True, True), (64, 256, 512, False, False), (40, 17, 300, True, False),
            (3, 15, 31, False, True)]


@each_own_isa
@pytest.mark.parametrize("m,n,k,transpose_a,accumulate", _own_sgemm_cases())
def test_own_sgemm_is_exact_on_small_integers(m, n, k, transpose_a, accumulate, isa):
    # small integers: every partial sum is exact, in any order, so any wrong index,
    # mask or edge tile shows as a wrong value
    rng = np.random.default_rng(m * 1000 + n + k)
    a = rng.integers(-8, 9, (k, m) if transpose_a else (m, k)).astype(np.float32)
    b = rng.integers(-8, 9, (k, n)).astype(np.float32)
    c = rng.integers(-8, 9, (m, n)).astype(np.float32)
    expected = (a.T if transpose_a else a).astype(np.float64) @ b + (c if accumulate else 0)
    _im2col.sgemm_own(a, b, c, transpose_a, accumulate, isa=isa)
    np.testing.assert_array_equal(c, expected)


@each_own_isa
def test_own_sgemm_reads_and_writes_rows_through_their_strides(isa):
    rng = np.random.default_rng(3)
    wide = rng.integers(-8, 9, (3, 40, 50)).astype(np.float32)
    a, b, c = wide[0, :13, 5:40], wide[1, :35, 3:21], np.zeros((13, 50), np.float32)
    _im2col.sgemm_own(a, b, c[:, 7:25], isa=isa)
    np.testing.assert_array_equal(c[:, 7:25], a.astype(np.float64) @ b)
    assert not c[:, :7].any() and not c[:, 25:].any()  # nothing written beside the view


@each_own_isa
def test_own_sgemm_element_depends_only_on_its_row_and_column(isa):
    # one chain of multiply-adds per element: any slice of the product has the same bits
    rng = np.random.default_rng(4)
    a = rng.standard_normal((29, 700)).astype(np.float32)
    b = rng.standard_normal((700, 45)).astype(np.float32)
    full = np.empty((29, 45), np.float32)
    _im2col.sgemm_own(a, b, full, isa=isa)
    np.testing.assert_allclose(full, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    for rows, cols in ((slice(5, 18), slice(3, 40)), (slice(28, 29), slice(0, 45)),
                       (slice(0, 29), slice(44, 45))):
        part = np.empty((rows.stop - rows.start, cols.stop - cols.start), np.float32)
        _im2col.sgemm_own(np.ascontiguousarray(a[rows]), np.ascontiguousarray(b[:, cols]),
                          part, isa=isa)
        np.testing.assert_array_equal(part, full[rows, cols])


@each_own_isa
def test_own_sgemm_refuses_mismatched_shapes(isa):
    with pytest.raises(ValueError, match="shapes do not match"):
        _im2col.sgemm_own(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32),
                          np.ones((2, 5), np.float32), isa=isa)


@pytest.mark.skipif(len(OWN_ISAS) < 2, reason="fewer than two own-GEMM instruction sets here")
@pytest.mark.parametrize("transpose_a", [False, True])
def test_own_sgemm_gives_the_same_bits_on_every_instruction_set(transpose_a):
    # each element is the same chain of fused multiply-adds whatever the vector width,
    # so the instruction set chosen (PYXCONV_ISA) never changes a result
    rng = np.random.default_rng(6)
    m, n, k = 37, 83, 300
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    products = []
    for isa in OWN_ISAS:
        c = np.empty((m, n), np.float32)
        _im2col.sgemm_own(a, b, c, transpose_a, isa=isa)
        products.append(c)
    for other in products[1:]:
        np.testing.assert_array_equal(other, products[0])


def test_set_isa_switches_reports_and_refuses_what_is_missing():
    old = _blas.get_isa()
    try:
        for isa in _blas.available_isas():
            assert _blas.set_isa(isa) in _blas.ISA_CHOICES
            assert _blas.get_isa() == isa
        assert _blas.get_isa() == "none" and _blas.float32_gemm().startswith("the BLAS")
        with pytest.raises(ValueError, match="isa must be one of"):
            _blas.set_isa("sse9")
        missing = [isa for isa in _blas.ISA_CHOICES if isa not in _blas.available_isas()]
        for isa in missing:
            with pytest.raises(ValueError, match="not available"):
                _blas.set_isa(isa)
        with pytest.raises(RuntimeError, match="not available"):
            _im2col.sgemm_own(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32),
                              np.ones((2, 2), np.float32), isa="none")
    finally:
        _blas.set_isa(old)


# The per-sample kernels' own im2col (by phases, for strides) and col2im (band by band
# in a buffer) against the chunked kernels _im2col.im2col / col2im, to the bit. With the
# identity as weight the GEMMs copy exactly, so the kernels' outputs are their columns.
# Geometries: (input D, H, W), kernel, stride, padding (before), extra padding after,
# dilation. They reach: the benchmark's 4x4 stride 2; odd sizes and strides 3; dilation
# with a stride; stride 1 (col2im's band buffer without phases); 3-D; planes whose
# phases need several bands, or do not fit one buffer; strides beyond the input.
_FOLD_GEOMETRIES = [
    ((1, 8, 8), (1, 4, 4), (1, 2, 2), (0, 1, 1), (0, 0, 0), (1, 1, 1)),
    ((1, 11, 7), (1, 3, 5), (1, 3, 2), (0, 1, 2), (0, 2, 0), (1, 1, 1)),
    ((1, 9, 10), (1, 3, 3), (1, 2, 2), (0, 2, 1), (0, 0, 1), (1, 2, 2)),
    ((1, 6, 9), (1, 3, 2), (1, 1, 1), (0, 1, 0), (0, 1, 1), (1, 1, 1)),
    ((5, 6, 7), (3, 3, 3), (2, 2, 2), (1, 1, 1), (0, 1, 0), (1, 1, 1)),
    ((1, 70, 66), (1, 4, 4), (1, 2, 2), (0, 1, 1), (0, 0, 0), (1, 1, 1)),
    ((1, 64, 64), (1, 3, 3), (1, 2, 2), (0, 1, 1), (0, 1, 1), (1, 1, 1)),
    ((1, 1, 13), (1, 1, 3), (1, 1, 4), (0, 0, 1), (0, 0, 3), (1, 1, 1)),
    ((1, 4, 5), (1, 2, 2), (1, 9, 7), (0, 3, 2), (0, 9, 7), (1, 1, 1)),
]


def _out_rows(args):
    """Output rows (depth x height) of the geometry in ``args``."""
    return args[0].out_size[0] * args[0].out_size[1]


def _fold_case(geometry, dtype, n=3, channels=2, seed=0):
    size, kernel, stride, pad, pad_after, dilation = geometry
    out = tuple((i + p + q - d * (k - 1) - 1) // s + 1
                for i, k, s, p, q, d in zip(size, kernel, stride, pad, pad_after, dilation))
    assert min(out) >= 1, geometry
    k_rows = channels * math.prod(kernel)
    positions = math.prod(out)
    args = (ConvGeometry(size, out, kernel, stride, pad, dilation),)
    rng = np.random.default_rng(seed)
    return rng, args, k_rows, positions, np.eye(k_rows, dtype=dtype)


# every instance of the fold helpers (simd_kernels.h): one per instruction set here
@pytest.mark.parametrize("isa", _blas.available_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", _FOLD_GEOMETRIES)
def test_per_sample_im2col_gives_the_chunked_kernels_columns(geometry, dtype, isa):
    rng, args, k_rows, positions, eye = _fold_case(geometry, dtype)
    y = rng.standard_normal((3, 2) + geometry[0]).astype(dtype)
    expected = np.empty(3 * k_rows * positions, dtype)
    _im2col.im2col(y, expected, k_rows * positions, positions, 0, 3, 0, _out_rows(args),
                   *args, 1)
    old = _blas.set_isa(isa)
    try:
        for threads in (1, 2):
            out = np.empty((3, k_rows, positions), dtype)
            sums = np.empty((3, 2), dtype)
            _im2col.unfold_samples(y, eye, out, None, None,
                                   np.empty((threads, k_rows * positions), dtype), *args,
                                   threads, channel_sums=sums)
            np.testing.assert_array_equal(out.ravel(), expected)
            np.testing.assert_allclose(sums, y.sum(axis=(2, 3, 4)), rtol=1e-5, atol=1e-5)
    finally:
        _blas.set_isa(old)


@pytest.mark.parametrize("isa", _blas.available_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", _FOLD_GEOMETRIES)
def test_per_sample_col2im_sums_as_the_chunked_kernel(geometry, dtype, isa):
    rng, args, k_rows, positions, eye = _fold_case(geometry, dtype, seed=1)
    cols = rng.standard_normal((3, k_rows, positions)).astype(dtype)
    bias = rng.standard_normal(2).astype(dtype)
    expected = np.zeros((3, 2) + geometry[0], dtype)
    _im2col.col2im(cols.ravel(), expected, k_rows * positions, positions, 0, 3, 0,
                   _out_rows(args), *args, 1)
    old = _blas.set_isa(isa)
    try:
        for threads, b in ((1, None), (2, bias)):
            out = np.full((3, 2) + geometry[0], np.nan, dtype)  # every value must be written
            _im2col.fold_samples(cols, eye, b, out,
                                 np.empty((threads, k_rows * positions), dtype), *args, threads)
            want = expected if b is None else expected + b.reshape(1, 2, 1, 1, 1)
            np.testing.assert_array_equal(out, want)
    finally:
        _blas.set_isa(old)


@pytest.mark.parametrize("samples_per_product", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype,channels,m,geometry", [
    (np.float64, 2, 4, _FOLD_GEOMETRIES[1]),
    # 72 rows, 32 columns, depth 256: pyxconv's own GEMM where it runs, x[n] copied
    (np.float32, 8, 32, ((1, 16, 16), (1, 3, 3), (1, 1, 1), (0, 1, 1), (0, 1, 1), (1, 1, 1))),
])
def test_weight_gradient_runs_sum_their_samples_in_the_kernel(samples_per_product, dtype,
                                                              channels, m, geometry):
    rng, args, k_rows, positions, _ = _fold_case(geometry, dtype, n=5, channels=channels,
                                                 seed=2)
    y = rng.standard_normal((5, channels) + geometry[0]).astype(dtype)
    x = rng.standard_normal((5, m, positions)).astype(dtype)
    weight = rng.standard_normal((m, k_rows)).astype(dtype)
    cols = np.empty(5 * k_rows * positions, dtype)
    _im2col.im2col(y, cols, k_rows * positions, positions, 0, 5, 0, _out_rows(args), *args, 1)
    cols = cols.reshape(5, k_rows, positions).astype(np.float64)
    runs = -(-5 // samples_per_product)
    products = np.full((runs, k_rows, m), np.nan, dtype)  # the first sample of a run overwrites
    _im2col.unfold_samples(y, weight, None, x, products, np.empty((2, k_rows * positions), dtype),
                           *args, 2, samples_per_product=samples_per_product)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for run in range(runs):
        samples = range(run * samples_per_product, min(5, (run + 1) * samples_per_product))
        expected = sum(cols[s] @ x[s].T.astype(np.float64) for s in samples)
        np.testing.assert_allclose(products[run], expected, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="products must be"):  # a run short
        _im2col.unfold_samples(y, weight, None, x, np.empty((runs - 1, k_rows, m), dtype),
                               np.empty((2, k_rows * positions), dtype), *args, 2,
                               samples_per_product=samples_per_product)
    with pytest.raises(ValueError, match="samples_per_product"):
        _im2col.unfold_samples(y, weight, None, x, products,
                               np.empty((2, k_rows * positions), dtype), *args, 2,
                               samples_per_product=0)


def test_without_pyxconv_isa_every_kernel_starts_on_the_best_instruction_set():
    # (a Cython type inference once left every AVX-512 machine on AVX2 by default)
    code = ("from pyxconv import _blas\nfrom pyxconv._kernels import _im2col, _pool, _softmax\n"
            "print(_blas.available_isas()[0], _im2col.get_isa(), _softmax.get_isa(), "
            "_pool.get_isa())")
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYXCONV_ISA", "PYXCONV_AVX512")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    best, gemm, softmax, pool = result.stdout.split()
    assert gemm == best and softmax == best and pool == best


@pytest.mark.parametrize("environment,expected", [
    ({"PYXCONV_AVX512": "0"}, ("avx2", "none")),  # the older switch: AVX-512 off
    ({"PYXCONV_ISA": "none"}, ("none",)),
    ({"PYXCONV_ISA": "AVX2"}, ("avx2",)),
])
def test_pyxconv_isa_in_the_environment_picks_the_instruction_set(environment, expected):
    if "avx2" in expected and "avx2" not in _blas.available_isas():
        pytest.skip("no AVX2 here")
    code = ("import pyxconv\nfrom pyxconv import _blas\n"
            "print(_blas.get_isa(), _blas.float32_gemm())")
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYXCONV_ISA", "PYXCONV_AVX512")}
    env.update(environment)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    isa, description = result.stdout.strip().split(" ", 1)
    assert isa == expected[0]
    assert description.startswith("the BLAS" if isa == "none" else "pyxconv's own GEMM, AVX2")


def test_an_unknown_pyxconv_isa_stops_the_import_with_the_choices():
    env = dict(os.environ, PYXCONV_ISA="sse9")
    result = subprocess.run([sys.executable, "-c", "import pyxconv"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "PYXCONV_ISA must be one of avx512, avx2, none" in result.stderr


def test_float32_gemm_says_what_makes_the_products():
    old = _blas.get_isa()
    try:
        best = _blas.available_isas()[0]
        _blas.set_isa(best)
        expected = (f"pyxconv's own GEMM, {best.upper()}" if best != "none"
                    else "the BLAS (no AVX2 or AVX-512")
        assert _blas.float32_gemm().startswith(expected)
        _blas.set_isa("none")
        assert _blas.float32_gemm().startswith("the BLAS")
    finally:
        _blas.set_isa(old)


def test_a_run_longer_than_the_batch_is_one_run():
    rng, args, k_rows, positions, eye = _fold_case(_FOLD_GEOMETRIES[0], np.float64, seed=3)
    y = rng.standard_normal((3, 2) + _FOLD_GEOMETRIES[0][0])
    out = np.full((3, k_rows, positions), np.nan)
    products = np.full((1, k_rows, k_rows), np.nan)
    _im2col.unfold_samples(y, eye, out, out, products, np.empty((2, k_rows * positions)),
                           *args, 2, samples_per_product=sys.maxsize)
    assert not np.isnan(out).any()
    np.testing.assert_allclose(products[0], sum(c @ c.T for c in out), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 120, 400), (37, 1, 19), (1, 1, 9), (5, 7, 1), (6, 9, 11)])
def test_blas_products_of_one_row_or_column_go_through_gemv_correctly(m, n, k, transpose_a,
                                                                     transpose_b, dtype):
    # one row or one column of c is a gemv (OpenBLAS 0.3.30's sgemm took 24-32 us for
    # LeNet's (1, 400) @ (400, 120)); every transpose flag against the plain-loop sums
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype)
    op_a = a.T if transpose_a else a
    op_b = b.T if transpose_b else b
    expected = np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            expected[i, j] = sum(float(op_a[i, p]) * float(op_b[p, j]) for p in range(k))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for accumulate in (False, True):
        c = np.full((m, n), 2.0 if accumulate else np.nan, dtype)
        _im2col.blas_product(a, b, c, transpose_a, transpose_b, accumulate)
        np.testing.assert_allclose(c, expected + (2.0 if accumulate else 0.0), rtol=tol,
                                   atol=tol * np.sqrt(k))
    # leading dimensions past the widths (the kernels' panels pass ldc = positions):
    # gemv's increments then step over whole rows; the padding is never touched
    wide_a = np.full((a.shape[0], a.shape[1] + 5), np.nan, dtype)
    wide_b = np.full((b.shape[0], b.shape[1] + 3), np.nan, dtype)
    wide_c = np.full((m, n + 4), -7.0, dtype)
    wide_a[:, :a.shape[1]], wide_b[:, :b.shape[1]] = a, b
    _im2col.blas_product(wide_a[:, :a.shape[1]], wide_b[:, :b.shape[1]], wide_c[:, :n],
                         transpose_a, transpose_b)
    np.testing.assert_allclose(wide_c[:, :n], expected, rtol=tol, atol=tol * np.sqrt(k))
    assert (wide_c[:, n:] == -7.0).all()
