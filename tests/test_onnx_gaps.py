"""Operators ONNX models need that PyTorch-style pooling lacked (issue 18, item 5).

Global max pooling, nll_loss, AvgPool1d / BatchNorm1d / MaxUnpool1d layers,
dilated average pooling and padding wider than half the window. Each is checked
against PyTorch where PyTorch has the case, otherwise against plain loops, and
every backward against central differences.
"""
import numpy as np
import pytest

from reference import numerical_gradient
import pyxconv.functional as F
from pyxconv import nn

torch = pytest.importorskip("torch")
DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- global max pooling


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (3, 2, 1, 9)])
def test_global_max_pool2d_matches_torch_adaptive_max_pool(dtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out, idx = F.global_max_pool2d(x, return_indices=True)
    t_out, t_idx = torch.nn.functional.adaptive_max_pool2d(torch.from_numpy(x), 1,
                                                           return_indices=True)
    assert out.dtype == dtype and out.shape == shape[:2] + (1, 1)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())
    np.testing.assert_array_equal(F.global_max_pool2d(x), out)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.adaptive_max_pool2d(xt, 1).backward(torch.from_numpy(g))
    grad = F.global_max_pool2d_backward(g, idx, x.shape)
    assert grad.dtype == dtype
    np.testing.assert_array_equal(grad, xt.grad.numpy())


def test_global_max_pool2d_ties_pick_the_first_and_nan_propagates():
    x = np.zeros((1, 2, 2, 2))
    x[0, 0] = [[1, 3], [3, 0]]
    x[0, 1] = [[1, np.nan], [5, 0]]
    out, idx = F.global_max_pool2d(x, return_indices=True)
    assert out[0, 0, 0, 0] == 3 and idx[0, 0, 0, 0] == 1
    assert np.isnan(out[0, 1, 0, 0]) and idx[0, 1, 0, 0] == 1


def test_global_max_pool2d_backward_matches_numerical_gradient():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 3))
    g = np.random.default_rng(4).standard_normal((2, 3, 1, 1))
    _, idx = F.global_max_pool2d(x, return_indices=True)
    numeric = numerical_gradient(lambda z: float((F.global_max_pool2d(z) * g).sum()), x.copy())
    np.testing.assert_allclose(F.global_max_pool2d_backward(g, idx, x.shape), numeric,
                               atol=1e-7)


def test_global_max_pool2d_rejects_bad_input():
    with pytest.raises(ValueError, match=r"empty dimension: shape \(1, 2, 0, 3\)"):
        F.global_max_pool2d(np.ones((1, 2, 0, 3)))
    with pytest.raises(ValueError, match="x must be 4-D"):
        F.global_max_pool2d(np.ones((2, 3, 3)))
    with pytest.raises(TypeError, match="return_indices"):
        F.global_max_pool2d(np.ones((1, 1, 2, 2)), return_indices=1)
    with pytest.raises(ValueError, match=r"grad_out must have the forward output's shape"):
        F.global_max_pool2d_backward(np.ones((1, 2, 2, 1)), np.zeros((1, 2, 2, 1), np.int64),
                                     (1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"outside \[0, 16\)"):
        F.global_max_pool2d_backward(np.ones((1, 2, 1, 1)), np.full((1, 2, 1, 1), 16),
                                     (1, 2, 4, 4))


def test_global_max_pool2d_of_an_empty_batch_is_empty_like_every_pooling_function():
    out, idx = F.global_max_pool2d(np.ones((0, 2, 3, 3)), return_indices=True)
    assert out.shape == idx.shape == (0, 2, 1, 1) and idx.dtype == np.int64
    assert F.max_pool2d(np.ones((0, 2, 3, 3)), 3).shape == (0, 2, 1, 1)
    t_out = torch.nn.functional.adaptive_max_pool2d(torch.ones(0, 2, 3, 3), 1)
    assert tuple(t_out.shape) == out.shape
    grad = F.global_max_pool2d_backward(np.ones((0, 2, 1, 1)), idx, (0, 2, 3, 3))
    assert grad.shape == (0, 2, 3, 3)


def test_global_max_pool2d_layer_forward_backward():
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 4)).astype(np.float32)
    layer = nn.GlobalMaxPool2d()
    out = layer(x)
    np.testing.assert_array_equal(out, x.max(axis=(2, 3), keepdims=True))
    assert layer.output_shape(x.shape) == (2, 3, 1, 1)
    g = np.ones((2, 3, 1, 1), np.float32)
    grad = layer.backward(g)
    assert grad.sum() == 6 and (grad * x).sum() == pytest.approx(out.sum(), rel=1e-6)
    with pytest.raises(ValueError, match="GlobalMaxPool2d"):
        layer(np.ones((3, 4, 4)))
