"""Max pooling with switches, unpooling and average pooling.

References are plain loops written here; PyTorch parity tests run when torch
is installed.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference import numerical_gradient
import pyxconv
from pyxconv.functional import (
    avg_pool1d,
    avg_pool1d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    max_pool1d,
    max_pool1d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_unpool1d,
    max_unpool1d_backward,
    max_unpool2d,
    max_unpool2d_backward,
)

WE29_X = np.array([[4, 1, -3, 1], [2, 0, -2, 3], [4, 2, -1, 2], [2, 1, -1, 0]])
WE32_X = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])


# ----------------------------------------------------------------- plain-loop references


def ref_out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape, written out."""
    numerator = size + 2 * p - d * (k - 1) - 1
    if ceil_mode:
        out = -(-numerator // s) + 1  # ceil division
        if (out - 1) * s >= size + p:  # the last window would start in the right padding
            out -= 1
    else:
        out = numerator // s + 1
    return out


def ref_has_padding_only_window(size, k, s, p, d, n_out):
    return any(all(not 0 <= o * s - p + t * d < size for t in range(k)) for o in range(n_out))


def ref_max_pool2d(x, k, s, p, d, ceil_mode):
    """Returns (out, switches); the rule of PyTorch's CPU kernel: v > m or v is NaN."""
    n, c, h, w = x.shape
    oh = ref_out_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow = ref_out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    out = np.zeros((n, c, oh, ow), x.dtype)
    idx = np.zeros((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    best, where = -np.inf, None
                    for u in range(k[0]):
                        for v in range(k[1]):
                            r = i * s[0] - p[0] + u * d[0]
                            q = j * s[1] - p[1] + v * d[1]
                            if 0 <= r < h and 0 <= q < w:
                                val = x[b, ch, r, q]
                                if where is None:
                                    where = r * w + q
                                if val > best or np.isnan(val):
                                    best, where = val, r * w + q
                    out[b, ch, i, j] = best
                    idx[b, ch, i, j] = where
    return out, idx


def ref_scatter_add(grad_out, idx, input_shape):
    grad_x = np.zeros(input_shape, grad_out.dtype)
    n, c = input_shape[:2]
    flat = grad_x.reshape(n, c, -1)
    for b in range(n):
        for ch in range(c):
            for g, i in zip(grad_out[b, ch].ravel(), idx[b, ch].ravel()):
                flat[b, ch, i] += g
    return grad_x


def ref_unpool(x, idx, out_spatial):
    n, c = x.shape[:2]
    out = np.zeros((n, c, math.prod(out_spatial)), x.dtype)
    for b in range(n):
        for ch in range(c):
            for v, i in zip(x[b, ch].ravel(), idx[b, ch].ravel()):
                out[b, ch, i] = v
    return out.reshape((n, c) + tuple(out_spatial))


def ref_avg_windows(h, w, k, s, p, ceil_mode, count_include_pad, divisor_override):
    """Yield (i, j, rows, cols, divisor) for every window, PyTorch's divisor rule."""
    oh = ref_out_size(h, k[0], s[0], p[0], 1, ceil_mode)
    ow = ref_out_size(w, k[1], s[1], p[1], 1, ceil_mode)
    for i in range(oh):
        for j in range(ow):
            r0, q0 = i * s[0] - p[0], j * s[1] - p[1]
            r1, q1 = min(r0 + k[0], h + p[0]), min(q0 + k[1], w + p[1])
            pool = (r1 - r0) * (q1 - q0)
            r0c, q0c, r1c, q1c = max(r0, 0), max(q0, 0), min(r1, h), min(q1, w)
            if divisor_override:
                div = divisor_override
            elif count_include_pad:
                div = pool
            else:
                div = (r1c - r0c) * (q1c - q0c)
            yield i, j, range(r0c, r1c), range(q0c, q1c), div, (oh, ow)


def ref_avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override=None):
    n, c, h, w = x.shape
    windows = list(ref_avg_windows(h, w, k, s, p, ceil_mode, count_include_pad,
                                   divisor_override))
    oh, ow = windows[0][5]
    out = np.zeros((n, c, oh, ow))
    for b in range(n):
        for ch in range(c):
            for i, j, rows, cols, div, _ in windows:
                total = sum(float(x[b, ch, r, q]) for r in rows for q in cols)
                out[b, ch, i, j] = total / div
    return out.astype(x.dtype)


def ref_avg_pool2d_backward(grad_out, input_shape, k, s, p, ceil_mode, count_include_pad,
                            divisor_override=None):
    n, c, h, w = input_shape
    grad_x = np.zeros(input_shape)
    for i, j, rows, cols, div, _ in ref_avg_windows(h, w, k, s, p, ceil_mode,
                                                    count_include_pad, divisor_override):
        for r in rows:
            for q in cols:
                grad_x[:, :, r, q] += grad_out[:, :, i, j] / div
    return grad_x


def distinct_values(shape, seed):
    """Values at least 0.1 apart, so no window has a near-tie (safe finite differences)."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(math.prod(shape)) * 0.1 - 3.0).reshape(shape)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ------------------------------------------------------------------- lecture examples


def test_max_pool_we29_values_and_switches():
    out, idx = max_pool2d(WE29_X.reshape(1, 1, 4, 4), 2, stride=2, return_indices=True)
    np.testing.assert_array_equal(out[0, 0], [[4, 3], [4, 2]])
    np.testing.assert_array_equal(idx[0, 0], [[0, 7], [8, 11]])
    assert idx.dtype == np.int64


def test_max_pool_we32_values_and_switches():
    out, idx = max_pool2d(WE32_X.reshape(1, 1, 4, 4), 2, return_indices=True)
    np.testing.assert_array_equal(out[0, 0], [[6, 8], [3, 4]])
    np.testing.assert_array_equal(idx[0, 0], [[5, 7], [8, 15]])


@pytest.mark.parametrize("width, expected", [(4, 2), (5, 3), (7, 4), (32, 16), (224, 112)])
def test_max_pool_ceil_mode_gives_we33_sizes(width, expected):
    x = np.zeros((1, 1, width, width), np.float32)
    assert max_pool2d(x, 2, ceil_mode=True).shape == (1, 1, expected, expected)
    assert avg_pool2d(x, 2, ceil_mode=True).shape == (1, 1, expected, expected)
    assert max_pool1d(x[:, :, 0], 2, ceil_mode=True).shape == (1, 1, expected)


@pytest.mark.parametrize("width, expected", [(5, 2), (7, 3)])
def test_max_pool_floor_mode_drops_the_partial_window(width, expected):
    assert max_pool2d(np.zeros((1, 1, width, width)), 2).shape == (1, 1, expected, expected)


def test_unpool_of_we29_puts_maxima_back_at_their_switches():
    x = WE29_X.reshape(1, 1, 4, 4)
    out, idx = max_pool2d(x, 2, return_indices=True)
    back = max_unpool2d(out, idx, 2)
    expected = np.zeros((4, 4))
    for (r, q) in [(0, 0), (1, 3), (2, 0), (2, 3)]:
        expected[r, q] = WE29_X[r, q]
    np.testing.assert_array_equal(back[0, 0], expected)


# ----------------------------------------------------------------- forward vs references


@settings(deadline=None)
@given(
    n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 11),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    dh=st.integers(1, 2), dw=st.integers(1, 2), ceil_mode=st.booleans(),
    pad_h=st.integers(0, 2), pad_w=st.integers(0, 2), f32=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_max_pool2d_matches_plain_loops(n, c, h, w, kh, kw, sh, sw, dh, dw, ceil_mode, pad_h,
                                        pad_w, f32, seed):
    k, s, d = (kh, kw), (sh, sw), (dh, dw)
    p = (min(pad_h, kh // 2), min(pad_w, kw // 2))
    rng = np.random.default_rng(seed)
    # small integers: plenty of ties, which must go to the first maximum in scan order
    x = rng.integers(-3, 4, size=(n, c, h, w)).astype(np.float32 if f32 else np.float64)
    oh = ref_out_size(h, kh, sh, p[0], dh, ceil_mode)
    ow = ref_out_size(w, kw, sw, p[1], dw, ceil_mode)
    if oh < 1 or ow < 1:
        # one dimension may also hold a padding-only window; either error is right
        with pytest.raises(ValueError, match="< 1|only padding"):
            max_pool2d(x, k, s, p, d, ceil_mode)
        return
    if ref_has_padding_only_window(h, kh, sh, p[0], dh, oh) or \
            ref_has_padding_only_window(w, kw, sw, p[1], dw, ow):
        with pytest.raises(ValueError, match="only padding"):
            max_pool2d(x, k, s, p, d, ceil_mode)
        return
    out, idx = max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    ref_out, ref_idx = ref_max_pool2d(x, k, s, p, d, ceil_mode)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.parametrize("shape, k, s, p, d, ceil_mode", [
    ((2, 3, 8, 8), 2, 2, 0, 1, False),      # the 2x2/2 fast path
    ((2, 3, 9, 7), 2, 2, 0, 1, False),      # fast path, odd sizes
    ((2, 3, 9, 7), 2, 2, 0, 1, True),       # ceil mode: partial windows at the end
    ((2, 2, 13, 13), 3, 2, 1, 1, False),    # overlapping 3x3/2 (AlexNet, GoogLeNet)
    ((1, 2, 12, 15), 3, 1, 1, 1, False),    # stride 1
    ((1, 2, 12, 15), (3, 2), (3, 1), (1, 0), (1, 2), True),
    ((1, 1, 20, 33), 5, 3, 2, 2, True),
    ((1, 2, 5, 6), 2, 2, 0, (2, 1), False),  # dilated 2x2/2: must not take the 2x2 fast path
    ((1, 2, 6, 5), 2, 2, 0, (1, 2), False),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_fixed_geometries_match_plain_loops(shape, k, s, p, d, ceil_mode, dtype, isa):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out, idx = max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    ref_out, ref_idx = ref_max_pool2d(x, pair(k), pair(s), pair(p), pair(d), ceil_mode)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, s, p, d", [
    ((2, 2, 6, 75), 2, 2, 0, 1),            # the 2x2 loop: 37 columns, vector body and tail
    ((1, 3, 7, 70), 3, 2, 1, 1),            # stride 2: de-interleaving loads
    ((1, 2, 5, 41), 3, 1, 1, 1),            # stride 1
    ((1, 2, 6, 80), (2, 3), (1, 3), (0, 1), (1, 2)),  # stride 3, dilated columns
])
def test_max_pool_row_loops_of_every_instruction_set_match_plain_loops(shape, k, s, p, d,
                                                                       dtype, isa):
    # rows wide enough for each instance's vector loop and its scalar tail, with ties
    # (small integers, +0 against -0), NaN and -inf, which the selects must order as
    # the reference scan does; the switch-free loop gives the same bits
    from pyxconv._kernels import _pool
    assert _pool.get_isa() == isa
    x = np.random.default_rng(5).integers(-3, 4, size=shape).astype(dtype)
    x.reshape(-1)[3::11] = -0.0
    x.reshape(-1)[::29] = np.nan
    x.reshape(-1)[7::13] = -np.inf
    out, idx = max_pool2d(x, k, s, p, d, return_indices=True)
    ref_out, ref_idx = ref_max_pool2d(x, pair(k), pair(s), pair(p), pair(d), False)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)
    assert np.array_equal(np.signbit(out), np.signbit(ref_out))
    values = max_pool2d(x, k, s, p, d)
    assert values.tobytes() == out.tobytes()


@settings(deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 2), length=st.integers(1, 20),
       k=st.integers(1, 5), s=st.integers(1, 4), pad=st.integers(0, 2), d=st.integers(1, 3),
       ceil_mode=st.booleans(), seed=st.integers(0, 100))
def test_max_pool1d_is_max_pool2d_on_a_single_row(n, c, length, k, s, pad, d, ceil_mode, seed):
    pad = min(pad, k // 2)
    x = np.random.default_rng(seed).integers(-3, 4, size=(n, c, length)).astype(np.float64)
    n_out = ref_out_size(length, k, s, pad, d, ceil_mode)
    if n_out < 1 or ref_has_padding_only_window(length, k, s, pad, d, n_out):
        with pytest.raises(ValueError):
            max_pool1d(x, k, s, pad, d, ceil_mode)
        return
    out, idx = max_pool1d(x, k, s, pad, d, ceil_mode, return_indices=True)
    ref_out, ref_idx = ref_max_pool2d(x[:, :, None], (1, k), (1, s), (0, pad), (1, d),
                                      ceil_mode)
    np.testing.assert_array_equal(out, ref_out[:, :, 0])
    np.testing.assert_array_equal(idx, ref_idx[:, :, 0])


def test_max_pool_ties_pick_the_first_maximum_in_scan_order():
    x = np.ones((1, 1, 4, 4))
    _, idx = max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0], [[0, 2], [8, 10]])
    _, idx = max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    # the first element of each window inside the input
    np.testing.assert_array_equal(idx[0, 0, 0], [0, 0, 1, 2])
    np.testing.assert_array_equal(idx[0, 0, 1], [0, 0, 1, 2])
    # a tie across rows: (0, 1) comes before (1, 0) in row-major order
    x = np.array([[0, 5], [5, 0]], dtype=np.float32).reshape(1, 1, 2, 2)
    assert max_pool2d(x, 2, return_indices=True)[1][0, 0, 0, 0] == 1


def test_max_pool_padding_is_never_picked():
    x = -np.arange(1.0, 26.0).reshape(1, 1, 5, 5)  # all negative: zero padding would win
    out, idx = max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    assert (out < 0).all()
    # the largest real element of each window is its top-left one, rows/cols 0, 1, 3
    np.testing.assert_array_equal(out[0, 0], [[-1, -2, -4], [-6, -7, -9], [-16, -17, -19]])
    np.testing.assert_array_equal(idx[0, 0], [[0, 1, 3], [5, 6, 8], [15, 16, 18]])


def test_max_pool_all_minus_inf_window_points_at_its_first_element():
    x = np.full((1, 1, 4, 4), -np.inf, np.float32)
    out, idx = max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    assert np.isneginf(out).all()
    np.testing.assert_array_equal(idx[0, 0, 2], [4, 4, 5, 6])


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_propagates_nan_and_points_at_it(k, s, p, isa):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 9, 9)).astype(np.float32)
    x[0, 0, 3, 4] = np.nan
    x[1, 1, 0, 0] = np.nan
    x[1, 1, 0, 1] = np.nan  # two NaNs in one window
    out, idx = max_pool2d(x, k, s, p, return_indices=True)
    ref_out, ref_idx = ref_max_pool2d(x, pair(k), pair(s), pair(p), (1, 1), False)
    np.testing.assert_array_equal(out, ref_out)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(idx, ref_idx)
    flat = x.reshape(2, 2, -1)
    nan_out = np.isnan(out)
    assert nan_out[0, 0].any() and nan_out[1, 1].any()
    assert np.isnan(np.take_along_axis(flat, idx.reshape(2, 2, -1), 2)[nan_out.reshape(2, 2, -1)]).all()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, k, s, p, d", [
    ((3, 4, 12, 14), 2, 2, 0, 1),   # the 2x2 loop
    ((3, 4, 13, 15), 2, 2, 0, 1),   # the 2x2 loop with a dropped last row and column
    ((2, 3, 11, 11), 3, 2, 1, 1),
    ((2, 3, 11, 10), (3, 2), (1, 2), (1, 0), (2, 1)),
])
def test_max_pool_without_switches_gives_the_same_bits(shape, k, s, p, d, threads):
    # the kernel then writes no switches: values by the same selects, in the same order
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::7] = 0.0
    x.reshape(-1)[3::7] = -0.0  # ties between +0 and -0 keep the first one
    x.reshape(-1)[::23] = np.nan
    x.reshape(-1)[5::31] = -np.inf
    with pyxconv.num_threads(threads):
        values = max_pool2d(x, k, s, p, d)
        with_switches, _ = max_pool2d(x, k, s, p, d, return_indices=True)
    ref_out, _ = ref_max_pool2d(x, pair(k), pair(s), pair(p), pair(d), False)
    np.testing.assert_array_equal(values.view(np.uint32), with_switches.view(np.uint32))
    np.testing.assert_array_equal(values, ref_out)
    assert np.signbit(values).sum() == np.signbit(with_switches).sum()


# --------------------------------------------------------------------- max backward


@pytest.mark.parametrize("shape, k, s, p, ceil_mode", [
    ((2, 2, 6, 6), 2, 2, 0, False),
    ((1, 2, 7, 7), 3, 2, 1, False),   # overlapping windows
    ((1, 1, 7, 8), 3, 2, 1, True),
    ((1, 1, 5, 6), (2, 3), (1, 2), (1, 1), False),
])
def test_max_pool2d_backward_matches_numerical_gradient(shape, k, s, p, ceil_mode):
    x = distinct_values(shape, 1)
    out, idx = max_pool2d(x, k, s, p, ceil_mode=ceil_mode, return_indices=True)
    weights = np.random.default_rng(2).standard_normal(out.shape)
    grad = max_pool2d_backward(weights, idx, x.shape)
    numeric = numerical_gradient(
        lambda z: float((max_pool2d(z, k, s, p, ceil_mode=ceil_mode) * weights).sum()), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_max_pool1d_backward_matches_numerical_gradient():
    x = distinct_values((2, 3, 11), 4)
    out, idx = max_pool1d(x, 3, 2, 1, return_indices=True)
    weights = np.random.default_rng(5).standard_normal(out.shape)
    grad = max_pool1d_backward(weights, idx, x.shape)
    numeric = numerical_gradient(lambda z: float((max_pool1d(z, 3, 2, 1) * weights).sum()), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_maxpool_switches_route_gradient_to_argmax_even_when_windows_overlap():
    # one large value shared by all four overlapping 3x3/2 windows gets all four gradients
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 10.0
    out, idx = max_pool2d(x, 3, stride=2, return_indices=True)
    assert (idx == 12).all()
    g = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    grad = max_pool2d_backward(g, idx, x.shape)
    expected = np.zeros((1, 1, 5, 5))
    expected[0, 0, 2, 2] = 10.0
    np.testing.assert_array_equal(grad, expected)


@settings(deadline=None)
@given(h=st.integers(2, 12), w=st.integers(2, 12), k=st.integers(2, 4), s=st.integers(1, 3),
       seed=st.integers(0, 100))
def test_max_pool2d_backward_is_a_scatter_add_at_the_switches(h, w, k, s, seed):
    x = np.random.default_rng(seed).integers(-2, 3, size=(2, 2, h, w)).astype(np.float32)
    if k > h or k > w:
        return
    out, idx = max_pool2d(x, k, s, return_indices=True)
    g = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(max_pool2d_backward(g, idx, x.shape),
                                  ref_scatter_add(g, idx, x.shape))


# Non-overlapping windows take a dense path: one gathered pass writes every element of
# the gradient (or the unpooled output) when each switch lies in its own window, and the
# general scatter runs when one does not.

TILED_CASES = [((2, 3, 8, 8), 2), ((2, 3, 9, 11), 2), ((1, 2, 10, 7), 3), ((2, 2, 7, 9), (2, 3)),
               ((3, 1, 5, 8), (1, 2)), ((1, 1, 6, 6), (3, 1))]


@pytest.mark.parametrize("shape, k", TILED_CASES)
def test_tiled_switches_take_the_dense_kernel_and_match_plain_loops(shape, k):
    from pyxconv._kernels import _pool as kernels
    x = np.random.default_rng(0).standard_normal(shape)
    out, idx = max_pool2d(x, k, return_indices=True)
    g = np.random.default_rng(1).standard_normal(out.shape)
    tile = pair(k)
    dense = np.full(shape, np.nan)  # every element must be written
    planes = shape[0] * shape[1]
    misses = kernels.scatter_into_tiles(g.reshape((planes,) + out.shape[2:]),
                                        idx.reshape((planes,) + out.shape[2:]),
                                        dense.reshape((planes,) + shape[2:]), *tile, 1)
    assert misses == 0
    expected = ref_scatter_add(g, idx, shape)
    np.testing.assert_array_equal(dense, expected)
    np.testing.assert_array_equal(max_pool2d_backward(g, idx, shape), expected)
    np.testing.assert_array_equal(max_unpool2d(g, idx, k, output_size=shape[2:]),
                                  ref_unpool(g, idx, shape[2:]))


def test_general_scatter_kernels_write_every_element_of_their_output():
    # the Python layer hands them np.empty memory, which may hold anything
    from pyxconv._kernels import _pool as kernels
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    out, idx = max_pool2d(x, 3, 2, 1, return_indices=True)  # overlapping: shared switches
    values, switches = out.reshape(6, -1), idx.reshape(6, -1)
    for kernel, expected in ((kernels.max_pool_backward, ref_scatter_add(out, idx, x.shape)),
                             (kernels.max_unpool, ref_unpool(out, idx, x.shape[2:]))):
        garbage = np.full((6, 81), np.nan)
        kernel(values, switches, garbage, 2)
        np.testing.assert_array_equal(garbage.reshape(x.shape), expected)


@pytest.mark.parametrize("where", [(0, 0, 0, 0), (-1, -1, -1, -1), (1, 2, 3, 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_one_switch_outside_its_window_falls_back_to_the_general_scatter(
        where, threads, threads_for_small_calls):
    from pyxconv._kernels import _pool as kernels
    shape = (2, 3, 8, 10)
    x = np.random.default_rng(0).standard_normal(shape)
    out, idx = max_pool2d(x, 2, return_indices=True)
    idx[where] = 0 if idx[where] != 0 else 79  # in range, in another window
    g = np.random.default_rng(1).standard_normal(out.shape)
    scratch = np.empty(shape)
    assert kernels.scatter_into_tiles(g.reshape(6, 4, 5), idx.reshape(6, 4, 5),
                                      scratch.reshape(6, 8, 10), 2, 2, threads) > 0
    with pyxconv.num_threads(threads):
        np.testing.assert_array_equal(max_pool2d_backward(g, idx, shape),
                                      ref_scatter_add(g, idx, shape))
        np.testing.assert_array_equal(max_unpool2d(g, idx, 2), ref_unpool(g, idx, shape[2:]))


def test_switches_outside_the_plane_raise_on_the_dense_path_too():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    out, idx = max_pool2d(x, 2, return_indices=True)
    for bad in (-1, 16, 2**40):
        wrong = idx.copy()
        wrong[0, 1, 1, 1] = bad
        with pytest.raises(ValueError, match=f"indices holds {bad}, outside \\[0, 16\\)"):
            max_pool2d_backward(out, wrong, x.shape)
        with pytest.raises(ValueError, match=f"indices holds {bad}, outside"):
            max_unpool2d(out, wrong, 2)


# -------------------------------------------------------------------------- unpooling


@pytest.mark.parametrize("shape, k, s, p", [
    ((2, 3, 8, 8), 2, 2, 0), ((1, 2, 9, 9), 3, 2, 1), ((1, 1, 6, 10), (2, 3), (2, 3), 0)])
def test_unpool_of_pool_keeps_exactly_the_maxima(shape, k, s, p):
    x = np.random.default_rng(0).standard_normal(shape)
    out, idx = max_pool2d(x, k, s, p, return_indices=True)
    back = max_unpool2d(out, idx, k, s, p, output_size=shape[2:])
    assert back.shape == x.shape
    flat_x, flat_back = x.reshape(*shape[:2], -1), back.reshape(*shape[:2], -1)
    mask = np.zeros(flat_back.shape, bool)
    np.put_along_axis(mask, idx.reshape(*shape[:2], -1), True, axis=2)
    np.testing.assert_array_equal(flat_back[mask], flat_x[mask])  # the maxima, where they were
    assert (flat_back[~mask] == 0).all()                           # and nothing else
    np.testing.assert_array_equal(max_pool2d(back, k, s, p)[out > 0], out[out > 0])


def test_unpool_matches_plain_loops_and_last_duplicate_wins():
    x = np.arange(1.0, 7.0).reshape(1, 2, 3)
    idx = np.array([[[2, 0, 2]] * 2])  # switch 2 twice per plane: the later value wins
    back = max_unpool1d(x.reshape(1, 2, 3), idx.reshape(1, 2, 3), 2)
    np.testing.assert_array_equal(back, ref_unpool(x, idx, (6,)))
    np.testing.assert_array_equal(back[0, 0], [2, 0, 3, 0, 0, 0])


@settings(deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4),
       k=st.integers(1, 3), seed=st.integers(0, 1000))
def test_unpool_with_arbitrary_switches_matches_plain_loops(n, c, h, w, k, seed,
                                                           threads_for_small_calls):
    # (the fixture only lowers the grain size; it holds for every generated input)
    # switches need not come from a pooling: any in-range values, duplicates included
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    out_spatial = (h * k, w * k)
    idx = rng.integers(0, min(3, h * w * k * k), size=x.shape)  # many duplicates
    expected = ref_unpool(x, idx, out_spatial)
    for threads in (1, 2):
        with pyxconv.num_threads(threads):
            np.testing.assert_array_equal(max_unpool2d(x, idx, k), expected)
            g = rng.standard_normal((n, c, *out_spatial))
            np.testing.assert_array_equal(max_unpool2d_backward(g, idx),
                                          np.take_along_axis(g.reshape(n, c, -1),
                                                             idx.reshape(n, c, -1), 2
                                                             ).reshape(x.shape))
            np.testing.assert_array_equal(max_pool2d_backward(x, idx, (n, c) + out_spatial),
                                          ref_scatter_add(x, idx, (n, c) + out_spatial))


def test_unpool_default_and_explicit_output_size():
    x = np.ones((1, 1, 2, 3))
    idx = np.zeros((1, 1, 2, 3), np.int64)
    assert max_unpool2d(x, idx, 2).shape == (1, 1, 4, 6)
    assert max_unpool2d(x, idx, 2, output_size=(5, 7)).shape == (1, 1, 5, 7)
    assert max_unpool2d(x, idx, 2, output_size=(1, 1, 3, 5)).shape == (1, 1, 3, 5)
    assert max_unpool2d(x, idx, 3, stride=2, padding=1).shape == (1, 1, 3, 5)


def test_unpool1d_inverts_pool1d_at_the_switches():
    x = np.random.default_rng(1).standard_normal((2, 3, 11))
    out, idx = max_pool1d(x, 2, return_indices=True)
    back = max_unpool1d(out, idx, 2, output_size=(11,))
    np.testing.assert_array_equal(back, ref_unpool(out, idx, (11,)))


def test_unpool_backward_gathers_at_the_switches():
    x = np.random.default_rng(2).standard_normal((2, 2, 6, 6))
    out, idx = max_pool2d(x, 2, return_indices=True)
    g = np.random.default_rng(3).standard_normal((2, 2, 6, 6))
    grad = max_unpool2d_backward(g, idx)
    numeric = numerical_gradient(lambda z: float((max_unpool2d(z, idx, 2) * g).sum()), out)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    g1 = g.reshape(2, 2, 36)[:, :, :8]
    idx1 = np.array([[[0, 7, 3]] * 2] * 2)
    np.testing.assert_array_equal(max_unpool1d_backward(g1, idx1),
                                  np.take_along_axis(g1, idx1, 2))


# --------------------------------------------------------------------- average pooling


@settings(deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), pad_h=st.integers(0, 2),
       pad_w=st.integers(0, 2), ceil_mode=st.booleans(), count_include_pad=st.booleans(),
       override=st.sampled_from([None, 3, -2]), f32=st.booleans(), seed=st.integers(0, 100))
def test_avg_pool2d_and_backward_match_plain_loops(h, w, kh, kw, sh, sw, pad_h, pad_w,
                                                   ceil_mode, count_include_pad, override,
                                                   f32, seed):
    k, s = (kh, kw), (sh, sw)
    p = (min(pad_h, kh // 2), min(pad_w, kw // 2))
    oh = ref_out_size(h, kh, sh, p[0], 1, ceil_mode)
    ow = ref_out_size(w, kw, sw, p[1], 1, ceil_mode)
    dtype = np.float32 if f32 else np.float64
    x = np.random.default_rng(seed).standard_normal((2, 2, h, w)).astype(dtype)
    if oh < 1 or ow < 1:
        with pytest.raises(ValueError, match="output"):
            avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, override)
        return
    out = avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, override)
    assert out.dtype == dtype
    tol = 1e-6 if f32 else 1e-12
    np.testing.assert_allclose(out, ref_avg_pool2d(x, k, s, p, ceil_mode, count_include_pad,
                                                   override), rtol=tol, atol=tol)
    g = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    grad = avg_pool2d_backward(g, x.shape, k, s, p, ceil_mode, count_include_pad, override)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, ref_avg_pool2d_backward(g, x.shape, k, s, p, ceil_mode,
                                                             count_include_pad, override),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_backward_matches_numerical_gradient(count_include_pad):
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 6))
    out = avg_pool2d(x, 3, 2, 1, True, count_include_pad)
    weights = np.random.default_rng(1).standard_normal(out.shape)
    grad = avg_pool2d_backward(weights, x.shape, 3, 2, 1, True, count_include_pad)
    numeric = numerical_gradient(
        lambda z: float((avg_pool2d(z, 3, 2, 1, True, count_include_pad) * weights).sum()), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_avg_pool1d_and_backward_are_the_2d_ones_on_a_row():
    x = np.random.default_rng(0).standard_normal((2, 3, 13))
    for args in [(2, None, 0, False, True), (3, 2, 1, True, False), (4, 3, 2, True, True)]:
        k, s, p, ceil_mode, cip = args
        s2 = (1, s) if s is not None else None
        out = avg_pool1d(x, k, s, p, ceil_mode, cip)
        np.testing.assert_allclose(
            out, ref_avg_pool2d(x[:, :, None], (1, k), s2 or (1, k), (0, p), ceil_mode,
                                cip)[:, :, 0], rtol=1e-12)
        g = np.random.default_rng(1).standard_normal(out.shape)
        np.testing.assert_allclose(
            avg_pool1d_backward(g, x.shape, k, s, p, ceil_mode, cip),
            ref_avg_pool2d_backward(g[:, :, None], (2, 3, 1, 13), (1, k), s2 or (1, k),
                                    (0, p), ceil_mode, cip)[:, :, 0], rtol=1e-12)


def test_global_avg_pool2d_is_the_plane_mean_and_its_backward_spreads_evenly():
    x = np.random.default_rng(0).standard_normal((3, 4, 7, 7)).astype(np.float32)
    out = global_avg_pool2d(x)
    assert out.shape == (3, 4, 1, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, x.astype(np.float64).mean(axis=(2, 3), keepdims=True),
                               rtol=1e-6)
    np.testing.assert_allclose(out, avg_pool2d(x, 7), rtol=1e-6)
    odd = np.random.default_rng(2).standard_normal((2, 3, 5, 3))  # a plane of 15 elements
    np.testing.assert_allclose(global_avg_pool2d(odd), odd.mean(axis=(2, 3), keepdims=True),
                               rtol=1e-14)
    g = np.random.default_rng(1).standard_normal((3, 4, 1, 1)).astype(np.float32)
    grad = global_avg_pool2d_backward(g, x.shape)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, np.broadcast_to(g / 49, x.shape), rtol=1e-6)
    numeric = numerical_gradient(lambda z: float((global_avg_pool2d(z) * g[:1, :1]).sum()),
                                 x[:1, :1].astype(np.float64))
    np.testing.assert_allclose(numeric, np.broadcast_to(g[:1, :1] / 49, (1, 1, 7, 7)),
                               rtol=1e-5)


# --------------------------------------------------- threads, dtypes, layouts, inputs


def _all_outputs(x):
    out, idx = max_pool2d(x, 3, 2, 1, return_indices=True)
    out2, idx2 = max_pool2d(x, 2, return_indices=True)
    g = np.linspace(-1, 1, out.size).reshape(out.shape).astype(x.dtype)
    g2 = np.linspace(-1, 1, out2.size).reshape(out2.shape).astype(x.dtype)
    return [out, idx, out2, idx2, max_pool2d_backward(g, idx, x.shape),
            max_pool2d_backward(g2, idx2, x.shape),
            max_unpool2d(g2, idx2, 2, output_size=x.shape[2:]),
            max_unpool2d(out, idx, 3, 2, 1, output_size=x.shape[2:]),
            avg_pool2d(x, 3, 2, 1, ceil_mode=True),
            avg_pool2d_backward(g, x.shape, 3, 2, 1),
            max_pool1d(x[:, :, 0], 3, 2, 1), global_avg_pool2d(x)]


@pytest.fixture
def threads_for_small_calls(monkeypatch):
    """Let calls below the grain size use several threads too, so that small tests cover them."""
    import pyxconv.functional._pool as pool_module
    monkeypatch.setattr(pool_module, "_GRAIN", 1)


# many planes; one plane (threads split its rows); above the grain size
@pytest.mark.parametrize("shape", [(4, 3, 17, 19), (1, 1, 64, 61), (2, 8, 64, 64)])
def test_results_do_not_depend_on_the_thread_count(shape, threads_for_small_calls):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x[0, 0, 5, 5] = np.nan
    with pyxconv.num_threads(1):
        one = _all_outputs(x)
    with pyxconv.num_threads(2):
        two = _all_outputs(x)
    with pyxconv.num_threads(3):
        three = _all_outputs(x)
    for a, b, c in zip(one, two, three):
        assert a.tobytes() == b.tobytes() == c.tobytes()


def test_noncontiguous_and_readonly_inputs_work_and_are_not_modified():
    base = np.random.default_rng(0).standard_normal((2, 3, 10, 12))
    x = base[:, :, ::2, ::2]  # strided view
    x_copy = x.copy()
    base.flags.writeable = False
    out, idx = max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal((out, idx), max_pool2d(x_copy, 2, return_indices=True))
    idx.flags.writeable = False
    out_t = np.asfortranarray(out)
    np.testing.assert_array_equal(max_unpool2d(out_t, idx, 2), max_unpool2d(out, idx, 2))
    np.testing.assert_array_equal(max_pool2d_backward(out_t, idx[:, :, ::1], x.shape),
                                  max_pool2d_backward(out, idx, x.shape))
    np.testing.assert_array_equal(avg_pool2d(x, 2), avg_pool2d(x_copy, 2))
    np.testing.assert_array_equal(x, x_copy)


def test_dtypes_follow_the_input():
    x32 = np.ones((1, 1, 4, 4), np.float32)
    assert max_pool2d(x32, 2).dtype == np.float32
    assert avg_pool2d(x32, 2).dtype == np.float32
    assert max_pool2d(np.ones((1, 1, 4, 4), np.int32), 2).dtype == np.float64
    assert max_pool2d(np.ones((1, 1, 4, 4), np.float16), 2).dtype == np.float32
    _, idx = max_pool2d(x32, 2, return_indices=True)
    assert max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), idx, (1, 1, 4, 4)).dtype \
        == np.float32
    # switches of another integer dtype are accepted
    np.testing.assert_array_equal(max_unpool2d(x32[:, :, :2, :2], idx.astype(np.int32), 2),
                                  max_unpool2d(x32[:, :, :2, :2], idx, 2))


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(kernel_size=2, stride=0), ValueError, "stride"),
    (dict(kernel_size=2, padding=-1), ValueError, "padding"),
    # padding above kernel_size // 2 is allowed (as in ONNX) until a window holds no input
    (dict(kernel_size=2, padding=2), ValueError, r"window 0 along the height holds only "
                                                 r"padding: padding=2"),
    (dict(kernel_size=3, padding=(1, 3)), ValueError, r"along the width holds only padding: "
                                                      r"padding=3"),
    (dict(kernel_size=2, dilation=0), ValueError, "dilation"),
    (dict(kernel_size=6), ValueError, "output height would be 0"),
    (dict(kernel_size=2, stride=1.5), TypeError, "stride"),
    (dict(kernel_size=(2, 2, 2)), ValueError, "kernel_size"),
    (dict(kernel_size=2, ceil_mode=1), TypeError, "ceil_mode"),
    (dict(kernel_size=2, return_indices="yes"), TypeError, "return_indices"),
    (dict(kernel_size=2, padding=1, dilation=6), ValueError, "only padding"),
])
def test_max_pool2d_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        max_pool2d(np.ones((1, 1, 5, 5)), **kwargs)


@pytest.mark.parametrize("x, error, match", [
    (np.ones((1, 5, 5)), ValueError, "4-D"),
    (np.ones((1, 0, 5, 5)), ValueError, "empty"),
    (np.ones((1, 1, 5, 5), complex), TypeError, "complex"),
    (np.array([["a"]]), TypeError, "dtype"),
])
def test_pooling_rejects_bad_inputs(x, error, match):
    with pytest.raises(error, match=match):
        max_pool2d(x, 2)
    with pytest.raises(error, match=match):
        avg_pool2d(x, 2)


def test_avg_pool_rejects_bad_arguments():
    x = np.ones((1, 1, 5, 5))
    with pytest.raises(ValueError, match="holds only padding: padding=2"):
        avg_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="output"):
        avg_pool1d(x[:, :, 0], 7)
    with pytest.raises(ValueError, match="divisor_override"):
        avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match="count_include_pad"):
        avg_pool2d(x, 2, count_include_pad=None)
    with pytest.raises(ValueError, match="grad_out must have"):
        avg_pool2d_backward(np.ones((1, 1, 3, 3)), x.shape, 2)
    with pytest.raises(ValueError, match="input_shape"):
        avg_pool2d_backward(np.ones((1, 1, 2, 2)), (1, 5, 5), 2)
    with pytest.raises(ValueError, match="grad_out must have"):
        global_avg_pool2d_backward(np.ones((1, 2, 1, 1)), x.shape)


def test_max_pool_backward_rejects_bad_switches():
    x = np.ones((1, 2, 4, 4))
    out, idx = max_pool2d(x, 2, return_indices=True)
    with pytest.raises(ValueError, match="indices must have shape"):
        max_pool2d_backward(out, idx[:, :1], x.shape)
    with pytest.raises(ValueError, match=r"holds 2\d, outside \[0, 16\)"):
        max_pool2d_backward(out, idx + 16, x.shape)
    with pytest.raises(ValueError, match="holds -1"):
        max_pool2d_backward(out, idx - 1, x.shape)
    with pytest.raises(TypeError, match="integer"):
        max_pool2d_backward(out, idx.astype(np.float64), x.shape)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        max_pool2d_backward(out, idx, (1, 3, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        max_pool2d_backward(out, idx, (1, 2, 4))
    with pytest.raises(ValueError, match="input_shape"):
        max_pool1d_backward(out[:, :, 0], idx[:, :, 0], (1, 2, 0))


def test_unpool_rejects_bad_switches_and_sizes():
    x = np.ones((1, 2, 2, 2))
    idx = np.zeros((1, 2, 2, 2), np.int64)
    with pytest.raises(ValueError, match="indices must have shape"):
        max_unpool2d(x, idx[..., :1], 2)
    with pytest.raises(ValueError, match=r"holds 16, outside \[0, 16\)"):
        max_unpool2d(x, idx + 16, 2)
    with pytest.raises(ValueError, match="holds -3"):
        max_unpool2d(x, idx - 3, 2)
    with pytest.raises(ValueError, match=r"holds 20, outside \[0, 20\)"):
        max_unpool2d(x, idx + 20, 2, output_size=(4, 5))
    with pytest.raises(TypeError, match="integer"):
        max_unpool2d(x, idx.astype(bool), 2)
    with pytest.raises(ValueError, match="strictly between 2 and 6"):
        max_unpool2d(x, idx, 2, output_size=(6, 4))
    with pytest.raises(ValueError, match="output_size must have"):
        max_unpool2d(x, idx, 2, output_size=(4,))
    with pytest.raises(ValueError, match="< 1"):
        max_unpool2d(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), int), 1, padding=1)
    with pytest.raises(ValueError, match="kernel_size"):
        max_unpool1d(x[:, :, 0], idx[:, :, 0], 0)
    big = np.full((1, 2, 2, 2), np.iinfo(np.uint64).max, np.uint64)
    with pytest.raises(ValueError, match="int64"):
        max_unpool2d(x, big, 2)
    with pytest.raises(ValueError, match="outside"):
        max_unpool2d_backward(np.ones((1, 2, 4, 4)), idx + 16)


# -------------------------------------------------------------------- PyTorch parity


MAX_CASES = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((2, 3, 9, 11), 2, 2, 0, 1, True),
    ((2, 3, 13, 13), 3, 2, 1, 1, False),
    ((2, 3, 13, 14), 3, 2, 1, 1, True),
    ((1, 2, 10, 12), (3, 2), (2, 1), (1, 1), (2, 1), True),
    ((1, 2, 17, 9), 4, 3, 2, 2, False),
    ((1, 1, 7, 7), 3, 1, 1, 1, True),
]


@pytest.mark.parametrize("shape, k, s, p, d, ceil_mode", MAX_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_matches_torch_values_indices_and_gradient(shape, k, s, p, d, ceil_mode,
                                                             dtype):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).integers(-3, 4, size=shape).astype(dtype)  # with ties
    x.reshape(-1)[::17] = np.nan
    out, idx = max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    tx = torch.from_numpy(x).requires_grad_(True)
    t_out, t_idx = torch.nn.functional.max_pool2d(tx, k, s, p, d, ceil_mode,
                                                  return_indices=True)
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())
    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(max_pool2d_backward(g, idx, x.shape), tx.grad.numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("length, k, s, p, d, ceil_mode", [
    (10, 2, None, 0, 1, False), (11, 3, 2, 1, 1, True), (16, 4, 3, 2, 2, True)])
def test_max_pool1d_matches_torch(length, k, s, p, d, ceil_mode):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).integers(-3, 4, size=(2, 3, length)).astype(np.float32)
    out, idx = max_pool1d(x, k, s, p, d, ceil_mode, return_indices=True)
    t_out, t_idx = torch.nn.functional.max_pool1d(torch.from_numpy(x), k, s, p, d, ceil_mode,
                                                  return_indices=True)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())


def test_switches_round_trip_between_pyxconv_and_torch_unpool():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    out, idx = max_pool2d(x, 3, 2, 1, return_indices=True)
    ours = max_unpool2d(out, idx, 3, 2, 1, output_size=(9, 9))
    theirs = F.max_unpool2d(torch.from_numpy(out), torch.from_numpy(idx), 3, 2, 1,
                            output_size=(9, 9))
    np.testing.assert_array_equal(ours, theirs.numpy())
    t_out, t_idx = F.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    np.testing.assert_array_equal(
        max_unpool2d(t_out.numpy(), t_idx.numpy(), 2, output_size=(9, 9)),
        F.max_unpool2d(t_out, t_idx, 2, output_size=(9, 9)).numpy())
    out1, idx1 = max_pool1d(x[:, :, 0], 2, return_indices=True)
    np.testing.assert_array_equal(
        max_unpool1d(out1, idx1, 2, output_size=(9,)),
        F.max_unpool1d(torch.from_numpy(out1), torch.from_numpy(idx1), 2,
                       output_size=(9,)).numpy())


@pytest.mark.parametrize("shape, k, s, p, ceil_mode, cip, override", [
    ((2, 3, 8, 8), 2, None, 0, False, True, None),
    ((2, 3, 9, 11), 3, 2, 1, True, True, None),
    ((2, 3, 9, 11), 3, 2, 1, True, False, None),
    ((1, 2, 10, 7), (3, 2), (2, 3), (1, 1), True, True, None),
    ((1, 2, 10, 7), 3, 2, 1, False, False, 4),
    ((2, 4, 7, 7), 7, None, 0, False, True, None),  # GoogLeNet's 7x7 average pool
])
def test_avg_pool2d_matches_torch_forward_and_backward(shape, k, s, p, ceil_mode, cip,
                                                       override):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = avg_pool2d(x, k, s, p, ceil_mode, cip, override)
    tx = torch.from_numpy(x).requires_grad_(True)
    t_out = torch.nn.functional.avg_pool2d(tx, k, s, p, ceil_mode, cip, override)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(avg_pool2d_backward(g, shape, k, s, p, ceil_mode, cip, override),
                               tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_avg_pool1d_and_global_avg_pool_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(0).standard_normal((2, 3, 15)).astype(np.float32)
    for args in [(2, None, 0, False, True), (3, 2, 1, True, False), (4, 3, 2, True, True)]:
        np.testing.assert_allclose(avg_pool1d(x, *args), F.avg_pool1d(torch.from_numpy(x),
                                                                      *args).numpy(),
                                   rtol=1e-5, atol=1e-6)
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(global_avg_pool2d(x),
                               F.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_output_size_rule_and_rejections_match_torch():
    """Every size, kernel, stride, padding, dilation and mode on a small grid."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for size in range(1, 9):
        x = np.ones((1, 1, 1, size), np.float32)
        tx = torch.from_numpy(x)
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(0, k // 2 + 1):
                    for d in range(1, 3):
                        for ceil_mode in (False, True):
                            args = ((1, k), (1, s), (0, p), (1, d), ceil_mode)
                            try:
                                expected = F.max_pool2d(tx, *args)
                            except RuntimeError:
                                expected = None
                            try:
                                ours = max_pool2d(x, *args)
                            except ValueError as exc:
                                if expected is not None:
                                    # only a window of pure padding, where torch gives -inf
                                    assert "only padding" in str(exc), (size, args)
                                    assert torch.isinf(expected).any(), (size, args)
                                continue
                            assert expected is not None, (size, args)
                            assert ours.shape == tuple(expected.shape), (size, args)
                            if d == 1:
                                avg = avg_pool2d(x, (1, k), (1, s), (0, p), ceil_mode)
                                t_avg = F.avg_pool2d(tx, (1, k), (1, s), (0, p), ceil_mode)
                                np.testing.assert_allclose(avg, t_avg.numpy(), rtol=1e-6)
