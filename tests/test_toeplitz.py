"""The Toeplitz view of convolution and the three views of its transpose (lecture 000)."""
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyxconv.functional import (
    conv1d,
    conv2d,
    conv2d_backward,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from pyxconv.teach import (
    MAX_MATRIX_ENTRIES,
    conv_matrix,
    conv_matrix_symbols,
    conv_transpose_matrix,
    dilate,
    dilate_and_flip_transpose,
    format_matrix,
    toeplitz_demo,
)

CONV = {1: conv1d, 2: conv2d, 3: conv3d}
TRANSPOSE = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}


def reference_conv(x, w, stride, pads, dilation, groups=1):
    """Cross-correlation of one sample x (C_in, *spatial) in plain loops; pads are pairs."""
    nd = x.ndim - 1
    c_out, cig = w.shape[:2]
    k = w.shape[2:]
    cog = c_out // groups
    padded = np.pad(x, [(0, 0)] + [tuple(p) for p in pads])
    out_sp = tuple((padded.shape[1 + i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1
                   for i in range(nd))
    y = np.zeros((c_out,) + out_sp)
    for co in range(c_out):
        gi = co // cog
        for o in np.ndindex(*out_sp):
            total = 0.0
            for cl in range(cig):
                for t in np.ndindex(*k):
                    idx = tuple(o[i] * stride[i] + t[i] * dilation[i] for i in range(nd))
                    total += padded[(gi * cig + cl,) + idx] * w[(co, cl) + t]
            y[(co,) + o] = total
    return y


@st.composite
def conv_cases(draw, nd=None):
    nd = nd or draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    sp = tuple(max(draw(st.integers(1, 6)), d[i] * (k[i] - 1) + 1 - sum(pads[i]))
               for i in range(nd))
    return nd, groups, c_in, c_out, k, s, d, pads, sp


# --------------------------------------------------------------------------- conv_matrix
@settings(deadline=None)
@given(conv_cases(), st.integers(0, 2**16))
def test_conv_matrix_times_x_is_the_convolution(case, seed):
    nd, groups, c_in, c_out, k, s, d, pads, sp = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c_in,) + sp)
    w = rng.standard_normal((c_out, c_in // groups) + k)
    M = conv_matrix(w, (c_in,) + sp, stride=s, padding=pads, dilation=d, groups=groups)
    ref = reference_conv(x, w, s, pads, d, groups)
    np.testing.assert_allclose(M @ x.ravel(), ref.ravel(), atol=1e-12)
    fast = CONV[nd](x[None], w, stride=s, padding=pads, dilation=d, groups=groups)
    np.testing.assert_allclose(M @ x.ravel(), fast.ravel(), atol=1e-12)


def test_conv_matrix_is_toeplitz_in_1d_and_doubly_block_toeplitz_in_2d():
    T = conv_matrix(np.arange(1.0, 4.0), 7)
    # Toeplitz: constant along every diagonal
    for i in range(1, T.shape[0]):
        np.testing.assert_array_equal(T[i, 1:], T[i - 1, :-1])
    w = np.arange(1.0, 10.0).reshape(3, 3)
    M = conv_matrix(w, (5, 6))  # 3x4 outputs; blocks of 4 rows x 6 columns
    blocks = M.reshape(3, 4, 5, 6).transpose(0, 2, 1, 3)  # [out row, in row] blocks
    for i in range(3):
        for j in range(5):
            expected = conv_matrix(w[j - i], 6) if 0 <= j - i < 3 else np.zeros((4, 6))
            np.testing.assert_array_equal(blocks[i, j], expected)
            if i and j:  # block Toeplitz
                np.testing.assert_array_equal(blocks[i, j], blocks[i - 1, j - 1])


def test_conv_matrix_multichannel_layout():
    w = np.arange(1.0, 13.0).reshape(2, 3, 2)  # C_out 2, C_in 3, k 2
    M = conv_matrix(w, (3, 4))
    assert M.shape == (2 * 3, 3 * 4)
    # block (co, ci) is the Toeplitz matrix of the filter w[co, ci]
    for co in range(2):
        for ci in range(3):
            np.testing.assert_array_equal(M[co * 3:(co + 1) * 3, ci * 4:(ci + 1) * 4],
                                          conv_matrix(w[co, ci], 4))


def test_we01_lecture_values():
    x = np.arange(1, 8)
    np.testing.assert_array_equal(conv_matrix([1, 2, 3], 7) @ x, [14, 20, 26, 32, 38])
    np.testing.assert_array_equal(conv_matrix([1, 2, 3], 7, padding=[(0, 1)]) @ x,
                                  [14, 20, 26, 32, 38, 20])
    np.testing.assert_array_equal(conv_matrix([1, 2, 3], 7, stride=2) @ x, [14, 26, 38])
    # stride 2 keeps rows 0, 2, 4 of the stride-1 matrix
    np.testing.assert_array_equal(conv_matrix([1, 2, 3], 7, stride=2),
                                  conv_matrix([1, 2, 3], 7)[::2])


def test_we01_and_we02_symbolic_matrices_match_the_slides():
    slide01 = ["a b c 0 0 0 0", "0 a b c 0 0 0", "0 0 a b c 0 0", "0 0 0 a b c 0",
               "0 0 0 0 a b c", "0 0 0 0 0 a b"]  # row 2 as corrected in the catalog
    assert format_matrix(conv_matrix_symbols("abc", 7, padding=[(0, 1)])).splitlines() \
        == slide01
    slide02 = ["b a 0 0 0 0 0", "c b a 0 0 0 0", "0 c b a 0 0 0", "0 0 c b a 0 0",
               "0 0 0 c b a 0", "0 0 0 0 c b a", "0 0 0 0 0 c b"]  # rows 3, 4 corrected
    assert format_matrix(conv_matrix_symbols("abc", 7, padding=1).T).splitlines() == slide02


def test_symbols_in_2d_and_with_long_names():
    m = conv_matrix_symbols([["a", "b"], ["c", "d"]], (2, 3))
    assert m.tolist() == [["a", "b", "0", "c", "d", "0"], ["0", "a", "b", "0", "c", "d"]]
    assert conv_matrix_symbols(["w0", "w1"], 3).tolist() == [["w0", "w1", "0"],
                                                              ["0", "w0", "w1"]]


# --------------------------------------------------------------------------- transposes
@settings(deadline=None)
@given(conv_cases(), st.integers(0, 2**16))
def test_conv_transpose_is_the_transposed_matrix(case, seed):
    nd, groups, c_in, c_out, k, s, d, pads, sp = case
    p = tuple(min(a, b) for a, b in pads)  # symmetric padding, as transposed convs have
    rng = np.random.default_rng(seed)
    x_shape = tuple((sp[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd))
    if min(x_shape) < 1:
        return
    op = tuple((sp[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) % s[i] for i in range(nd))
    # conv: C_in -> C_out over sp; its transpose: C_out -> C_in over x_shape -> sp
    w = rng.standard_normal((c_out, c_in // groups) + k)
    M = conv_matrix(w, (c_in,) + sp, stride=s, padding=p, dilation=d, groups=groups)
    y = rng.standard_normal((1, c_out) + x_shape)
    out = TRANSPOSE[nd](y, w, stride=s, padding=p, output_padding=op, dilation=d,
                        groups=groups)
    assert out.shape == (1, c_in) + sp
    np.testing.assert_allclose(out.ravel(), M.T @ y.ravel(), atol=1e-12)
    Mt = conv_transpose_matrix(w, (c_out,) + x_shape, stride=s, padding=p, output_padding=op,
                               dilation=d, groups=groups)
    np.testing.assert_array_equal(Mt, M.T)


def test_conv_transpose_matrix_with_output_padding_beyond_the_stride():
    # output_padding 1 >= stride 1 is allowed by dilation 2: the extra output is a column
    # that the convolution back would see but x has no entry for
    w = np.array([1.0, 2.0, 3.0])
    Mt = conv_transpose_matrix(w, 3, padding=2, output_padding=1, dilation=2)
    y = np.array([1.0, -2.0, 4.0])
    np.testing.assert_allclose(
        Mt @ y, conv_transpose1d(y.reshape(1, 1, 3), w.reshape(1, 1, 3), padding=2,
                                 output_padding=1, dilation=2).ravel())


@st.composite
def transpose_cases(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    sp = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    p = tuple(draw(st.integers(0, 3)) for _ in range(nd))
    op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    if min((sp[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1
           for i in range(nd)) < 1:
        p = (0,) * nd
    return nd, groups, c_in, c_out, k, s, d, p, op, sp


@settings(deadline=None)
@given(transpose_cases(), st.integers(0, 2**16))
def test_dilate_and_flip_equals_conv_transpose(case, seed):
    """Including padding > dilation * (k - 1), where the 'padding' becomes a crop."""
    nd, groups, c_in, c_out, k, s, d, p, op, sp = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c_in) + sp)
    w = rng.standard_normal((c_in, c_out // groups) + k)
    b = rng.standard_normal(c_out)
    kw = dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
    np.testing.assert_allclose(dilate_and_flip_transpose(x, w, b, **kw),
                               TRANSPOSE[nd](x, w, b, **kw), atol=1e-12)


def test_we02_lecture_values_three_ways():
    w = np.array([1, 2, 3])
    y = np.array([1, -1, 2, 0, 3, 1, -2])
    expected = [1, 3, 1, 9, 7, 9, -1]
    np.testing.assert_array_equal(conv_matrix(w, 7, padding=1).T @ y, expected)
    np.testing.assert_array_equal(conv_transpose1d(y[None, None], w[None, None],
                                                   padding=1).ravel(), expected)
    np.testing.assert_array_equal(dilate_and_flip_transpose(y[None, None], w[None, None],
                                                            padding=1).ravel(), expected)
    g = np.array([1, -2, 3])
    expected = [1, 2, 1, -4, -3, 6, 9]
    np.testing.assert_array_equal(conv_matrix(w, 7, stride=2).T @ g, expected)
    np.testing.assert_array_equal(conv_transpose1d(g[None, None], w[None, None],
                                                   stride=2).ravel(), expected)
    np.testing.assert_array_equal(dilate(g[None, None], 2).ravel(), [1, 0, -2, 0, 3])
    by_hand = conv1d(np.pad(dilate(g[None, None], 2), ((0, 0), (0, 0), (2, 2))),
                     w[::-1][None, None])
    np.testing.assert_array_equal(by_hand.ravel(), expected)


def test_conv_backward_input_gradient_is_transposed_conv_with_the_same_filter():
    """Lecture 000: backprop to the neurons = transposed conv with the same filter."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 2))
    for s, p, d in [(1, 0, 1), (2, 1, 1), (2, 0, 2), (3, 1, 1)]:
        up = rng.standard_normal(conv2d(x, w, stride=s, padding=p, dilation=d).shape)
        grad_x = conv2d_backward(up, x, w, stride=s, padding=p, dilation=d)[0]
        op = tuple((x.shape[2 + i] + 2 * p - d * (w.shape[2 + i] - 1) - 1) % s
                   for i in range(2))
        np.testing.assert_allclose(conv_transpose2d(up, w, stride=s, padding=p,
                                                    output_padding=op, dilation=d),
                                   grad_x, atol=1e-12)
        # and the matrix view: grad_x = M.T @ up
        M = conv_matrix(w, x.shape[1:], stride=s, padding=p, dilation=d)
        np.testing.assert_allclose((M.T @ up[1].ravel()).reshape(x.shape[1:]), grad_x[1],
                                   atol=1e-12)


def test_we04_input_gradient_by_transposed_conv():
    """WE-04: the WE-07 layer with L = 0.5 * sum(o**2); dL/dx = conv_transpose2d(o, W)."""
    x = np.array([[[1, 1, 0, 2, 1], [2, 1, 0, 2, 0], [2, 2, 1, 2, 2], [0, 2, 2, 1, 2],
                   [2, 1, 0, 0, 2]],
                  [[1, 2, 1, 0, 2], [2, 0, 0, 0, 2], [0, 2, 0, 1, 0], [1, 2, 0, 1, 2],
                   [1, 0, 2, 0, 1]],
                  [[2, 0, 0, 0, 1], [0, 0, 0, 1, 0], [1, 1, 0, 2, 1], [0, 0, 0, 2, 1],
                   [0, 1, 1, 2, 2]]])[None]
    w = np.array([[[[-1, 0, 0], [-1, -1, 1], [0, 1, -1]],
                   [[-1, 0, -1], [1, -1, 0], [0, 1, -1]],
                   [[0, -1, -1], [1, 1, -1], [-1, -1, -1]]],
                  [[[0, 1, 1], [1, 1, -1], [-1, 1, -1]],
                   [[1, -1, 0], [1, 1, 1], [-1, 1, 0]],
                   [[0, 1, -1], [0, 1, 1], [1, 0, 0]]]])
    o = conv2d(x, w, np.array([1, 0]), stride=2, padding=1)
    grad_x = conv_transpose2d(o, w, stride=2, padding=1)
    np.testing.assert_array_equal(grad_x[0, 0], [[3, -4, -1, 10, 9], [17, -5, 3, -2, 13],
                                                 [6, 1, 7, 1, 8], [6, 7, 10, 1, 15],
                                                 [8, 10, 18, -10, 8]])
    np.testing.assert_array_equal(grad_x[0, 2], [[13, 3, -1, -3, 5], [1, -8, 7, 8, 10],
                                                 [2, 3, 1, 7, 8], [10, 9, 21, 11, 8],
                                                 [0, -1, 0, 17, 6]])
    # the lecture's recipe: dilate, pad 2, flipped + swapped filters, crop the padding 1
    swapped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    full = conv2d(np.pad(dilate(o, 2), ((0, 0), (0, 0), (2, 2), (2, 2))), swapped)
    np.testing.assert_array_equal(full[:, :, 1:-1, 1:-1], grad_x)


def test_toeplitz_demo_prints_both_worked_examples():
    buf = io.StringIO()
    toeplitz_demo(file=buf)
    text = buf.getvalue()
    assert "WE-01" in text and "WE-02" in text
    assert "0 0 0 0 0 a b" in text and "0 0 0 0 0 c b" in text
    assert "[14 20 26 32 38]" in text
    assert text.count("[ 1  3  1  9  7  9 -1]") == 3
    assert text.count("[ 1  2  1 -4 -3  6  9]") == 3


# --------------------------------------------------------------------------- bad input
def test_conv_matrix_refuses_large_sizes_clearly():
    with pytest.raises(ValueError, match=r"3844 x 4096 = 15745024 entries, more than "
                                         r"max_entries=1048576"):
        conv_matrix(np.ones((1, 1, 3, 3)), (64, 64))
    assert MAX_MATRIX_ENTRIES == 2**20
    assert conv_matrix(np.ones((1, 1, 3, 3)), (64, 64), max_entries=2**24).shape \
        == (3844, 4096)


@pytest.mark.parametrize("call, error, match", [
    (lambda: conv_matrix(np.ones((2, 3, 3)), (2, 5)), ValueError, "needs C_in=3"),
    (lambda: conv_matrix(np.ones((2, 3, 3)), (3, 5, 5)), ValueError, "input_shape must be"),
    (lambda: conv_matrix(np.ones((3, 3)), (2, 2)), ValueError, "kernel does not fit"),
    (lambda: conv_matrix(np.ones((1, 1, 1, 1, 1, 1)), 3), ValueError, "1 to 3 spatial"),
    (lambda: conv_matrix([1, 2], 0), ValueError, "input_shape must be >= 1"),
    (lambda: conv_matrix([1, 2], 5, stride=0), ValueError, "stride must be >= 1"),
    (lambda: conv_matrix([1, 2], 5, max_entries=0), ValueError, "max_entries must be >= 1"),
    (lambda: conv_matrix(np.ones((3, 2, 2)), 5, groups=2), ValueError, "must divide"),
    (lambda: conv_matrix(np.ones(3, complex), 5), TypeError, "complex"),
    (lambda: conv_matrix_symbols("", 5), ValueError, "names"),
    (lambda: conv_matrix_symbols([["a", "b"], ["c"]], (3, 3)), ValueError, "names"),
    (lambda: conv_transpose_matrix([1, 2, 3], 3, stride=2, output_padding=2), ValueError,
     "smaller than either stride or dilation"),
    (lambda: conv_transpose_matrix(np.ones((2, 1, 3)), (3, 4)), ValueError, "C_in=3"),
    (lambda: dilate_and_flip_transpose(np.ones((1, 2, 3)), np.ones((3, 1, 2))), ValueError,
     "weight has 3 input channels"),
    (lambda: dilate_and_flip_transpose(np.ones((1, 1, 3)), np.ones((1, 1, 2)), stride=2,
                                       output_padding=2), ValueError, "smaller than either"),
    (lambda: dilate_and_flip_transpose(np.ones((1, 1, 3)), np.ones((1, 1, 3)), padding=3),
     ValueError, "would be -1 < 1"),
    (lambda: dilate(np.ones(3), 2), ValueError, "at least one spatial axis"),
    (lambda: format_matrix(np.ones((2, 2, 2))), ValueError, "2-D"),
])
def test_bad_input_raises_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()
