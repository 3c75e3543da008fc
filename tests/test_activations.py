"""Functional activations against per-element formulas, numerical gradients and PyTorch."""
import math

import numpy as np
import pytest

from pyxconv import functional as F
from pyxconv import nn

# name -> (forward, backward, the argument backward takes from the forward pass,
#          keyword arguments, the derivative of one element by the lecture's table)
SCALAR_RULES = {
    "relu": (lambda v: v if v > 0 else 0.0, lambda v: 1.0 if v > 0 else 0.0, {}),
    "leaky_relu": (lambda v: v if v > 0 else 0.2 * v, lambda v: 1.0 if v > 0 else 0.2,
                   {"negative_slope": 0.2}),
    "elu": (lambda v: v if v > 0 else 1.5 * (math.exp(v) - 1),
            lambda v: 1.0 if v > 0 else 1.5 * math.exp(v), {"alpha": 1.5}),
    "sigmoid": (lambda v: 1 / (1 + math.exp(-v)),
                lambda v: math.exp(-v) / (1 + math.exp(-v)) ** 2, {}),
    "tanh": (math.tanh, lambda v: 1 - math.tanh(v) ** 2, {}),
    "softplus": (lambda v: v if 2 * v > 3 else math.log1p(math.exp(2 * v)) / 2,
                 lambda v: 1.0 if 2 * v > 3 else 1 / (1 + math.exp(-2 * v)),
                 {"beta": 2.0, "threshold": 3.0}),
}
SAVES_OUTPUT = {"relu", "sigmoid", "tanh"}


def _saved(name, x, out):
    return out if name in SAVES_OUTPUT else x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SCALAR_RULES))
def test_activation_and_gradient_match_the_formula_element_by_element(name, dtype):
    f, df, kwargs = SCALAR_RULES[name]
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 3, 4)) * 3).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    out = getattr(F, name)(x, **kwargs)
    grad = getattr(F, name + "_backward")(g, _saved(name, x, out), **kwargs)
    expected = np.array([f(float(v)) for v in x.ravel()]).reshape(x.shape)
    expected_grad = np.array([gv * df(float(v)) for v, gv in zip(x.ravel(), g.ravel())])
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert out.dtype == dtype and grad.dtype == dtype and out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, expected_grad.reshape(x.shape), rtol=tol * 10, atol=tol)


@pytest.mark.parametrize("name", sorted(SCALAR_RULES))
def test_activation_gradient_matches_central_differences(name):
    _, _, kwargs = SCALAR_RULES[name]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(20) * 2
    x = x[np.abs(x) > 1e-3]  # away from the kinks
    x = x[np.abs(2 * x - 3) > 1e-3]  # and from softplus's switch
    g = rng.standard_normal(x.shape)
    forward = getattr(F, name)
    grad = getattr(F, name + "_backward")(g, _saved(name, x, forward(x, **kwargs)), **kwargs)
    h = 1e-6
    numeric = g * (forward(x + h, **kwargs) - forward(x - h, **kwargs)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shared", [True, False])
def test_prelu_and_its_gradients_match_plain_loops(shared):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 2, 5))
    g = rng.standard_normal(x.shape)
    weight = np.array([0.3]) if shared else rng.uniform(0, 1, 4)
    out = F.prelu(x, weight)
    grad_x, grad_w = F.prelu_backward(g, x, weight)
    expected = np.empty_like(x)
    expected_gx = np.empty_like(x)
    expected_gw = np.zeros_like(weight)
    for index in np.ndindex(x.shape):
        c = 0 if shared else index[1]
        v = x[index]
        expected[index] = v if v > 0 else weight[c] * v
        expected_gx[index] = g[index] if v > 0 else weight[c] * g[index]
        if v <= 0:
            expected_gw[c] += g[index] * v
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    np.testing.assert_allclose(grad_x, expected_gx, rtol=1e-15)
    np.testing.assert_allclose(grad_w, expected_gw, rtol=1e-12)


