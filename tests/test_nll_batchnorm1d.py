"""nll_loss / nll_loss_backward / nn.NLLLoss and nn.BatchNorm1d (issue 18, item 5).

nll_loss is checked against torch.nn.functional.nll_loss and a plain loop,
its backward against torch's autograd and central differences; BatchNorm1d
against torch.nn.BatchNorm1d (train and eval, (N, C) and (N, C, L)) and its
backward against central differences.
"""
import zlib

import numpy as np
import pytest

from reference import numerical_gradient
import pyxconv.functional as F
from pyxconv import nn

torch = pytest.importorskip("torch")
DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _loop_nll(x, t, w, ignore_index, reduction):
    """Plain loops over every sample and position."""
    class_axis = 0 if x.ndim == 1 else 1
    xs = np.moveaxis(x, class_axis, -1).astype(np.float64)
    losses = np.zeros(t.shape)
    total_w = 0.0
    for pos in np.ndindex(t.shape):
        c = int(t[pos])
        if c == ignore_index:
            continue
        wc = 1.0 if w is None else float(w[c])
        losses[pos] = -wc * xs[pos + (c,)]
        total_w += wc
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / total_w


CASES = [((5, 4), (5,)), ((3, 4, 6), (3, 6)), ((2, 3, 4, 2), (2, 4, 2)),
         ((2, 3, 2, 1, 2, 2), (2, 2, 1, 2, 2)), ((4,), ())]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", CASES, ids=[str(c[0]) for c in CASES])
@pytest.mark.parametrize("weighted, ignore_index", [(False, -100), (True, -100), (True, 1),
                                                    (False, 2)])
def test_nll_loss_and_backward_match_torch_and_loops(dtype, reduction, shapes, weighted,
                                                     ignore_index):
    x_shape, t_shape = shapes
    rng = np.random.default_rng(zlib.crc32(repr((x_shape, reduction, weighted,
                                                   ignore_index)).encode()))
    c = x_shape[0 if len(x_shape) == 1 else 1]
    x = rng.standard_normal(x_shape).astype(dtype)
    t = rng.integers(0, c, t_shape)
    if t.ndim and ignore_index == -100:
        t.reshape(-1)[0] = -100  # one ignored target
    w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
    got = F.nll_loss(x, t, w, ignore_index, reduction)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    ref = torch.nn.functional.nll_loss(xt, torch.from_numpy(t), None if w is None
                                       else torch.from_numpy(w), ignore_index=ignore_index,
                                       reduction=reduction)
    assert got.dtype == dtype and np.shape(got) == tuple(ref.shape)
    expected = ref.detach().numpy()
    if np.isnan(expected).any():  # every target ignored: torch's 0/0
        assert np.isnan(got)
    else:
        np.testing.assert_allclose(got, expected, **_tol(dtype))
        np.testing.assert_allclose(got, _loop_nll(x, t, w, ignore_index, reduction),
                                   **_tol(dtype))
    g = rng.standard_normal(ref.shape).astype(dtype)
    ref.backward(torch.from_numpy(g))
    grad = F.nll_loss_backward(g if reduction == "none" else float(g), x, t, w, ignore_index,
                               reduction)
    assert grad.dtype == dtype and grad.shape == x.shape
    np.testing.assert_allclose(grad, xt.grad.numpy(), **_tol(dtype))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_backward_matches_numerical_gradient(reduction):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 5))
    t = rng.integers(0, 4, (3, 5))
    t[1, 2] = 3
    w = rng.uniform(0.5, 1.5, 4)
    g = rng.standard_normal(t.shape) if reduction == "none" else 1.7

    def f(z):
        return float(np.sum(F.nll_loss(z, t, w, 3, reduction) * g))

    numeric = numerical_gradient(f, x.copy())
    np.testing.assert_allclose(F.nll_loss_backward(g, x, t, w, 3, reduction), numeric,
                               atol=1e-8)


def test_nll_loss_edge_cases_follow_torch():
    x = np.random.default_rng(0).standard_normal((3, 4))
    every = np.full(3, -100)
    assert np.isnan(F.nll_loss(x, every))
    np.testing.assert_array_equal(F.nll_loss_backward(1.0, x, every), np.zeros((3, 4)))
    zero_w = np.array([0.0, 1.0, 1.0, 1.0])
    t0 = np.zeros(3, np.int64)
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.nll_loss(xt, torch.tensor(t0), torch.tensor(zero_w))
    ref.backward()
    assert np.isnan(F.nll_loss(x, t0, zero_w)) and torch.isnan(ref)
    np.testing.assert_array_equal(F.nll_loss_backward(1.0, x, t0, zero_w), xt.grad.numpy())
    # NaN where a target points gives NaN; elsewhere it is never read
    xn = x.copy()
    xn[0, 1] = np.nan
    assert np.isnan(F.nll_loss(xn, np.array([1, 0, 0])))
    assert np.isfinite(F.nll_loss(xn, np.array([2, 0, 0])))
    assert F.nll_loss(xn, np.array([-100, 0, 0]), reduction="none")[0] == 0.0
    # uint8 targets and float32 input keep float32
    assert F.nll_loss(x.astype(np.float32), np.array([1, 2, 3], np.uint8)).dtype == np.float32


