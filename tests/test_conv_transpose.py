"""conv_transpose1d/2d/3d and their backward passes."""
import contextlib

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reference import numerical_gradient
import pyxconv
from pyxconv.functional import (
    conv1d,
    conv2d,
    conv2d_backward,
    conv3d,
    conv_transpose1d,
    conv_transpose1d_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
    conv_transpose3d,
    conv_transpose3d_backward,
    conv_transpose_output_size,
)

# every test runs with the per-sample kernels that call the BLAS directly and with
# the chunked NumPy path (conftest.gemm_path)
pytestmark = pytest.mark.usefixtures("gemm_path")

FORWARD = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}
BACKWARD = {1: conv_transpose1d_backward, 2: conv_transpose2d_backward,
            3: conv_transpose3d_backward}
CONV = {1: conv1d, 2: conv2d, 3: conv3d}

try:  # limit NumPy's BLAS pool too, so the GEMMs also run at 1 and 2 threads
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    def threadpool_limits(n, user_api=None):
        return contextlib.nullcontext()


# --------------------------------------------------------------------------- reference
def reference_conv_transpose(x, w, bias=None, stride=1, padding=0, output_padding=0,
                             groups=1, dilation=1):
    """Scatter every input sample's scaled kernel into the output, in plain loops."""
    nd = x.ndim - 2
    tup = lambda v: (v,) * nd if np.isscalar(v) else tuple(v)  # noqa: E731
    s, p, op, d = tup(stride), tup(padding), tup(output_padding), tup(dilation)
    n, c_in = x.shape[:2]
    cog = w.shape[1]
    cig = c_in // groups
    k = w.shape[2:]
    out_sp = tuple((x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1
                   for i in range(nd))
    y = np.zeros((n, cog * groups) + out_sp)
    for b in range(n):
        for ci in range(c_in):
            gi = ci // cig
            for co in range(cog):
                for i in np.ndindex(*x.shape[2:]):
                    for t in np.ndindex(*k):
                        o = tuple(i[a] * s[a] - p[a] + t[a] * d[a] for a in range(nd))
                        if all(0 <= o[a] < out_sp[a] for a in range(nd)):
                            y[(b, gi * cog + co) + o] += x[(b, ci) + i] * w[(ci, co) + t]
    if bias is not None:
        y += np.asarray(bias).reshape((1, -1) + (1,) * nd)
    return y


# A spread of geometries: (nd, N, C_in, C_out, spatial, kernel, stride, padding,
# output_padding, dilation, groups)
CASES = [
    (1, 2, 1, 1, (7,), (3,), 1, 1, 0, 1, 1),
    (1, 2, 2, 3, (5,), (3,), 2, 0, 1, 1, 1),
    (1, 1, 4, 2, (4,), (2,), 3, 1, 2, 2, 2),
    (1, 2, 2, 2, (1,), (3,), 1, 2, 1, 2, 1),  # output_padding >= stride, < dilation
    (2, 2, 3, 2, (4, 5), (3, 3), 2, 1, 1, 1, 1),
    (2, 1, 2, 4, (3, 3), (4, 4), 2, 1, 0, 1, 2),
    (2, 2, 2, 3, (3, 4), (2, 3), (1, 2), (0, 1), (0, 1), (2, 1), 1),
    (2, 1, 1, 1, (1, 1), (3, 3), 1, 2, 0, 2, 1),  # im2col of grad_out: left pad > width
    (2, 2, 3, 3, (3, 3), (1, 1), 1, 0, 0, 1, 3),  # pointwise, grouped
    (2, 3, 5, 4, (4, 3), (1, 1), 1, 0, 0, 1, 1),  # pointwise, one group: the kernels
    (1, 1, 6, 2, (9,), (1,), 1, 0, 0, 1, 1),  # pointwise, one sample
    (2, 1, 2, 2, (3, 3), (1, 1), 1, 0, 1, 2, 1),  # 1x1 kernel, bigger output
    (2, 1, 2, 2, (3, 2), (1, 1), 2, 0, 1, 1, 1),  # 1x1 kernel, stride 2
    (3, 1, 2, 2, (2, 3, 2), (2, 2, 3), (2, 1, 2), (0, 1, 1), (1, 0, 0), 1, 1),
    (3, 2, 2, 4, (2, 2, 2), (3, 1, 2), 1, (1, 0, 1), 0, (1, 1, 2), 2),
]


def _make(case, dtype=np.float64, seed=0):
    nd, n, c_in, c_out, sp, k, s, p, op, d, g = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in) + sp).astype(dtype)
    w = rng.standard_normal((c_in, c_out // g) + k).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    kwargs = dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d)
    return nd, x, w, b, kwargs


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("case", CASES)
def test_conv_transpose_matches_plain_loop_reference(case):
    nd, x, w, b, kw = _make(case)
    out = FORWARD[nd](x, w, b, **kw)
    np.testing.assert_allclose(out, reference_conv_transpose(x, w, b, **kw), atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_conv_transpose_output_size_matches_formula(case):
    nd, x, w, b, kw = _make(case)
    out = FORWARD[nd](x, w, **kw)
    expected = conv_transpose_output_size(
        x.shape[2:], w.shape[2:], kw["stride"], kw["padding"], kw["output_padding"],
        kw["dilation"])
    assert out.shape == (x.shape[0], w.shape[1] * kw["groups"]) + expected


def test_conv_transpose_output_size_formula_by_hand():
    # (16 - 1) * 2 - 2 * 1 + 1 * (4 - 1) + 0 + 1 = 32 ; (8 - 1) * 2 - 2 + 2 + 1 + 1 = 16
    assert conv_transpose_output_size((16, 16), 4, 2, 1, 0) == (32, 32)
    assert conv_transpose_output_size((8, 8), 3, 2, 1, 1) == (16, 16)
    assert conv_transpose_output_size(5, 3, 1, 0, 0, 2) == (9,)


def test_lecture_we02_values():
    w = np.array([1, 2, 3]).reshape(1, 1, 3)
    y = np.array([1, -1, 2, 0, 3, 1, -2]).reshape(1, 1, 7)
    np.testing.assert_array_equal(conv_transpose1d(y, w, padding=1).ravel(),
                                  [1, 3, 1, 9, 7, 9, -1])
    g = np.array([1, -2, 3]).reshape(1, 1, 3)
    np.testing.assert_array_equal(conv_transpose1d(g, w, stride=2).ravel(),
                                  [1, 2, 1, -4, -3, 6, 9])


# --------------------------------------------------------------------------- adjoint
@st.composite
def geometries(draw, nd=2):
    n = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    sp = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    p = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    sizes = [(sp[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(nd)]
    if min(sizes) < 1:
        p = (0,) * nd
    return (nd, n, c_in, c_out, sp, k, s, p, op, d, groups)


@settings(deadline=None)
@given(geometries(nd=2), st.integers(0, 2**16))
def test_conv_transpose2d_matches_reference_for_random_geometries(case, seed):
    nd, x, w, b, kw = _make(case, seed=seed)
    np.testing.assert_allclose(conv_transpose2d(x, w, b, **kw),
                               reference_conv_transpose(x, w, b, **kw), atol=1e-12)


@settings(deadline=None)
@given(st.integers(1, 3).flatmap(lambda nd: geometries(nd=nd)), st.integers(0, 2**16))
def test_adjoint_identity_conv_and_conv_transpose(case, seed):
    """<conv(z), x> == <z, conv_transpose(x)>: the two are each other's transpose."""
    nd, n, c_in, c_out, sp, k, s, p, op, d, g = case
    op = tuple(min(o, si - 1) for o, si in zip(op, s))  # the conv must map back onto x
    case = (nd, n, c_in, c_out, sp, k, s, p, op, d, g)
    # Some drawn geometries have no output (e.g. padding wider than the span);
    # conv_transpose rejects them, which other tests check.
    out = [(i - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
           for i, si, pi, di, ki, oi in zip(sp, s, p, d, k, op)]
    assume(min(out) >= 1)
    nd, x, w, _, kw = _make(case, seed=seed)
    y = FORWARD[nd](x, w, **kw)
    z = np.random.default_rng(seed + 1).standard_normal(y.shape)
    cz = CONV[nd](z, w, stride=kw["stride"], padding=kw["padding"],
                  dilation=kw["dilation"], groups=g)
    assert cz.shape == x.shape
    np.testing.assert_allclose(np.vdot(cz, x), np.vdot(z, y), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- backward
@pytest.mark.parametrize("case", CASES)
def test_conv_transpose_backward_matches_numerical_gradient(case):
    nd, x, w, b, kw = _make(case)
    out = FORWARD[nd](x, w, b, **kw)
    up = np.random.default_rng(7).standard_normal(out.shape)
    loss = lambda _: float(np.sum(FORWARD[nd](x, w, b, **kw) * up))  # noqa: E731
    grad_x, grad_w, grad_b = BACKWARD[nd](up, x, w, **kw)
    np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), atol=1e-6)
    np.testing.assert_allclose(grad_w, numerical_gradient(loss, w), atol=1e-6)
    np.testing.assert_allclose(grad_b, numerical_gradient(loss, b), atol=1e-6)


@settings(deadline=None)
@given(geometries(nd=2), st.integers(0, 2**16))
def test_conv_transpose2d_backward_is_the_adjoint_of_the_forward(case, seed):
    """grad_x and grad_w are the transposes of the (linear) forward in x and in w."""
    nd, x, w, _, kw = _make(case, seed=seed)
    rng = np.random.default_rng(seed + 2)
    up = rng.standard_normal(conv_transpose2d(x, w, **kw).shape)
    grad_x, grad_w, grad_b = conv_transpose2d_backward(up, x, w, **kw)
    dx, dw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    np.testing.assert_allclose(np.vdot(conv_transpose2d(dx, w, **kw), up),
                               np.vdot(dx, grad_x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.vdot(conv_transpose2d(x, dw, **kw), up),
                               np.vdot(dw, grad_w), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad_b, up.sum(axis=(0, 2, 3)))


def test_backward_input_gradient_is_the_convolution_with_the_same_weight():
    nd, x, w, b, kw = _make(CASES[4])  # stride 2, padding 1, output_padding 1
    up = np.random.default_rng(3).standard_normal(conv_transpose2d(x, w, **kw).shape)
    grad_x, _, _ = conv_transpose2d_backward(up, x, w, **kw)
    np.testing.assert_allclose(grad_x, conv2d(up, w, stride=2, padding=1), atol=1e-12)


def test_conv2d_backward_input_gradient_is_conv_transpose2d():
    """Lecture 000: backprop of a conv to its input is a transposed conv, same filter."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    for stride, padding, dilation in [(1, 0, 1), (2, 1, 1), (3, 2, 2), (2, 0, 1)]:
        y = conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
        up = rng.standard_normal(y.shape)
        grad_x = conv2d_backward(up, x, w, stride=stride, padding=padding,
                                 dilation=dilation)[0]
        op = tuple((n + 2 * padding - dilation * 2 - 1) % stride for n in x.shape[2:])
        np.testing.assert_allclose(
            conv_transpose2d(up, w, stride=stride, padding=padding, output_padding=op,
                             dilation=dilation), grad_x, atol=1e-12)


def test_backward_without_input_gradient():
    nd, x, w, b, kw = _make(CASES[4])
    up = np.ones(conv_transpose2d(x, w, **kw).shape)
    grad_x, grad_w, grad_b = conv_transpose2d_backward(up, x, w, needs_input_grad=False, **kw)
    assert grad_x is None
    np.testing.assert_array_equal(grad_w, conv_transpose2d_backward(up, x, w, **kw)[1])


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("case", CASES)
def test_results_do_not_depend_on_thread_count(case):
    nd, x, w, b, kw = _make(case, dtype=np.float32)
    results = []
    for n in (1, 2):
        with pyxconv.num_threads(n), threadpool_limits(n, user_api="blas"):
            out = FORWARD[nd](x, w, b, **kw)
            up = np.cos(np.arange(out.size, dtype=np.float32)).reshape(out.shape)
            results.append((out, *BACKWARD[nd](up, x, w, **kw)))
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


def _forward_and_backward(threads, x, w, up, kw):
    """conv_transpose2d and its backward with the kernels and the BLAS on ``threads``."""
    with pyxconv.num_threads(threads), threadpool_limits(threads, user_api="blas"):
        return (conv_transpose2d(x, w, **kw), *conv_transpose2d_backward(up, x, w, **kw))


def test_large_problem_does_not_depend_on_thread_count_or_chunking():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 8, 9, 10)).astype(np.float32)
    w = rng.standard_normal((8, 6, 4, 4)).astype(np.float32)
    kw = dict(stride=2, padding=1, output_padding=1)
    up = rng.standard_normal(conv_transpose2d(x, w, **kw).shape).astype(np.float32)
    results = []
    try:
        for limit in (None, 16384, 4096):  # whole samples, 4 rows, 1 row
            pyxconv.set_workspace_limit(limit)
            results += [_forward_and_backward(n, x, w, up, kw) for n in (1, 2)]
    finally:
        pyxconv.set_workspace_limit(None)
    ref = reference_conv_transpose(x.astype(np.float64), w.astype(np.float64), **kw)
    np.testing.assert_allclose(results[0][0], ref, rtol=1e-4, atol=1e-4)
    for r in results[1:]:
        # other chunkings give other GEMM shapes: equal up to float32 rounding
        for a, b in zip(r, results[0]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for i in (0, 2, 4):  # same chunking, 1 vs 2 threads: bitwise
        for a, b in zip(results[i], results[i + 1]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("chunk_bytes", [6100, 900])  # a sample a chunk; a row a chunk
def test_chunks_spread_over_python_threads_give_the_same_bits(monkeypatch, chunk_bytes,
                                                             gemm_path):
    if gemm_path != "numpy":
        pytest.skip("the chunked path only")
    # with many chunks and room for a buffer each, 2 and 3 threads each take whole chunks
    import pyxconv.functional._conv_transpose as module
    monkeypatch.setattr(module, "_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, 8, 7, 6)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    kw = dict(stride=2, padding=1, output_padding=1)
    up = rng.standard_normal(conv_transpose2d(x, w, **kw).shape).astype(np.float32)
    results = [_forward_and_backward(n, x, w, up, kw) for n in (1, 2, 3)]
    assert len(list(module._chunks(_geometry_of(x, w, kw), 4))) >= 6
    ref = reference_conv_transpose(x.astype(np.float64), w.astype(np.float64), **kw)
    np.testing.assert_allclose(results[0][0], ref, rtol=1e-4, atol=1e-4)
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_array_equal(a, b)


def _geometry_of(x, w, kw):
    from pyxconv.functional._conv_transpose import _normalise
    return _normalise(x, w, None, kw["stride"], kw["padding"], kw["output_padding"], 1, 1, 2)[3]


def test_float32_stays_float32_and_integers_promote():
    x = np.ones((1, 2, 3, 3), np.float32)
    w = np.ones((2, 1, 2, 2), np.float32)
    assert conv_transpose2d(x, w).dtype == np.float32
    assert all(g.dtype == np.float32 for g in
               conv_transpose2d_backward(np.ones((1, 1, 4, 4), np.float32), x, w))
    assert conv_transpose2d(x.astype(int), w.astype(int)).dtype == np.float64


def test_read_only_and_non_contiguous_inputs_work_and_are_not_modified():
    rng = np.random.default_rng(2)
    big = rng.standard_normal((2, 6, 8, 10))
    x = big[:, ::2, ::2, 1::2]  # non-contiguous view
    w = np.asfortranarray(rng.standard_normal((3, 2, 3, 3)))
    b = rng.standard_normal(2)
    for a in (big, w, b):
        a.setflags(write=False)
    copies = [a.copy() for a in (big, w, b)]
    kw = dict(stride=2, padding=1, output_padding=1)
    out = conv_transpose2d(x, w, b, **kw)
    np.testing.assert_allclose(out, reference_conv_transpose(x, w, b, **kw), atol=1e-12)
    up = np.ones(out.shape)
    up.setflags(write=False)
    grads = conv_transpose2d_backward(up, x, w, **kw)
    expected = conv_transpose2d_backward(up.copy(), x.copy(), np.ascontiguousarray(w), **kw)
    for g, e in zip(grads, expected):
        np.testing.assert_array_equal(g, e)
    for a, c in zip((big, w, b), copies):
        np.testing.assert_array_equal(a, c)


# --------------------------------------------------------------------------- torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_matches_pytorch_forward_and_backward(case, dtype):
    torch = pytest.importorskip("torch")
    nd, x, w, b, kw = _make(case, dtype=dtype)
    tf = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
          3: torch.nn.functional.conv_transpose3d}[nd]
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = tf(xt, wt, bt, kw["stride"], kw["padding"], kw["output_padding"], kw["groups"],
            kw["dilation"])
    up = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(up))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    out = FORWARD[nd](x, w, b, **kw)
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=tol, atol=tol)
    for mine, theirs in zip(BACKWARD[nd](up, x, w, **kw), (xt, wt, bt)):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=tol, atol=tol)


def test_matches_pytorch_benchmark_layers():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for (n, c_in, h, wd, c_out, k, s, p, op) in [(2, 8, 6, 6, 4, 4, 2, 1, 0),
                                                (2, 4, 5, 5, 2, 3, 2, 1, 1)]:
        x = rng.standard_normal((n, c_in, h, wd)).astype(np.float32)
        w = rng.standard_normal((c_in, c_out, k, k)).astype(np.float32)
        ref = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w),
                                                   stride=s, padding=p, output_padding=op)
        np.testing.assert_allclose(conv_transpose2d(x, w, stride=s, padding=p,
                                                    output_padding=op),
                                   ref.numpy(), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- bad input
def test_output_padding_not_smaller_than_stride_or_dilation_raises():
    x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match="smaller than either stride or dilation"):
        conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding=1 with stride=1 and dilation=1"):
        conv_transpose2d(x, w, output_padding=1)
    with pytest.raises(ValueError, match="smaller than either"):
        conv_transpose_output_size(3, 3, stride=2, output_padding=(2,))
    # allowed when smaller than the dilation, as in PyTorch
    assert conv_transpose2d(x, w, output_padding=1, dilation=2).shape == (1, 1, 8, 8)


@pytest.mark.parametrize("bad, match", [
    (dict(weight=np.ones((2, 1, 3, 3))), "weight has 2 input channels"),
    (dict(groups=2), "groups=2 must divide the input channels C_in=3"),
    (dict(bias=np.ones(3)), r"bias must have shape \(2,\)"),
    (dict(padding=-1), "padding must be >= 0"),
    (dict(output_padding=-1), "output_padding must be >= 0"),
    (dict(stride=0), "stride must be >= 1"),
    (dict(dilation=0), "dilation must be >= 1"),
    (dict(padding=3), "output height would be 0 < 1"),
    (dict(padding="same"), "padding must be an int"),
    (dict(x=np.ones((1, 3, 4))), "x must be 4-D"),
    (dict(weight=np.ones((3, 2, 3))), "weight must be 4-D"),
    (dict(x=np.ones((1, 3, 0, 4))), "empty dimension"),
    (dict(stride=(1, 2, 3)), "stride must be an int or 2 ints"),
])
def test_bad_arguments_raise_value_error(bad, match):
    args = dict(x=np.ones((1, 3, 4, 4)), weight=np.ones((3, 2, 3, 3)), bias=None)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        conv_transpose2d(**args)
    if "bias" not in bad:
        args.pop("bias")
        with pytest.raises(ValueError, match=match):
            conv_transpose2d_backward(np.ones((1, 2, 6, 6)), **args)


@pytest.mark.parametrize("bad, match", [
    (dict(x=np.ones((1, 3, 4, 4), np.complex128)), "complex"),
    (dict(x=np.ones((1, 3, 4, 4), np.float32)), "share one float dtype"),
    (dict(stride=1.5), "stride must be an integer"),
    (dict(groups=True), "groups must be an integer"),
])
def test_bad_types_raise_type_error(bad, match):
    args = dict(x=np.ones((1, 3, 4, 4)), weight=np.ones((3, 2, 3, 3)))
    args.update(bad)
    with pytest.raises(TypeError, match=match):
        conv_transpose2d(**args)


def test_grad_out_of_the_wrong_shape_raises():
    x, w = np.ones((1, 3, 4, 4)), np.ones((3, 2, 3, 3))
    with pytest.raises(ValueError, match=r"grad_out must have the output's shape \(1, 2, 6, 6\)"):
        conv_transpose2d_backward(np.ones((1, 2, 5, 6)), x, w)


def test_every_dimensionality_checks_its_rank():
    for nd, f in FORWARD.items():
        with pytest.raises(ValueError, match=f"x must be {nd + 2}-D"):
            f(np.ones((1, 1) + (2,) * (nd + 1)), np.ones((1, 1) + (2,) * nd))


def test_cases_cover_every_code_path():
    assert {c[0] for c in CASES} == {1, 2, 3}
    assert any(c[-1] > 1 for c in CASES)  # groups
    assert any(c[5] == (1, 1) and c[6] == 1 and c[8] == 0 for c in CASES)  # pointwise
    assert any(c[5] == (1, 1) and c[8] != 0 for c in CASES)  # 1x1 kernel, bigger output


def test_workspace_too_small_for_one_row_raises_memory_error():
    x = np.ones((1, 8, 4, 50), np.float32)
    w = np.ones((8, 8, 3, 3), np.float32)
    try:
        pyxconv.set_workspace_limit(1024)  # one row of the column matrix needs 72 x 50 x 4
        with pytest.raises(MemoryError, match="workspace limit"):
            conv_transpose2d(x, w)
    finally:
        pyxconv.set_workspace_limit(None)


@pytest.mark.parametrize("products_bytes", [1, 10**9])  # a sample a wave; one wave
def test_direct_path_waves_and_threads_give_the_same_bits(monkeypatch, products_bytes,
                                                          gemm_path):
    if gemm_path == "numpy":
        pytest.skip("the direct paths only")
    import pyxconv.functional._conv as _conv_module
    monkeypatch.setattr(_conv_module, "_PRODUCTS_BYTES", products_bytes)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 2, 3, 3)).astype(np.float64)
    w = rng.standard_normal((2, 3, 4, 3)).astype(np.float64)
    kw = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), dilation=(1, 2))
    up = rng.standard_normal(conv_transpose2d(x, w, **kw).shape)
    results = [_forward_and_backward(n, x, w, up, kw) for n in (1, 2, 3)]
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_array_equal(a, b)
    out, grad_x, grad_w, grad_b = results[0]
    np.testing.assert_allclose(out, reference_conv_transpose(x, w, **kw), rtol=1e-12,
                               atol=1e-12)
    # <conv_transpose(x), up> is linear in x and in w: its gradients by the definition
    ref_gw = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[i] = 1
        ref_gw[i] = (reference_conv_transpose(x, e, **kw) * up).sum()
    np.testing.assert_allclose(grad_w, ref_gw, rtol=1e-12, atol=1e-11)
    ref_gx = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1
        ref_gx[i] = (reference_conv_transpose(e, w, **kw) * up).sum()
    np.testing.assert_allclose(grad_x, ref_gx, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(grad_b, up.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