def test_layers_give_the_bits_of_the_functional_forms():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    pairs = [(nn.ReLU(), F.relu, F.relu_backward, "out", {}),
             (nn.LeakyReLU(0.1), F.leaky_relu, F.leaky_relu_backward, "x", {"negative_slope": 0.1}),
             (nn.ELU(0.7), F.elu, F.elu_backward, "x", {"alpha": 0.7}),
             (nn.Sigmoid(), F.sigmoid, F.sigmoid_backward, "out", {}),
             (nn.Tanh(), F.tanh, F.tanh_backward, "out", {}),
             (nn.Softplus(2.0, 5.0), F.softplus, F.softplus_backward, "x",
              {"beta": 2.0, "threshold": 5.0})]
    for layer, forward, backward, saved, kwargs in pairs:
        out = forward(x, **kwargs)
        np.testing.assert_array_equal(layer(x), out)
        np.testing.assert_array_equal(layer.backward(g),
                                      backward(g, out if saved == "out" else x, **kwargs))
    prelu = nn.PReLU(3, init=0.2)
    np.testing.assert_array_equal(prelu(x), F.prelu(x, prelu.weight.data))
    grad_x, grad_w = F.prelu_backward(g, x, prelu.weight.data)
    np.testing.assert_array_equal(prelu.backward(g), grad_x)
    np.testing.assert_array_equal(prelu.weight.grad, grad_w)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus"])
def test_activations_match_pytorch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((8, 3, 6, 6)) * 4).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = getattr(torch.nn.functional, name)(tx)
    ty.backward(torch.from_numpy(g))
    out = getattr(F, name)(x)
    grad = getattr(F, name + "_backward")(g, _saved(name, x, out))
    np.testing.assert_allclose(out, ty.detach().numpy(), rtol=2e-6, atol=1e-7)
    # sigmoid's and tanh's derivatives cancel in float32 where the output
    # saturates (1 - out), torch's and ours in different roundings: an
    # absolute tolerance at float32's epsilon of the unit-sized gradients
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=2e-6, atol=6e-7)


def test_prelu_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    w = np.array([0.1, 0.25, 0.9], np.float32)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    tw = torch.from_numpy(w.copy()).requires_grad_()
    torch.nn.functional.prelu(tx, tw).backward(torch.from_numpy(g))
    grad_x, grad_w = F.prelu_backward(g, x, w)
    np.testing.assert_allclose(F.prelu(x, w), torch.nn.functional.prelu(
        torch.from_numpy(x), torch.from_numpy(w)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad_w, tw.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.relu(None), TypeError, "x must be an array, got None"),
    (lambda: F.prelu_backward(np.ones(2), np.ones(2), None), TypeError, "weight must be an array"),
    (lambda: F.relu(np.array(["a"])), TypeError, "x has dtype"),
    (lambda: F.leaky_relu(np.ones(2), "0.1"), TypeError, "negative_slope must be a real number"),
    (lambda: F.elu(np.ones(2), np.nan), ValueError, "alpha must be finite"),
    (lambda: F.softplus(np.ones(2), beta=0), ValueError, "beta must be nonzero"),
    (lambda: F.relu_backward(np.ones(3), np.ones(2)), ValueError,
     r"grad_out of shape \(2,\) \(the shape of out\), got \(3,\)"),
    (lambda: F.tanh_backward(np.ones(2, np.float32), np.ones(2)), TypeError, "one float dtype"),
    (lambda: F.prelu(np.ones((2, 3)), np.ones(2)), ValueError,
     r"x must have 2 channels on axis 1, got shape \(2, 3\)"),
    (lambda: F.prelu(np.ones((2, 3)), np.ones((1, 1))), ValueError, "weight must be 1-D"),
])
def test_activations_reject_bad_arguments_by_name(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_integer_input_is_computed_in_float64():
    out = F.relu(np.array([-2, 3]))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [0.0, 3.0])