def test_nll_loss_rejects_bad_input():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"target\[1\] = 3 is not a class index: with 3"):
        F.nll_loss(x, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        F.nll_loss(x, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        F.nll_loss(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.nll_loss(x, np.array([0, 1]), weight=np.ones(2))
    with pytest.raises(ValueError, match="reduction must be"):
        F.nll_loss(x, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"grad_output must have the loss's shape \(2,\)"):
        F.nll_loss_backward(np.ones(3), x, np.array([0, 1]), reduction="none")
    with pytest.raises(ValueError, match="0-d"):
        F.nll_loss(np.float64(1.0), np.array(0))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_layer_matches_torch_after_log_softmax(reduction):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 5, 3))
    t = rng.integers(0, 5, (4, 3))
    w = rng.uniform(0.5, 2.0, 5)
    layer = nn.NLLLoss(weight=w, reduction=reduction)
    logp = F.log_softmax(z, 1)
    loss = layer(logp, t)
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.NLLLoss(torch.tensor(w), reduction=reduction)(
        torch.log_softmax(zt, 1), torch.tensor(t))
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12)
    if reduction != "none":
        assert isinstance(loss, float)
        # with log_softmax, NLLLoss is the cross-entropy
        assert loss == pytest.approx(float(F.cross_entropy(z, t, w, reduction=reduction)),
                                     rel=1e-12)
    ref.backward(torch.ones_like(ref) * 2.0)
    grad_z = F.log_softmax_backward(layer.backward(2.0), logp, 1)
    np.testing.assert_allclose(grad_z, zt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert layer.output_shape((4, 5, 3)) == (() if reduction != "none" else (4, 3))
    with pytest.raises(ValueError, match="reduction must be"):
        nn.NLLLoss(reduction="avg")


# --------------------------------------------------------------------------- BatchNorm1d


def _torch_bn(layer, t_bn):
    with torch.no_grad():
        t_bn.weight.copy_(torch.from_numpy(layer.weight.data))
        t_bn.bias.copy_(torch.from_numpy(layer.bias.data))
        t_bn.running_mean.copy_(torch.from_numpy(layer.running_mean))
        t_bn.running_var.copy_(torch.from_numpy(layer.running_var))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 1)])
def test_batchnorm1d_matches_torch_in_training_and_eval(dtype, shape):
    rng = np.random.default_rng(11)
    layer = nn.BatchNorm1d(3, momentum=0.3, dtype=dtype)
    layer.weight.data[:] = rng.uniform(0.5, 2, 3)
    layer.bias.data[:] = rng.standard_normal(3)
    t_bn = torch.nn.BatchNorm1d(3, momentum=0.3).to(torch.float64 if dtype == np.float64
                                                    else torch.float32)
    _torch_bn(layer, t_bn)
    tol = _tol(dtype)
    for step in range(2):  # two training steps move the running statistics
        x = (3 * rng.standard_normal(shape) + 1).astype(dtype)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        y = layer(x)
        yt = t_bn(xt)
        np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
        g = rng.standard_normal(shape).astype(dtype)
        layer.weight.grad[:] = 0
        layer.bias.grad[:] = 0
        gx = layer.backward(g)
        yt.backward(torch.from_numpy(g))
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-4 if dtype == np.float32
                                   else 1e-10, atol=1e-5 if dtype == np.float32 else 1e-12)
        np.testing.assert_allclose(layer.weight.grad, t_bn.weight.grad.numpy(), rtol=1e-4,
                                   atol=1e-5)
        t_bn.weight.grad = t_bn.bias.grad = None
        np.testing.assert_allclose(layer.running_mean, t_bn.running_mean.numpy(), **tol)
        np.testing.assert_allclose(layer.running_var, t_bn.running_var.numpy(), **tol)
    assert int(layer.num_batches_tracked) == 2
    layer.eval()
    t_bn.eval()
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(layer(x), t_bn(torch.from_numpy(x)).detach().numpy(), **tol)
    assert set(layer.state_dict()) == set(t_bn.state_dict())


@pytest.mark.parametrize("shape, training", [((5, 2), True), ((3, 2, 4), True),
                                             ((3, 2, 4), False)])
def test_batchnorm1d_backward_matches_numerical_gradient(shape, training):
    rng = np.random.default_rng(5)
    layer = nn.BatchNorm1d(2, dtype=np.float64)
    layer.weight.data[:] = [1.5, -0.7]
    layer.bias.data[:] = [0.2, 0.1]
    layer.running_mean[:] = [0.3, -0.2]
    layer.running_var[:] = [1.4, 0.6]
    layer.train(training)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    saved = layer.running_mean.copy(), layer.running_var.copy()

    def f(z):
        layer.running_mean[:], layer.running_var[:] = saved
        return float((layer(z) * g).sum())

    numeric = numerical_gradient(f, x.copy())
    layer.running_mean[:], layer.running_var[:] = saved
    layer(x)
    layer.weight.grad[:] = 0
    np.testing.assert_allclose(layer.backward(g), numeric, rtol=1e-6, atol=1e-8)
    w0 = layer.weight.data.copy()

    def fw(w):
        layer.weight.data[:] = w
        layer.running_mean[:], layer.running_var[:] = saved
        return float((layer(x) * g).sum())

    np.testing.assert_allclose(layer.weight.grad, numerical_gradient(fw, w0.copy()),
                               rtol=1e-6, atol=1e-8)


def test_batchnorm1d_rejects_bad_input_and_batchnorm2d_is_unchanged():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d expected input of layout \(N, C\) or "
                                         r"\(N, C, L\) with 3 channels, got shape \(2, 4\)"):
        bn(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 2, 2\)"):
        bn(np.zeros((2, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="BatchNorm1d expects an ndarray"):
        bn([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"BatchNorm2d expected input of layout \(N, C, H, W\)"):
        nn.BatchNorm2d(3)(np.zeros((2, 3), np.float32))
