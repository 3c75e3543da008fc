"""3-D pooling, padding wider than half the window, and dilated average pooling.

Checked against slow plain-loop references written here (any number of
spatial dimensions), central-difference gradients, PyTorch where PyTorch has
the case, and onnx's reference evaluator where only ONNX has it (wide
padding, dilated AveragePool).
"""
import itertools

import numpy as np
import pytest

from reference import numerical_gradient
import pyxconv
import pyxconv.functional as F

DTYPES = [np.float32, np.float64]


# ------------------------------------------------------------------ plain-loop references


def ref_out_size(size, k, s, p, d, ceil_mode):
    span = d * (k - 1) + 1
    if ceil_mode:
        out = -(-(size + 2 * p - span) // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
    else:
        out = (size + 2 * p - span) // s + 1
    return out


def _geometry(x_spatial, k, s, p, d, ceil_mode):
    nd = len(x_spatial)
    k, s, p, d = ([v] * nd if isinstance(v, int) else list(v) for v in (k, s, p, d))
    out = [ref_out_size(n, *g, ceil_mode) for n, *g in zip(x_spatial, k, s, p, d)]
    return k, s, p, d, out


def _taps(o, k, s, p, d):
    """Per dimension, the input positions of the window's taps (padding included)."""
    return [[oi * si - pi + j * di for j in range(ki)] for oi, ki, si, pi, di in
            zip(o, k, s, p, d)]


def ref_max_pool(x, k, s=None, p=0, d=1, ceil_mode=False):
    """Max pool by PyTorch's scan rule: start at -inf on the first valid tap, take v if
    v > best or v is NaN, taps in row-major order."""
    spatial = x.shape[2:]
    s = k if s is None else s
    k, s, p, d, out_sp = _geometry(spatial, k, s, p, d, ceil_mode)
    out = np.zeros(x.shape[:2] + tuple(out_sp), x.dtype)
    idx = np.zeros(out.shape, np.int64)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for o in itertools.product(*map(range, out_sp)):
            best, where = -np.inf, None
            for pos in itertools.product(*_taps(o, k, s, p, d)):
                if not all(0 <= q < size for q, size in zip(pos, spatial)):
                    continue
                flat = int(np.ravel_multi_index(pos, spatial))
                if where is None:
                    where = flat
                v = x[(n, c) + pos]
                if v > best or np.isnan(v):
                    best, where = v, flat
            assert where is not None, "a window of padding only"
            out[(n, c) + o] = best
            idx[(n, c) + o] = where
    return out, idx


def ref_avg_divisor(o, spatial, k, s, p, d, count_include_pad):
    """Taps inside the input, or inside the padded input [-p, size + p): ONNX's rule."""
    total = 1
    for axis, taps in enumerate(_taps(o, k, s, p, d)):
        lo = -p[axis] if count_include_pad else 0
        hi = spatial[axis] + (p[axis] if count_include_pad else 0)
        total *= sum(lo <= t < hi for t in taps)
    return total


def ref_avg_pool(x, k, s=None, p=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None, d=1):
    spatial = x.shape[2:]
    s = k if s is None else s
    k, s, p, d, out_sp = _geometry(spatial, k, s, p, d, ceil_mode)
    out = np.zeros(x.shape[:2] + tuple(out_sp), np.float64)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for o in itertools.product(*map(range, out_sp)):
            total = 0.0
            for pos in itertools.product(*_taps(o, k, s, p, d)):
                if all(0 <= q < size for q, size in zip(pos, spatial)):
                    total += float(x[(n, c) + pos])
            div = divisor_override or ref_avg_divisor(o, spatial, k, s, p, d,
                                                      count_include_pad)
            out[(n, c) + o] = total / div
    return out.astype(x.dtype)


def ref_avg_pool_backward(g, input_shape, k, s=None, p=0, ceil_mode=False,
                          count_include_pad=True, divisor_override=None, d=1):
    spatial = tuple(input_shape[2:])
    s = k if s is None else s
    k, s, p, d, out_sp = _geometry(spatial, k, s, p, d, ceil_mode)
    grad = np.zeros(input_shape, np.float64)
    for n, c in itertools.product(range(input_shape[0]), range(input_shape[1])):
        for o in itertools.product(*map(range, out_sp)):
            div = divisor_override or ref_avg_divisor(o, spatial, k, s, p, d,
                                                      count_include_pad)
            for pos in itertools.product(*_taps(o, k, s, p, d)):
                if all(0 <= q < size for q, size in zip(pos, spatial)):
                    grad[(n, c) + pos] += float(g[(n, c) + o]) / div
    return grad


def ref_unpool(x, idx, out_spatial):
    out = np.zeros(x.shape[:2] + tuple(out_spatial), x.dtype)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        plane = out[n, c].reshape(-1)
        for v, i in zip(x[n, c].ravel(), idx[n, c].ravel()):
            plane[i] = v  # in row-major order of x: the last duplicate wins
    return out


def distinct(shape, seed, dtype=np.float64):
    """Values far apart, so that no central difference crosses a tie."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1).astype(dtype)


# ------------------------------------------------------------------------- 3-D max pooling

GEOMETRIES_3D = [
    # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    ((2, 3, 2), (1, 2, 3), (1, 1, 0), 1, True),
    ((2, 2, 3), 1, (0, 1, 1), (2, 1, 2), False),
    (3, (2, 1, 2), 1, (1, 2, 1), True),
    (1, 1, 0, 1, False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, s, p, d, ceil_mode", GEOMETRIES_3D)
def test_max_pool3d_matches_plain_loops(dtype, k, s, p, d, ceil_mode, isa):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6, 7)).astype(dtype)
    out, idx = F.max_pool3d(x, k, s, p, d, ceil_mode, return_indices=True)
    r_out, r_idx = ref_max_pool(x, k, s, p, d, ceil_mode)
    assert out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, r_out)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(F.max_pool3d(x, k, s, p, d, ceil_mode), out)


def test_max_pool3d_ties_keep_the_first_in_depth_row_column_order_and_nan_wins():
    x = np.zeros((1, 2, 2, 2, 2))
    x[0, 0, 0, 1, 1] = x[0, 0, 1, 0, 0] = 5  # tie: (0, 1, 1) comes first
    x[0, 1, 0, 0, 1] = np.nan
    x[0, 1, 1, 1, 0] = np.nan  # the last NaN of the scan
    x[0, 1, 1, 1, 1] = 9
    out, idx = F.max_pool3d(x, 2, return_indices=True)
    assert out[0, 0].item() == 5 and idx[0, 0].item() == 3
    assert np.isnan(out[0, 1].item()) and idx[0, 1].item() == 6


@pytest.mark.parametrize("k, s, p, d, ceil_mode", GEOMETRIES_3D[:4])
def test_max_pool3d_backward_matches_numerical_gradient(k, s, p, d, ceil_mode):
    x = distinct((1, 2, 4, 5, 4), 1)
    out, idx = F.max_pool3d(x, k, s, p, d, ceil_mode, return_indices=True)
    g = np.random.default_rng(2).standard_normal(out.shape)
    numeric = numerical_gradient(
        lambda z: float((F.max_pool3d(z, k, s, p, d, ceil_mode) * g).sum()), x)
    np.testing.assert_allclose(F.max_pool3d_backward(g, idx, x.shape), numeric, atol=1e-7)


def test_max_unpool3d_matches_plain_loops_and_its_backward_is_a_gather():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 2, 3, 2))
    idx = rng.integers(0, 4 * 6 * 4, size=x.shape)  # repeats: the last one wins
    out = F.max_unpool3d(x, idx, 2, output_size=(4, 6, 4))
    np.testing.assert_array_equal(out, ref_unpool(x, idx, (4, 6, 4)))
    g = rng.standard_normal(out.shape)
    numeric = numerical_gradient(
        lambda z: float((F.max_unpool3d(z, idx, 2, output_size=(4, 6, 4)) * g).sum()),
        x.copy())
    unique = np.ones(x.shape, bool)  # copies that lost to a later duplicate get no gradient
    for n, c in np.ndindex(x.shape[:2]):
        flat = idx[n, c].ravel()
        last = {v: i for i, v in enumerate(flat)}
        unique[n, c].reshape(-1)[:] = [last[v] == i for i, v in enumerate(flat)]
    grad = F.max_unpool3d_backward(g, idx)
    np.testing.assert_allclose(grad[unique], numeric[unique], atol=1e-7)
    np.testing.assert_array_equal(
        grad, np.take_along_axis(g.reshape(2, 2, -1), idx.reshape(2, 2, -1), 2).reshape(x.shape))


def test_max_unpool3d_of_max_pool3d_keeps_exactly_the_maxima():
    x = distinct((2, 3, 4, 6, 5), 4)
    out, idx = F.max_pool3d(x, 2, return_indices=True)
    back = F.max_unpool3d(out, idx, 2, output_size=x.shape)
    kept = back != 0
    assert kept.sum() == out.size
    np.testing.assert_array_equal(back[kept], x[kept])


# ------------------------------------------------------------------------- 3-D avg pooling

AVG_GEOMETRIES_3D = [
    # kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    (2, None, 0, False, True, None),
    (3, 2, 1, False, True, None),
    (3, 2, 1, True, False, None),
    ((2, 3, 2), (1, 2, 3), (1, 1, 0), True, True, None),
    ((3, 2, 3), 2, (1, 0, 1), True, True, 5),
    ((3, 3, 2), (2, 2, 1), 1, False, False, -3),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, s, p, ceil_mode, cip, override", AVG_GEOMETRIES_3D)
def test_avg_pool3d_and_backward_match_plain_loops(dtype, k, s, p, ceil_mode, cip, override):
    x = np.random.default_rng(5).standard_normal((2, 2, 5, 6, 7)).astype(dtype)
    out = F.avg_pool3d(x, k, s, p, ceil_mode, cip, override)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref_avg_pool(x, k, s, p, ceil_mode, cip, override), **tol)
    g = np.random.default_rng(6).standard_normal(out.shape).astype(dtype)
    grad = F.avg_pool3d_backward(g, x.shape, k, s, p, ceil_mode, cip, override)
    assert grad.dtype == dtype
    np.testing.assert_allclose(
        grad, ref_avg_pool_backward(g, x.shape, k, s, p, ceil_mode, cip, override), **tol)


@pytest.mark.parametrize("k, s, p, ceil_mode, cip, override", AVG_GEOMETRIES_3D[1:4])
def test_avg_pool3d_backward_matches_numerical_gradient(k, s, p, ceil_mode, cip, override):
    x = np.random.default_rng(7).standard_normal((1, 2, 4, 5, 4))
    out = F.avg_pool3d(x, k, s, p, ceil_mode, cip, override)
    g = np.random.default_rng(8).standard_normal(out.shape)
    numeric = numerical_gradient(
        lambda z: float((F.avg_pool3d(z, k, s, p, ceil_mode, cip, override) * g).sum()), x)
    np.testing.assert_allclose(
        F.avg_pool3d_backward(g, x.shape, k, s, p, ceil_mode, cip, override), numeric,
        atol=1e-7)


def test_avg_pool3d_of_one_window_per_volume_is_the_mean():
    x = np.random.default_rng(9).standard_normal((2, 3, 3, 4, 5))
    np.testing.assert_allclose(F.avg_pool3d(x, (3, 4, 5)), x.mean(axis=(2, 3, 4),
                                                               keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(F.avg_pool3d_backward(np.ones((2, 3, 1, 1, 1)), x.shape,
                                                     (3, 4, 5)), np.full(x.shape, 1 / 60))


# --------------------------------------------------------------------------- against torch

torch_cases = pytest.mark.parametrize("dtype", DTYPES)


def _torch():
    return pytest.importorskip("torch")


@torch_cases
@pytest.mark.parametrize("k, s, p, d, ceil_mode", GEOMETRIES_3D)
def test_max_pool3d_and_backward_match_torch(dtype, k, s, p, d, ceil_mode):
    torch = _torch()
    x = np.random.default_rng(10).standard_normal((2, 3, 6, 7, 8)).astype(dtype)
    out, idx = F.max_pool3d(x, k, s, p, d, ceil_mode, return_indices=True)
    xt = torch.from_numpy(x).requires_grad_()
    t_out, t_idx = torch.nn.functional.max_pool3d(xt, k, s, p, d, ceil_mode,
                                                  return_indices=True)
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())
    g = np.random.default_rng(11).standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(F.max_pool3d_backward(g, idx, x.shape), xt.grad.numpy(),
                               rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-7)
    # torch's unpooling of the same switches, default and explicit sizes
    size = x.shape[2:]
    if d == 1:
        t_un = torch.nn.functional.max_unpool3d(t_out.detach(), t_idx, k, s, p,
                                                output_size=size)
        np.testing.assert_array_equal(F.max_unpool3d(out, idx, k, s, p, output_size=size),
                                      t_un.numpy())


@torch_cases
@pytest.mark.parametrize("k, s, p, ceil_mode, cip, override", AVG_GEOMETRIES_3D)
def test_avg_pool3d_and_backward_match_torch(dtype, k, s, p, ceil_mode, cip, override):
    torch = _torch()
    x = np.random.default_rng(12).standard_normal((2, 3, 6, 7, 8)).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    t_out = torch.nn.functional.avg_pool3d(xt, k, s, p, ceil_mode, cip, override)
    out = F.avg_pool3d(x, k, s, p, ceil_mode, cip, override)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out, t_out.detach().numpy(), **tol)
    g = np.random.default_rng(13).standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(F.avg_pool3d_backward(g, x.shape, k, s, p, ceil_mode, cip,
                                                     override), xt.grad.numpy(), **tol)


@torch_cases
@pytest.mark.parametrize("k, s, p, ceil_mode, cip", [
    (2, None, 0, False, True), (3, 2, 1, True, False), (3, 1, 1, False, True),
    (4, 3, 2, True, True)])
def test_avg_pool1d_and_backward_match_torch(dtype, k, s, p, ceil_mode, cip):
    torch = _torch()
    x = np.random.default_rng(14).standard_normal((3, 4, 11)).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    t_out = torch.nn.functional.avg_pool1d(xt, k, s, p, ceil_mode, cip)
    out = F.avg_pool1d(x, k, s, p, ceil_mode, cip)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out, t_out.detach().numpy(), **tol)
    g = np.random.default_rng(15).standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(F.avg_pool1d_backward(g, x.shape, k, s, p, ceil_mode, cip),
                               xt.grad.numpy(), **tol)


def test_max_unpool3d_default_size_matches_torch():
    torch = _torch()
    # odd sizes: the default unpooled size (in - 1) * 2 + 3 - 2 gives them back
    x = np.random.default_rng(16).standard_normal((1, 2, 5, 7, 9))
    out, idx = F.max_pool3d(x, 3, 2, 1, return_indices=True)
    t = torch.nn.functional.max_unpool3d(torch.from_numpy(out), torch.from_numpy(idx), 3, 2, 1)
    un = F.max_unpool3d(out, idx, 3, 2, 1)
    assert un.shape == tuple(t.shape)
    np.testing.assert_array_equal(un, t.numpy())


@pytest.mark.parametrize("call", [
    lambda x: F.max_pool3d(x, 3, 2, 2),  # torch refuses; we allow it while windows hold input
    lambda x: F.avg_pool3d(x, 3, 1, (0, 2, 0), count_include_pad=False),
])
def test_wide_padding_is_what_torch_refuses(call):
    torch = _torch()
    x = np.random.default_rng(17).standard_normal((1, 1, 4, 5, 6))
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        torch.nn.functional.max_pool3d(torch.from_numpy(x), 3, 2, 2)
    assert np.isfinite(call(x)).all()


# ---------------------------------------------------------------- threads give the same bits


@pytest.fixture
def threads_for_small_calls(monkeypatch):
    import pyxconv.functional._pool as pool_module
    monkeypatch.setattr(pool_module, "_GRAIN", 1)


def _outputs_3d(x):
    out, idx = F.max_pool3d(x, 3, 2, 1, return_indices=True)
    out2, idx2 = F.max_pool3d(x, (1, 2, 2), return_indices=True)
    g = np.linspace(-1, 1, out.size).reshape(out.shape).astype(x.dtype)
    a = F.avg_pool3d(x, 3, 2, 2, ceil_mode=True, dilation=(1, 2, 1))
    ga = np.linspace(-1, 1, a.size).reshape(a.shape).astype(x.dtype)
    return [out, idx, out2, idx2, F.max_pool3d_backward(g, idx, x.shape),
            F.max_unpool3d(out, idx, 3, 2, 1, output_size=x.shape),
            F.max_unpool3d_backward(x, idx),
            F.max_pool3d(x, 2, 1, 1, dilation=2),
            a, F.avg_pool3d_backward(ga, x.shape, 3, 2, 2, True, dilation=(1, 2, 1)),
            F.avg_pool3d(x, 2, count_include_pad=False, padding=1),
            F.avg_pool1d(x[:, :, 0, 0], 3, 1, 2, dilation=2),
            F.avg_pool2d_backward(F.avg_pool2d(x[:, :, 0], 2, 1, 0, dilation=3),
                                  x[:, :, 0].shape, 2, 1, 0, dilation=3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 6, 7, 8), (1, 1, 9, 10, 11)])
def test_3d_results_do_not_depend_on_the_thread_count(dtype, shape, threads_for_small_calls):
    x = np.random.default_rng(18).standard_normal(shape).astype(dtype)
    x[0, 0, 2, 3, 3] = np.nan
    with pyxconv.num_threads(1):
        one = _outputs_3d(x)
    with pyxconv.num_threads(2):
        two = _outputs_3d(x)
    for a, b in zip(one, two):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


# ------------------------------------------------------------ wide padding, avg dilation


def _onnx_pool(op, x, kernel, strides, pads, dilations=None, ceil_mode=False,
               count_include_pad=None):
    """One-node model run by onnx's reference evaluator; pads as (begin..., end...)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    attrs = dict(kernel_shape=list(kernel), strides=list(strides), pads=list(pads),
                 ceil_mode=int(ceil_mode))
    if dilations is not None:
        attrs["dilations"] = list(dilations)
    if count_include_pad is not None:
        attrs["count_include_pad"] = int(count_include_pad)
    elem = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.DOUBLE
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", elem, None)],
                              [helper.make_tensor_value_info("y", elem, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


def _expand(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


# kernel, stride, padding, dilation, ceil_mode: every one has padding > kernel // 2
WIDE = [
    ((4,), (3,), (3,), (1,), False),
    ((3,), (2,), (2,), (1,), False),
    ((3,), (1,), (2,), (2,), False),
    ((2, 3), (1, 2), (1, 2), (1, 1), False),
    ((3, 2), (2, 1), (2, 1), (2, 1), False),
    ((2, 2, 3), (1, 2, 1), (1, 1, 2), (1, 1, 1), False),
    ((3,), (2,), (2,), (1,), True),
]


def _fn(kind, nd):
    return getattr(F, f"{kind}_pool{nd}d")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, s, p, d, ceil_mode", WIDE)
def test_wide_padding_max_pool_matches_onnx_reference_and_plain_loops(dtype, k, s, p, d,
                                                                      ceil_mode):
    nd = len(k)
    x = np.random.default_rng(19).standard_normal((2, 2) + (5, 6, 4)[:nd]).astype(dtype)
    out, idx = _fn("max", nd)(x, k, s, p, d, ceil_mode, return_indices=True)
    r_out, r_idx = ref_max_pool(x, k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(out, r_out)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(out, _onnx_pool("MaxPool", x, k, s, p + p, d, ceil_mode))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("k, s, p, d, ceil_mode", WIDE)
def test_wide_padding_avg_pool_matches_onnx_reference_and_plain_loops(dtype, cip, k, s, p, d,
                                                                      ceil_mode):
    x = np.random.default_rng(20).standard_normal((2, 2) + (5, 6, 4)[:len(k)]).astype(dtype)
    _avg_pool_checked_against_loops_and_onnx(x, k, s, p, d, ceil_mode, cip)


def _avg_pool_checked_against_loops_and_onnx(x, k, s, p, d, ceil_mode, cip):
    """avg_pool{nd}d of x, asserted equal to the plain loops and onnx's reference; (out, tol)."""
    out = _fn("avg", len(k))(x, k, s, p, ceil_mode, cip, dilation=d)
    tol = dict(rtol=1e-5, atol=1e-6) if x.dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out, ref_avg_pool(x, k, s, p, ceil_mode, cip, d=d), **tol)
    np.testing.assert_allclose(
        out, _onnx_pool("AveragePool", x, k, s, p + p, d, ceil_mode, cip), **tol)
    return out, tol


@pytest.mark.parametrize("k, s, p, d, ceil_mode", WIDE)
def test_wide_padding_backward_matches_numerical_gradient(k, s, p, d, ceil_mode):
    nd = len(k)
    x = distinct((1, 2) + (5, 6, 4)[:nd], 21)
    out, idx = _fn("max", nd)(x, k, s, p, d, ceil_mode, return_indices=True)
    g = np.random.default_rng(22).standard_normal(out.shape)
    numeric = numerical_gradient(
        lambda z: float((_fn("max", nd)(z, k, s, p, d, ceil_mode) * g).sum()), x)
    back = getattr(F, f"max_pool{nd}d_backward")
    np.testing.assert_allclose(back(g, idx, x.shape), numeric, atol=1e-7)
    _avg_pool_backward_checked_numerically(x, k, s, p, d, ceil_mode, seed=23)


def _avg_pool_backward_checked_numerically(x, k, s, p, d, ceil_mode, seed):
    """avg_pool{nd}d_backward of x against central differences, counting the padding or not."""
    nd = len(k)
    back = getattr(F, f"avg_pool{nd}d_backward")
    for cip in (True, False):
        out = _fn("avg", nd)(x, k, s, p, ceil_mode, cip, dilation=d)
        g = np.random.default_rng(seed).standard_normal(out.shape)
        numeric = numerical_gradient(
            lambda z: float((_fn("avg", nd)(z, k, s, p, ceil_mode, cip, dilation=d)
                             * g).sum()), x)
        np.testing.assert_allclose(back(g, x.shape, k, s, p, ceil_mode, cip, dilation=d),
                                   numeric, atol=1e-7)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_a_window_of_padding_only_is_refused_with_its_numbers(nd):
    x = np.ones((1, 1) + (4,) * nd)
    for kind in ("max", "avg"):
        with pytest.raises(ValueError, match=r"window 0 along the \w+ holds only padding: "
                                             r"padding=2 with input \w+ 4, kernel_size 2"):
            _fn(kind, nd)(x, 2, 1, 2)
    # padding 2 with kernel 3 is allowed: every window still touches the input
    assert _fn("max", nd)(x, 3, 1, 2).shape == (1, 1) + (6,) * nd


# dilated average pooling: kernel, stride, padding, dilation, ceil_mode
DILATED = [
    ((2,), (1,), (0,), (2,), False),
    ((3,), (2,), (1,), (2,), False),
    ((3,), (1,), (3,), (3,), False),
    ((2, 3), (1, 2), (1, 1), (2, 2), False),
    ((3, 2), (2, 2), (1, 0), (1, 3), True),
    ((2, 2, 2), (1, 1, 2), (1, 0, 1), (2, 2, 1), False),
    ((2, 3, 2), (2, 1, 1), (0, 1, 1), (1, 2, 3), True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("k, s, p, d, ceil_mode", DILATED)
def test_dilated_avg_pool_matches_onnx_reference_and_plain_loops(dtype, cip, k, s, p, d,
                                                                 ceil_mode):
    nd = len(k)
    x = np.random.default_rng(24).standard_normal((2, 3) + (7, 8, 6)[:nd]).astype(dtype)
    out, tol = _avg_pool_checked_against_loops_and_onnx(x, k, s, p, d, ceil_mode, cip)
    g = np.random.default_rng(25).standard_normal(out.shape).astype(dtype)
    back = getattr(F, f"avg_pool{nd}d_backward")
    np.testing.assert_allclose(back(g, x.shape, k, s, p, ceil_mode, cip, dilation=d),
                               ref_avg_pool_backward(g, x.shape, k, s, p, ceil_mode, cip,
                                                     d=d), **tol)


@pytest.mark.parametrize("k, s, p, d, ceil_mode", DILATED)
def test_dilated_avg_pool_backward_matches_numerical_gradient(k, s, p, d, ceil_mode):
    x = np.random.default_rng(26).standard_normal((1, 2) + (7, 8, 6)[:len(k)])
    _avg_pool_backward_checked_numerically(x, k, s, p, d, ceil_mode, seed=27)


def test_dilated_divisor_counts_taps_not_the_span():
    # kernel 2, dilation 3, padding 2 over [1, 2, 4, 8]: windows start at -2 .. 2, so their
    # taps are (-2, 1), (-1, 2), (0, 3), (1, 4), (2, 5); positions 4 and 5 are padding too.
    # Each window has 2 taps in the padded input; in the input, 1, 1, 2, 1, 1.
    x = np.array([[[1.0, 2.0, 4.0, 8.0]]])
    np.testing.assert_array_equal(F.avg_pool1d(x, 2, 1, 2, dilation=3),
                                  [[[1.0, 2.0, 4.5, 1.0, 2.0]]])
    np.testing.assert_array_equal(F.avg_pool1d(x, 2, 1, 2, dilation=3, count_include_pad=False),
                                  [[[2.0, 4.0, 4.5, 2.0, 4.0]]])


def test_dilation_one_changes_nothing():
    x = np.random.default_rng(28).standard_normal((2, 3, 7, 8))
    np.testing.assert_array_equal(F.avg_pool2d(x, 3, 2, 1, True, False, dilation=1),
                                  F.avg_pool2d(x, 3, 2, 1, True, False))


# ------------------------------------------------------------------------------- layers

from pyxconv import nn  # noqa: E402


@pytest.mark.parametrize("make, make_torch, shape", [
    (lambda: nn.MaxPool3d(3, 2, 1, ceil_mode=True),
     lambda t: t.nn.MaxPool3d(3, 2, 1, ceil_mode=True), (2, 3, 5, 6, 7)),
    (lambda: nn.MaxPool3d((1, 2, 2), dilation=(1, 2, 1)),
     lambda t: t.nn.MaxPool3d((1, 2, 2), dilation=(1, 2, 1)), (1, 2, 3, 6, 4)),
    (lambda: nn.AvgPool1d(3, 2, 1, True, False), lambda t: t.nn.AvgPool1d(3, 2, 1, True, False),
     (3, 2, 10)),
    (lambda: nn.AvgPool3d(2, 1, 1, False, True, 7),
     lambda t: t.nn.AvgPool3d(2, 1, 1, False, True, 7), (2, 2, 3, 4, 5)),
    (lambda: nn.AvgPool3d(3, 2, 1, True, False),
     lambda t: t.nn.AvgPool3d(3, 2, 1, True, False), (1, 3, 6, 5, 7)),
])
def test_pool_layers_match_torch_forward_backward_and_output_shape(make, make_torch, shape):
    torch = _torch()
    x = np.random.default_rng(30).standard_normal(shape)
    layer, t_layer = make(), make_torch(torch)
    out = layer(x)
    xt = torch.from_numpy(x).requires_grad_()
    t_out = t_layer(xt)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-13)
    assert layer.output_shape(x.shape) == out.shape
    g = np.random.default_rng(31).standard_normal(out.shape)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("nd", [1, 3])
def test_max_unpool_layers_match_torch(nd):
    torch = _torch()
    x = np.random.default_rng(32).standard_normal((2, 3) + (5, 7, 9)[:nd])
    pool = getattr(nn, f"MaxPool{nd}d")(3, 2, 1)
    unpool = getattr(nn, f"MaxUnpool{nd}d")(3, 2, 1)
    out = pool(x)
    un = unpool(out, pool.indices)
    t_un = getattr(torch.nn, f"MaxUnpool{nd}d")(3, 2, 1)(torch.from_numpy(out),
                                                        torch.from_numpy(pool.indices))
    np.testing.assert_array_equal(un, t_un.numpy())
    assert unpool.output_shape(out.shape) == un.shape == x.shape
    g = np.random.default_rng(33).standard_normal(un.shape)
    np.testing.assert_array_equal(unpool.backward(g),
                                  getattr(F, f"max_unpool{nd}d_backward")(g, pool.indices))
    assert "kernel_size=" in repr(unpool)


def test_max_pool_layer_keeps_switches_only_for_training_or_when_asked():
    x = distinct((1, 2, 4, 4, 4), 34)
    pool = nn.MaxPool3d(2)
    pool(x)
    assert pool.indices is not None
    pool.eval()
    pool(x)
    assert pool.indices is None
    with pytest.raises(nn.BackwardBeforeForwardError, match="keep_indices=True"):
        pool.backward(np.ones((1, 2, 2, 2, 2)))
    kept = nn.MaxPool3d(2, keep_indices=True).eval()
    kept(x)
    np.testing.assert_array_equal(kept.indices, F.max_pool3d(x, 2, return_indices=True)[1])
    pool.train()
    with pyxconv.no_grad():
        pool(x)
    assert pool.indices is None


def test_pool_layer_reprs_and_output_shape_errors():
    assert repr(nn.MaxPool3d(2)) == ("MaxPool3d(kernel_size=(2, 2, 2), stride=(2, 2, 2), "
                                     "padding=(0, 0, 0))")
    assert repr(nn.AvgPool1d(2, 1, 1, ceil_mode=True, count_include_pad=False, dilation=2)) == (
        "AvgPool1d(kernel_size=(2,), stride=(1,), padding=(1,), dilation=(2,), ceil_mode=True, "
        "count_include_pad=False)")
    assert "divisor_override=3" in repr(nn.AvgPool3d(2, divisor_override=3))
    with pytest.raises(ValueError, match=r"MaxPool3d expected input of layout "
                                         r"\(N, C, D, H, W\), got shape \(1, 2, 4, 4\)"):
        nn.MaxPool3d(2)(np.ones((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"MaxPool3d: output depth would be 0"):
        nn.MaxPool3d(5).output_shape((1, 1, 4, 8, 8))
    with pytest.raises(ValueError, match="holds only padding: padding=2"):
        nn.AvgPool1d(2, padding=2).output_shape((1, 1, 8))
    # padding beyond kernel_size // 2 is accepted by the layers too, as by the functions
    assert nn.AvgPool3d(3, 1, 2).output_shape((1, 1, 3, 3, 3)) == (1, 1, 5, 5, 5)
