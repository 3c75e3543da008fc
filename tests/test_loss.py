"""Softmax, log-softmax, cross-entropy and binary cross-entropy: values, gradients, edge cases."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import numerical_gradient
import pyxconv
from pyxconv.functional import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    log_softmax,
    log_softmax_backward,
    sigmoid_binary_cross_entropy,
    softmax,
    softmax_backward,
    softmax_cross_entropy,
)

# ---------------------------------------------------------------- plain references


def ref_log_softmax(z, axis=-1):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=axis, keepdims=True)
    return (z - m) - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def ref_cross_entropy(z, target, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """Loops over samples; logits (N, C, ...) or (C,), float64 throughout."""
    z = np.asarray(z, dtype=np.float64)
    unbatched = z.ndim == 1
    if unbatched:
        z = z[None]
        target = np.asarray(target)[None]
    z = np.moveaxis(z, 1, -1)
    n_classes = z.shape[-1]
    rows = z.reshape(-1, n_classes)
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    probabilities = np.asarray(target).dtype.kind == "f"
    losses, denom = [], 0.0
    if probabilities:
        t_rows = np.moveaxis(np.asarray(target, dtype=np.float64), 1, -1).reshape(-1, n_classes)
    else:
        t_rows = np.asarray(target).reshape(-1)
    for i, row in enumerate(rows):
        logp = ref_log_softmax(row)
        if probabilities:
            t = (1 - eps) * t_rows[i] + eps / n_classes
            losses.append(-np.sum(w * t * logp))
            denom += 1
        else:
            c = int(t_rows[i])
            if c == ignore_index:
                losses.append(0.0)
                continue
            nll = -w[c] * logp[c]
            smooth = -np.sum(w * logp)
            losses.append((1 - eps) * nll + eps / n_classes * smooth)
            denom += w[c]
    losses = np.array(losses)
    if reduction == "none":
        return losses.reshape(z.shape[:-1])[0] if unbatched else losses.reshape(z.shape[:-1])
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / denom if denom else math.nan


def ref_bce(x, y, weight=None, pos_weight=None, reduction="mean"):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    q = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    log_sig = -np.logaddexp(0, -x)
    log_one_minus = -np.logaddexp(0, x)
    loss = -(q * y * log_sig + (1 - y) * log_one_minus)
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


RNG = np.random.default_rng(20261123)

# ---------------------------------------------------------------- lecture examples


def test_we30_softmax_gives_the_lecture_probabilities():
    # WE-30: any logits z = log(p) + const reproduce P(Dog, Cat, Rat) = 0.08, 0.91, 0.01
    z = np.array([-2.5257, -0.0943, -4.6052])
    np.testing.assert_allclose(softmax(z), [0.08, 0.91, 0.01], atol=5e-5)
    np.testing.assert_allclose(softmax(z + 17.0), [0.08, 0.91, 0.01], atol=5e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_we30_cross_entropy_is_minus_log_of_the_true_class_probability(dtype):
    z = np.log(np.array([[0.08, 0.91, 0.01]])).astype(dtype)
    loss, grad = softmax_cross_entropy(z, [1])
    assert loss.dtype == dtype
    assert float(loss) == pytest.approx(0.0943, abs=5e-5)     # -ln 0.91
    assert float(cross_entropy(z, [0])) == pytest.approx(2.5257, abs=5e-5)  # -ln 0.08
    np.testing.assert_allclose(grad, [[0.08, 0.91 - 1, 0.01]], atol=1e-6)


def test_cs231n_sanity_check_ten_classes_tiny_logits_give_log_10():
    z = 1e-4 * RNG.standard_normal((500, 10))
    target = RNG.integers(0, 10, 500)
    assert float(cross_entropy(z, target)) == pytest.approx(math.log(10), abs=1e-3)
    assert float(cross_entropy(z.astype(np.float32), target)) == pytest.approx(
        math.log(10), abs=1e-3)


# ---------------------------------------------------------------- softmax / log-softmax


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_softmax_and_log_softmax_match_the_reference_on_any_axis(dtype, axis):
    x = (3 * RNG.standard_normal((4, 5, 6))).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    expected = ref_log_softmax(x, axis)
    got = log_softmax(x, axis)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(softmax(x, axis), np.exp(expected), rtol=tol * 4, atol=tol)


def test_float32_exponential_is_accurate_over_its_whole_range(isa):
    # the kernel's own vectorised expf: exponents from 0 down past the underflow point,
    # on each instruction set's instance of the row loops (softmax_kernels.h)
    from pyxconv._kernels import _softmax
    assert _softmax.get_isa() == isa
    x = np.concatenate([np.linspace(-100, 0, 200001), [-np.inf, -87.0, -87.5, -88.0]])
    x = x.astype(np.float32)[None]
    p = softmax(x)[0].astype(np.float64)
    ref = np.exp(ref_log_softmax(x.astype(np.float64))[0])
    # relative accuracy while exp(x - m) is a normal float32; below exp(-87)
    # (divided by the row sum, about 2000 here) the result may be 0
    np.testing.assert_allclose(p, ref, rtol=3e-7, atol=1.7e-38 / 2000)
    assert p[-4] == 0.0  # exp(-inf)


def test_float64_exponential_is_accurate_to_a_few_ulp_over_its_whole_range(isa):
    # the kernel's float64 exp: rows whose maximum is 0, so softmax = exp(x) / sum
    x = RNG.uniform(-740, 0, (2000, 3))
    x[:, 0] = 0.0
    x[:4, 1:] = [[-np.inf, -708.0], [-708.5, -745.0], [-1e-300, -0.0], [-np.inf, -np.inf]]
    e = np.exp(x)
    ref = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(x), ref, rtol=1e-15, atol=3.3e-308)
    np.testing.assert_allclose(log_softmax(x), ref_log_softmax(x), rtol=1e-15, atol=1e-15)


@given(st.integers(1, 6), st.integers(1, 40), st.floats(-1e6, 1e6),
       st.sampled_from([np.float32, np.float64]))
@settings(deadline=None)
def test_softmax_rows_sum_to_one_and_ignore_a_shift(rows, classes, shift, dtype):
    # a local generator: the shared one would leave the later tests' data
    # depending on how many examples hypothesis ran
    x = np.random.default_rng(rows * 100 + classes).standard_normal((rows, classes))
    x = x.astype(dtype)
    p = softmax(x)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=tol)
    assert np.all(p >= 0)
    if abs(shift) < 1e3:  # beyond, x + shift loses x's digits in float32
        np.testing.assert_allclose(softmax(x + dtype(shift)), p, rtol=50 * tol, atol=tol)


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_backward_and_log_softmax_backward_match_numerical_gradients(axis):
    x = RNG.standard_normal((3, 4))
    g = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(
        softmax_backward(g, softmax(x, axis), axis),
        numerical_gradient(lambda v: np.sum(g * softmax(v, axis)), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        log_softmax_backward(g, log_softmax(x, axis), axis),
        numerical_gradient(lambda v: np.sum(g * log_softmax(v, axis)), x), rtol=1e-6,
        atol=1e-8)


def test_softmax_extreme_and_equal_scores():
    assert np.array_equal(softmax(np.array([1e8, 1e8])), [0.5, 0.5])
    assert np.array_equal(softmax(np.array([1e8, -1e8])), [1.0, 0.0])
    np.testing.assert_allclose(log_softmax(np.array([1e8, -1e8], np.float32)), [0, -2e8])
    assert np.array_equal(softmax(np.array([[3.0]])), [[1.0]])


# ---------------------------------------------------------------- cross-entropy: reference


OPTIONS = list(itertools.product(
    [None, "w"], [0.0, 0.1, 1.0], ["mean", "sum", "none"], [False, True]))


@pytest.mark.parametrize("weight,eps,reduction,with_ignored", OPTIONS)
@pytest.mark.parametrize("shape", [(6, 5), (5,), (3, 4, 2, 3)])
def test_cross_entropy_with_class_indices_matches_the_reference(shape, weight, eps, reduction,
                                                                with_ignored):
    z = 2 * RNG.standard_normal(shape)
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = RNG.integers(0, n_classes, target_shape)
    if with_ignored:
        target = np.where(RNG.random(target_shape) < 0.3, -100, target)
    w = RNG.uniform(0.1, 2.0, n_classes) if weight else None
    expected = ref_cross_entropy(z, target, w, -100, reduction, eps)
    loss = cross_entropy(z, target, w, reduction=reduction, label_smoothing=eps)
    loss2, grad = softmax_cross_entropy(z, target, w, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(loss, loss2)
    assert grad.shape == z.shape
    if reduction == "none":
        assert np.shape(loss) == target_shape

    def total(v):
        out = ref_cross_entropy(v, target, w, -100, reduction, eps)
        return np.sum(out)

    if not (reduction == "mean" and math.isnan(expected)):
        np.testing.assert_allclose(grad, numerical_gradient(total, z), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("weight,eps,reduction", [o[:3] for o in OPTIONS if not o[3]])
@pytest.mark.parametrize("shape", [(6, 5), (5,), (3, 4, 2, 3)])
def test_cross_entropy_with_class_probabilities_matches_the_reference(shape, weight, eps,
                                                                      reduction):
    z = 2 * RNG.standard_normal(shape)
    class_axis = 0 if len(shape) == 1 else 1
    n_classes = shape[class_axis]
    t = RNG.random(shape)
    t /= t.sum(axis=class_axis, keepdims=True)
    w = RNG.uniform(0.1, 2.0, n_classes) if weight else None
    expected = ref_cross_entropy(z, t, w, -100, reduction, eps)
    loss, grad = softmax_cross_entropy(z, t, w, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        grad, numerical_gradient(lambda v: np.sum(ref_cross_entropy(v, t, w, -100, reduction,
                                                                    eps)), z),
        rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(500, 7), (70, 31), (70, 32), (33, 100)])
def test_short_rows_in_blocks_and_long_rows_one_by_one_match_the_reference(shape, dtype, isa):
    # the kernel takes rows shorter than 32 classes in blocks of ~2048 values
    # (the last block partial) and longer rows one at a time
    z = (4 * RNG.standard_normal(shape)).astype(dtype)
    target = np.where(RNG.random(shape[0]) < 0.2, -100, RNG.integers(0, shape[1], shape[0]))
    w = RNG.uniform(0.1, 2.0, shape[1]).astype(dtype)
    probabilities = RNG.dirichlet(np.ones(shape[1]), shape[0]).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for t in (target, probabilities):
        expected = ref_cross_entropy(z, t, w, reduction="none", eps=0.3)
        loss, grad = softmax_cross_entropy(z, t, w, reduction="none", label_smoothing=0.3)
        np.testing.assert_allclose(loss, expected, **tol)
        np.testing.assert_array_equal(cross_entropy(z, t, w, reduction="none",
                                                    label_smoothing=0.3), loss)
        rows = RNG.integers(0, shape[0], 3)  # numerical gradient of a few rows
        for i in rows:
            g = numerical_gradient(
                lambda v: ref_cross_entropy(v, t[i:i + 1], w, reduction="sum", eps=0.3),
                z[i:i + 1].astype(np.float64))
            np.testing.assert_allclose(grad[i:i + 1], g, rtol=1e-4 if dtype == np.float32
                                       else 1e-6, atol=1e-5 if dtype == np.float32 else 1e-8)
    np.testing.assert_allclose(softmax(z), np.exp(ref_log_softmax(z)), **tol)
    np.testing.assert_allclose(log_softmax(z), ref_log_softmax(z), **tol)


@given(st.integers(1, 8), st.integers(1, 12), st.sampled_from(["mean", "sum", "none"]),
       st.floats(0, 1), st.booleans(), st.booleans(), st.integers(0, 2**31))
@settings(deadline=None)
def test_fused_loss_and_gradient_match_the_reference_for_random_problems(
        n, c, reduction, eps, use_weight, float32, seed):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if float32 else np.float64
    z = (5 * rng.standard_normal((n, c))).astype(dtype)
    target = rng.integers(-1, c, n)  # -1 plays ignore_index
    w = rng.uniform(0, 3, c).astype(dtype) if use_weight else None
    loss, grad = softmax_cross_entropy(z, target, w, ignore_index=-1, reduction=reduction,
                                       label_smoothing=eps)
    expected = ref_cross_entropy(z, target, w, -1, reduction, eps)
    tol = 2e-5 if float32 else 1e-11
    np.testing.assert_allclose(np.asarray(loss, np.float64), expected, rtol=tol, atol=tol)
    assert grad.dtype == dtype and loss.dtype == dtype
    if not np.all(np.isfinite(expected)):
        return
    # the gradient of a mean loss sums to zero over the classes in each row
    # when the class weights do not enter the smoothing term
    if w is None or eps == 0:
        np.testing.assert_allclose(grad.astype(np.float64).sum(axis=1), 0, atol=10 * tol)


# ---------------------------------------------------------------- extreme logits


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e4, 1e8])
def test_huge_logits_give_finite_exact_losses(dtype, scale):
    # the known failure elsewhere: CrossEntropyLoss returned 0 instead of log 2 for [1, 1] * 1e8
    equal = np.array([[1.0, 1.0]], dtype) * dtype(scale)
    loss, grad = softmax_cross_entropy(equal, [0])
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6)
    np.testing.assert_allclose(grad, [[-0.5, 0.5]], rtol=1e-6)
    opposed = np.array([[1.0, -1.0], [-1.0, 1.0]], dtype) * dtype(scale)
    loss, grad = softmax_cross_entropy(opposed, [1, 1], reduction="none")
    np.testing.assert_allclose(loss, [2 * scale, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(grad, np.array([[1.0, -1.0], [0.0, 0.0]], dtype))
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_equal_logits_and_a_single_class(dtype):
    z = np.full((4, 7), 3.25, dtype)
    loss, grad = softmax_cross_entropy(z, [0, 1, 2, 6])
    assert float(loss) == pytest.approx(math.log(7), rel=1e-6)
    one = np.array([[5.0], [-1e8]], dtype)
    loss, grad = softmax_cross_entropy(one, [0, 0])
    assert float(loss) == 0.0
    np.testing.assert_array_equal(grad, np.zeros((2, 1), dtype))


def test_nan_logits_give_nan_loss_and_nan_gradient_row_not_an_error():
    z = np.array([[np.nan, 1.0, 2.0], [0.0, 1.0, 2.0], [1.0, 2.0, np.nan]], np.float32)
    loss, grad = softmax_cross_entropy(z, [1, 2, 0], reduction="none")
    assert np.isnan(loss[0]) and np.isnan(loss[2]) and np.isfinite(loss[1])
    assert np.all(np.isnan(grad[0])) and np.all(np.isfinite(grad[1]))
    assert np.isnan(cross_entropy(z, [1, 2, 0]))
    assert np.all(np.isnan(softmax(z)[2])) and np.all(np.isnan(softmax(z.astype(float))[0]))


def test_every_target_ignored_gives_nan_mean_and_zero_gradient_like_pytorch():
    loss, grad = softmax_cross_entropy(np.ones((3, 4)), [-100, -100, -100])
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, np.zeros((3, 4)))
    assert float(cross_entropy(np.ones((3, 4)), [-100] * 3, reduction="sum")) == 0.0


def test_empty_batch():
    loss, grad = softmax_cross_entropy(np.zeros((0, 5)), np.zeros(0, np.int64))
    assert np.isnan(loss) and grad.shape == (0, 5)
    assert cross_entropy(np.zeros((0, 5)), np.zeros(0, np.int64), reduction="none").shape == (0,)
    assert softmax(np.zeros((0, 5))).shape == (0, 5)


# ---------------------------------------------------------------- threads, layouts, dtypes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,probabilities", [((4096, 10), False), ((64, 1000), False),
                                                 ((700, 77), True), ((8000, 5), True)])
def test_results_are_bitwise_identical_at_one_and_two_threads(dtype, shape, probabilities):
    z = (4 * RNG.standard_normal(shape)).astype(dtype)
    if probabilities:
        target = RNG.dirichlet(np.ones(shape[1]), shape[0]).astype(dtype)
    else:
        target = RNG.integers(0, shape[1], shape[0])
    results = []
    for n in (1, 2):
        with pyxconv.num_threads(n):
            loss, grad = softmax_cross_entropy(z, target, label_smoothing=0.1)
            results.append((loss, grad, cross_entropy(z, target, reduction="none"),
                            softmax(z), log_softmax(z)))
    for a, b in zip(*results):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(37, 3), (411, 10), (5, 200)])
def test_kernel_gives_the_same_bits_with_one_two_and_three_threads_on_small_inputs(shape,
                                                                                   dtype):
    from pyxconv._kernels import _softmax as kernel
    z = (3 * RNG.standard_normal(shape)).astype(dtype)
    target = RNG.integers(-1, shape[1], shape[0])
    w = RNG.uniform(0, 2, shape[1]).astype(dtype)
    results = []
    for n_threads in (1, 2, 3):
        row_loss = np.empty(shape[0])
        grad = np.empty_like(z)
        totals = kernel.cross_entropy_index(z, target, w, 0.1, -1, row_loss, grad, True,
                                            n_threads)
        no_grad_loss = np.empty(shape[0])
        kernel.cross_entropy_index(z, target, w, 0.1, -1, no_grad_loss, None, True, n_threads)
        out = np.empty_like(z)
        kernel.softmax_rows(z, out, False, n_threads)
        results.append((totals, row_loss, grad, no_grad_loss, out))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_non_contiguous_read_only_inputs_work_and_are_not_modified():
    base = RNG.standard_normal((6, 10, 2))
    z = base[:, :, 0]  # strided
    z.flags.writeable = False
    target = np.arange(12)[::2] % 10
    target.flags.writeable = False
    w = np.linspace(0.5, 1.5, 20)[::2]
    w.flags.writeable = False
    before = z.copy()
    loss, grad = softmax_cross_entropy(z, target, w, label_smoothing=0.2)
    assert float(loss) == pytest.approx(ref_cross_entropy(z, target, w, eps=0.2), rel=1e-12)
    assert np.array_equal(z, before)
    np.testing.assert_allclose(log_softmax(z, axis=0), ref_log_softmax(before, 0), rtol=1e-14)
    assert np.array_equal(z, before)


def test_integer_logits_become_float64_and_float32_stays_float32():
    loss, grad = softmax_cross_entropy([[1, 2, 3]], [2])
    assert loss.dtype == np.float64 and grad.dtype == np.float64
    loss, grad = softmax_cross_entropy(np.ones((2, 3), np.float32), np.array([0, 1], np.int32))
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    assert softmax(np.ones(3, np.float32)).dtype == np.float32


def test_spatial_gradient_is_c_contiguous_in_the_logits_layout():
    z = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    _, grad = softmax_cross_entropy(z, RNG.integers(0, 3, (2, 4, 5)))
    assert grad.shape == z.shape and grad.flags.c_contiguous


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("target,match", [
    ([0, 3], r"target\[1\] = 3 is not a class index: with 3 classes"),
    ([-1, 0], r"target\[0\] = -1"),
    ([[0, 1]], r"class-index target must have shape \(2,\)"),
    ([0, 1, 2], r"class-index target must have shape \(2,\)"),
])
def test_bad_class_index_targets_raise_value_error_naming_the_problem(target, match):
    with pytest.raises(ValueError, match=match):
        softmax_cross_entropy(np.zeros((2, 3)), np.array(target))


def test_bad_target_position_is_reported_in_the_target_layout():
    target = np.zeros((2, 4, 5), np.int64)
    target[1, 2, 3] = 7
    with pytest.raises(ValueError, match=r"target\[1, 2, 3\] = 7"):
        cross_entropy(np.zeros((2, 3, 4, 5)), target)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(weight=np.array([1.0, -1.0, 1.0])), ValueError, "weight must be >= 0"),
    (dict(weight=np.array([1.0, np.nan, 1.0])), ValueError, "weight must be finite"),
    (dict(weight=np.ones(4)), ValueError, r"weight must have shape \(3,\)"),
    (dict(weight=np.ones(3, np.float32)), TypeError, "share one float dtype"),
    (dict(label_smoothing=-0.1), ValueError, r"label_smoothing must be in \[0, 1\]"),
    (dict(label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0, 1\]"),
    (dict(label_smoothing=float("nan")), ValueError, "label_smoothing"),
    (dict(label_smoothing="0.1"), TypeError, "label_smoothing"),
    (dict(reduction="avg"), ValueError, "reduction must be"),
    (dict(ignore_index=1.5), TypeError, "ignore_index"),
])
def test_bad_options_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), **kwargs)


def test_bad_arrays_raise():
    with pytest.raises(TypeError, match="target has dtype bool"):
        cross_entropy(np.zeros((2, 3)), np.array([True, False]))
    with pytest.raises(TypeError):
        cross_entropy(np.zeros((2, 3), complex), np.array([0, 1]))
    with pytest.raises(ValueError, match="0-d"):
        cross_entropy(np.float64(1.0), np.array(0))
    with pytest.raises(ValueError, match="no classes"):
        cross_entropy(np.zeros((2, 0)), np.array([0, 0]))
    with pytest.raises(ValueError, match="class-probability target must have the shape"):
        cross_entropy(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="class indices must be integers"):
        cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="share one float dtype"):
        cross_entropy(np.zeros((2, 3), np.float32), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        softmax(np.zeros((2, 3)), axis=2)
    with pytest.raises(ValueError, match="shape of output"):
        softmax_backward(np.zeros(3), np.zeros(4))


# ---------------------------------------------------------------- binary cross-entropy


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("use_weight,use_pos_weight", [(False, False), (True, False),
                                                       (False, True), (True, True)])
def test_binary_cross_entropy_matches_reference_and_numerical_gradient(reduction, use_weight,
                                                                       use_pos_weight):
    x = 3 * RNG.standard_normal((5, 4))
    y = (RNG.random((5, 4)) < 0.5).astype(float)
    y[0] = 0.3  # a soft label
    w = RNG.uniform(0.5, 2, (5, 1)) if use_weight else None
    q = RNG.uniform(0.5, 3, 4) if use_pos_weight else None
    expected = ref_bce(x, y, w, q, reduction)
    loss = binary_cross_entropy_with_logits(x, y, w, reduction, q)
    loss2, grad = sigmoid_binary_cross_entropy(x, y, w, reduction, q)
    # (1 - y) x + lw softplus(-x), as PyTorch, has O(|x|) ulp absolute error
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(loss, loss2)
    np.testing.assert_allclose(
        grad, numerical_gradient(lambda v: np.sum(ref_bce(v, y, w, q, reduction)), x),
        rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_is_exact_for_huge_logits(dtype):
    x = np.array([1e8, -1e8, 1e8, -1e8, 0.0], dtype)
    y = np.array([1, 0, 0, 1, 1], dtype)
    loss, grad = sigmoid_binary_cross_entropy(x, y, reduction="none")
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss, [0, 0, 1e8, 1e8, math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(grad, [0, 0, 1, -1, -0.5])


def test_is_this_digit_a_five_logistic_regression_learns():
    # lecture 004: a linear classifier with a sigmoid and BCE, trained by gradient descent
    rng = np.random.default_rng(5)
    x = rng.standard_normal((200, 2))
    y = (x @ np.array([2.0, -1.0]) > 0).astype(float)
    w = np.zeros(2)
    first = None
    for _ in range(200):
        loss, g = sigmoid_binary_cross_entropy(x @ w, y)
        first = loss if first is None else first
        w -= 1.0 * (x.T @ g)
    assert float(first) == pytest.approx(math.log(2))
    assert loss < 0.2 and np.mean(((x @ w) > 0) == y) > 0.95


def test_binary_cross_entropy_bad_input():
    with pytest.raises(ValueError, match="shape of logits"):
        binary_cross_entropy_with_logits(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="does not broadcast"):
        binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="pos_weight must be >= 0"):
        binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 3)),
                                         pos_weight=-np.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3), reduction="mean ")


# ---------------------------------------------------------------- PyTorch parity


def _torch_ce(torch, z, target, weight, ignore_index, reduction, eps):
    zt = torch.tensor(z, requires_grad=True)
    tt = torch.tensor(target)
    wt = None if weight is None else torch.tensor(weight)
    loss = torch.nn.functional.cross_entropy(zt, tt, weight=wt, ignore_index=ignore_index,
                                             reduction=reduction, label_smoothing=eps)
    loss.sum().backward()
    return loss.detach().numpy(), zt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5), (5,), (3, 4, 2, 3)])
@pytest.mark.parametrize("probabilities", [False, True])
def test_every_option_combination_matches_pytorch(dtype, shape, probabilities):
    torch = pytest.importorskip("torch")
    class_axis = 0 if len(shape) == 1 else 1
    n_classes = shape[class_axis]
    z = (3 * RNG.standard_normal(shape)).astype(dtype)
    if probabilities:
        target = RNG.random(shape).astype(dtype)
        target /= target.sum(axis=class_axis, keepdims=True)
    else:
        target_shape = shape[:class_axis] + shape[class_axis + 1:]
        target = RNG.integers(0, n_classes, target_shape)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for use_weight, eps, reduction, ignore_index in itertools.product(
            [False, True], [0.0, 0.25, 1.0], ["mean", "sum", "none"], [-100, 2]):
        w = RNG.uniform(0.2, 2, n_classes).astype(dtype) if use_weight else None
        if probabilities and ignore_index != -100:
            continue
        expected_loss, expected_grad = _torch_ce(torch, z, target, w, ignore_index, reduction,
                                                 eps)
        loss, grad = softmax_cross_entropy(z, target, w, ignore_index, reduction, eps)
        assert np.shape(loss) == expected_loss.shape
        np.testing.assert_allclose(loss, expected_loss, **tol)
        np.testing.assert_allclose(grad, expected_grad, **tol)
        np.testing.assert_array_equal(cross_entropy(z, target, w, ignore_index, reduction, eps),
                                      loss)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_match_pytorch(dtype):
    torch = pytest.importorskip("torch")
    cases = [np.array([[1e8, 1e8], [1e8, -1e8], [-1e8, 1e8]]),
             np.array([[1e4, -1e4, 0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4]]),
             np.array([[2.5], [-3.0]])]
    for z in cases:
        z = z.astype(dtype)
        target = np.arange(len(z)) % z.shape[1]
        for reduction, eps in itertools.product(["mean", "none"], [0.0, 0.1]):
            expected_loss, expected_grad = _torch_ce(torch, z, target, None, -100, reduction,
                                                     eps)
            loss, grad = softmax_cross_entropy(z, target, reduction=reduction,
                                               label_smoothing=eps)
            np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)


def test_softmax_and_log_softmax_match_pytorch():
    torch = pytest.importorskip("torch")
    x = (10 * RNG.standard_normal((3, 4, 5))).astype(np.float32)
    for axis in range(3):
        np.testing.assert_allclose(softmax(x, axis), torch.softmax(torch.tensor(x), axis),
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(log_softmax(x, axis),
                                   torch.log_softmax(torch.tensor(x), axis), rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_matches_pytorch(reduction):
    torch = pytest.importorskip("torch")
    x = (5 * RNG.standard_normal((6, 3))).astype(np.float32)
    x[0] = [1e8, -1e8, 1e4]
    y = RNG.random((6, 3)).astype(np.float32)
    w = RNG.uniform(0, 2, (6, 1)).astype(np.float32)
    q = RNG.uniform(0.5, 3, 3).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(y), weight=torch.tensor(w), reduction=reduction,
        pos_weight=torch.tensor(q))
    expected.sum().backward()
    loss, grad = sigmoid_binary_cross_entropy(x, y, w, reduction, q)
    np.testing.assert_allclose(loss, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    # (1 - y) - lw * sigmoid(-x) cancels: float32 rounding of O(1) terms
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
