"""The eval-mode Sequential's prepared program, and the prepared calls it is made of.

An eval Sequential runs a program per input shape (pyxconv.nn._eval_program):
its outputs must be the bits of the layers run one by one (the fused steps
of test_engine.py), whatever the thread count; a replaced parameter, a mode
change, a setting change or a new shape must never reuse a stale program;
and the prepared calls (ConvPlan.bind, prepare_max_pool, prepare_linear)
must agree with the plain-loop references and refuse what they were not made
for.
"""
import numpy as np
import pytest

import pyxconv
from pyxconv import functional as F
from pyxconv import nn
from pyxconv._kernels import _direct, _im2col, _pool
from reference import conv2d_by_loops


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def _layer_by_layer(model, x):
    for layer in model:
        x = layer.forward(x)
    return x


def _model(dtype):
    """LeNet's kinds of layers, with the odd ones: padding, an unfused conv, a padded pool."""
    nn.manual_seed(11)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 3, dtype=dtype), nn.MaxPool2d(3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 8, 1, bias=False, dtype=dtype), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(8 * 3 * 3, 20, dtype=dtype), nn.ReLU(),
        nn.Linear(20, 10, bias=False, dtype=dtype)).eval()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_program_gives_the_bits_of_the_layers_at_every_thread_count(dtype, batch):
    model = _model(dtype)
    x = np.random.default_rng(batch).standard_normal((batch, 1, 14, 14)).astype(dtype)
    x[0, 0, 0, :4] = np.nan  # NaN must pass the fused ReLUs as the layers pass it
    expected = _layer_by_layer(model, x)
    for threads in (1, 2):
        with pyxconv.num_threads(threads):
            first = model(x)  # makes the program
            again = model(x)  # runs it
        assert len(model._programs) >= 1
        np.testing.assert_array_equal(_bits(first), _bits(expected))
        np.testing.assert_array_equal(_bits(again), _bits(expected))
    assert again is not first  # each call returns a new array


def test_the_program_runs_the_prepared_steps():
    model = _model(np.float32)
    x = np.ones((1, 1, 14, 14), np.float32)
    model(x)
    (program,) = model._programs.values()
    kinds = [getattr(step, "__qualname__", "") for step in program._steps]
    assert sum("bind" in k for k in kinds) == 3
    assert sum("prepare_max_pool" in k for k in kinds) == 2
    assert sum("prepare_linear" in k for k in kinds) == 2


def test_a_replaced_parameter_makes_a_new_program_and_in_place_changes_show():
    model = _model(np.float32)
    x = np.random.default_rng(0).standard_normal((2, 1, 14, 14)).astype(np.float32)
    model(x)
    model[0].weight.data *= 2  # in place: the bound array changes
    np.testing.assert_array_equal(_bits(model(x)), _bits(_layer_by_layer(model, x)))
    model[9].weight.data = np.ascontiguousarray(model[9].weight.data[::-1])  # replaced
    model[3].bias.data = model[3].bias.data + 1
    np.testing.assert_array_equal(_bits(model(x)), _bits(_layer_by_layer(model, x)))


def test_a_mode_change_anywhere_is_seen():
    model = _model(np.float64)
    model.layers.insert(1, nn.BatchNorm2d(6, dtype=np.float64).eval())
    x = np.random.default_rng(1).standard_normal((4, 1, 14, 14))
    model(x)
    model[1].training = True  # one child only, by assignment: batch statistics now
    assert not model.training
    trained = model(x)
    model[1].training = False
    np.testing.assert_allclose(trained, _layer_by_layer_in_training(model, x, 1), rtol=1e-12)
    # BatchNorm in eval mode is folded into the convolution again: equal to rounding
    np.testing.assert_allclose(model(x), _layer_by_layer(model, x), rtol=1e-10, atol=1e-12)


def _layer_by_layer_in_training(model, x, index):
    model[index].training = True
    try:
        return _layer_by_layer(model, x)
    finally:
        model[index].training = False


def test_a_changed_setting_or_shape_gets_its_own_program():
    model = _model(np.float32)
    x = np.random.default_rng(2).standard_normal((1, 1, 14, 14)).astype(np.float32)
    model(x)
    with F.conv_algorithm("chunks"):
        forced = model(x)
        assert F.plan_settings()[-1] == "chunks"
        np.testing.assert_allclose(forced, _layer_by_layer(model, x), rtol=1e-5, atol=1e-6)
    bigger = np.random.default_rng(3).standard_normal((2, 1, 15, 15)).astype(np.float32)
    np.testing.assert_array_equal(_bits(model(bigger)), _bits(_layer_by_layer(model, bigger)))
    assert len(model._programs) == 3
    for batch in range(3, 3 + nn.Sequential.MAX_EVAL_PROGRAMS):
        model(np.zeros((batch, 1, 14, 14), np.float32))
    assert len(model._programs) == nn.Sequential.MAX_EVAL_PROGRAMS


def test_inputs_the_program_does_not_take_run_the_layers():
    model = _model(np.float32)
    x = np.random.default_rng(4).standard_normal((2, 1, 14, 28)).astype(np.float32)
    strided = x[..., ::2]
    np.testing.assert_array_equal(_bits(model(strided)), _bits(_layer_by_layer(model, strided)))
    with pytest.raises(TypeError, match="operands must share one float dtype"):
        model(x.astype(np.float64))  # as the layers refuse it alone
    with pytest.raises(ValueError, match=r"Conv2d expected input of layout \(N, C, H, W\) with 1"):
        model(np.zeros((1, 2, 14, 14), np.float32))
    with pytest.raises(ValueError, match=r"Linear expected input of shape \(N, 72\)"):
        model(np.zeros((1, 1, 20, 20), np.float32))


def test_a_layer_with_a_forward_of_its_own_runs_it():
    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    nn.manual_seed(13)
    model = nn.Sequential(nn.Flatten(), Doubled(16, 3), nn.ReLU(), Doubled(3, 2)).eval()
    x = np.random.default_rng(14).standard_normal((2, 1, 4, 4))
    model.astype(np.float64)
    for _ in range(2):
        np.testing.assert_array_equal(_bits(model(x)), _bits(_layer_by_layer(model, x)))


def test_a_forward_in_eval_outside_no_grad_still_has_a_backward():
    nn.manual_seed(12)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, dtype=np.float64), nn.ReLU(),
                          nn.Conv2d(4, 3, 3, padding=1, dtype=np.float64), nn.Flatten(),
                          nn.Linear(3 * 16, 5, dtype=np.float64), nn.ReLU(),
                          nn.Linear(5, 2, dtype=np.float64)).eval()
    x = np.random.default_rng(5).standard_normal((2, 2, 6, 6))
    out = model(x)
    np.testing.assert_array_equal(_bits(model(x)), _bits(_layer_by_layer(model, x)))
    grad = model.backward(np.ones_like(out))
    _layer_by_layer(model, x)
    expected = np.ones_like(out)
    for layer in reversed(model.layers):
        expected = layer.backward(expected)
    np.testing.assert_array_equal(grad, expected)
    with pyxconv.no_grad():
        model(x)
    with pytest.raises(nn.BackwardBeforeForwardError, match="kept nothing"):
        model.backward(np.ones_like(out))


# ------------------------------------------------------------------ the prepared calls

@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", [
    ((1, 1, 12, 11), (6, 1, 5, 5), 1, ((0, 0), (0, 0))),  # the direct kernel's few channels
    ((2, 6, 9, 9), (16, 6, 3, 3), 2, ((1, 1), (1, 1))),  # its channel blocks, strided
    ((1, 3, 7, 7), (4, 3, 2, 2), 1, ((0, 1), (1, 0))),  # the panels
])
def test_a_bound_plan_matches_the_plain_loops(case, relu):
    x_shape, w_shape, stride, pads = case
    rng = np.random.default_rng(6)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    x, w, b, plan = F.prepare_conv(x, w, b, stride, pads)
    forward = plan.bind(w, b, relu=relu)
    expected, _ = conv2d_by_loops(x, w, b, (stride, stride), pads, (1, 1))
    if relu:
        expected = np.maximum(expected, 0)
    out = forward(x)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    reference, _ = plan.forward(x, w, b, relu=relu)
    np.testing.assert_array_equal(_bits(out), _bits(reference.reshape(out.shape)))


def test_the_direct_kernel_object_refuses_arrays_of_other_sizes():
    x, w, b, plan = F.prepare_conv(np.ones((1, 1, 8, 8), np.float32),
                                   np.ones((6, 1, 5, 5), np.float32))
    if plan.inference_algorithm != "direct":
        pytest.skip("no direct kernel on this instruction set")
    conv = _direct.DirectConv(plan.isa, 1, 1, 6, plan.g.kernel_geometry, 1)
    assert conv.workspace_bytes > 6 * 25 * 4
    out = np.empty((1, 6, 16), np.float32)
    for bad in (np.ones((1, 1, 8, 7), np.float32), np.ones((1, 1, 8, 8)), [[1.0]]):
        with pytest.raises(TypeError, match="x must be a C-contiguous float32 ndarray of 64"):
            conv(bad, w, None, out)
    with pytest.raises(TypeError, match="out must be"):
        conv(x, w, None, np.empty((1, 6, 15), np.float32))
    with pytest.raises(TypeError, match="weight must be"):
        conv(x, w[:3], None, out)
    read_only = np.empty((1, 6, 16), np.float32)
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        conv(x, w, None, read_only)
    with pytest.raises(ValueError, match="no direct kernel"):
        _direct.DirectConv("none", 1, 1, 6, plan.g.kernel_geometry, 1)
    with pytest.raises(TypeError):
        _direct.DirectConv(plan.isa, 1, 1, 6, None, 1)


def _max_pool_by_loops(x, k, s, p):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for i in range(oh):
        for j in range(ow):
            for a in range(k):
                for e in range(k):
                    ih, iw = i * s - p + a, j * s - p + e
                    if 0 <= ih < h and 0 <= iw < w:
                        out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, ih, iw])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_a_prepared_max_pool_matches_the_loops_and_the_function(dtype, k, s, p):
    x = np.random.default_rng(7).standard_normal((2, 3, 9, 8)).astype(dtype)
    with pyxconv.num_threads(1):
        single = F.prepare_max_pool(x.shape, dtype, k, s, p)(x)
    with pyxconv.num_threads(2):
        pool = F.prepare_max_pool(x.shape, dtype, k, s, p)
        out = pool(x)
    np.testing.assert_array_equal(out, _max_pool_by_loops(x, k, s, p).astype(dtype))
    np.testing.assert_array_equal(_bits(out), _bits(F.max_pool2d(x, k, s, p)))
    np.testing.assert_array_equal(_bits(out), _bits(single))
    assert out.dtype == dtype
    x1 = np.random.default_rng(8).standard_normal((1, 2, 11)).astype(dtype)
    np.testing.assert_array_equal(F.prepare_max_pool(x1.shape, dtype, 3)(x1),
                                  F.max_pool1d(x1, 3))


def test_the_pool_object_refuses_arrays_of_other_sizes():
    x3 = np.ones((4, 1, 6, 6), np.float32)
    pool = _pool.MaxPoolValues(np.float32, (4, 1, 6, 6), (4, 1, 3, 3), 1, 2, 2, 1, 2, 2,
                               0, 0, 0, 1, 1, 1, np.zeros(4, np.int64), np.zeros(2, np.int64),
                               np.zeros(2, np.int64), np.zeros(3, np.int32), 1)
    with pytest.raises(TypeError, match="out must be a C-contiguous writeable float32"):
        pool(x3, np.empty((4, 1, 3, 2), np.float32))
    with pytest.raises(TypeError, match="x must be"):
        pool(np.ones((4, 1, 6, 6)), np.empty((4, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="tap tables"):
        _pool.MaxPoolValues(np.float32, (4, 1, 6, 6), (4, 1, 3, 3), 1, 2, 2, 1, 2, 2,
                            0, 0, 0, 1, 1, 1, np.zeros(3, np.int64), np.zeros(2, np.int64),
                            np.zeros(2, np.int64), np.zeros(3, np.int32), 1)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        _pool.MaxPoolValues(np.int32, (4, 1, 6, 6), (4, 1, 3, 3), 1, 2, 2, 1, 2, 2,
                            0, 0, 0, 1, 1, 1, np.zeros(4, np.int64), np.zeros(2, np.int64),
                            np.zeros(2, np.int64), np.zeros(3, np.int32), 1)


def _linear_by_loops(x, w, b):
    out = np.zeros(x.shape[:-1] + (w.shape[0],))
    for idx in np.ndindex(x.shape[:-1]):
        for j in range(w.shape[0]):
            out[idx + (j,)] = sum(float(x[idx + (i,)]) * float(w[j, i])
                                  for i in range(w.shape[1])) + (0.0 if b is None else b[j])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape", [(1, 7), (4, 7), (2, 3, 7), (7,)])
def test_linear_matches_the_loops_and_the_prepared_call_its_bits(dtype, x_shape):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((5, 7)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for bias in (b, None):
        out = F.linear(x, w, bias)
        assert out.shape == x_shape[:-1] + (5,) and out.dtype == dtype
        np.testing.assert_allclose(out, _linear_by_loops(x, w, bias), rtol=tol, atol=tol)
        prepared = F.prepare_linear(x.shape, w, bias, relu=True)(x)
        np.testing.assert_array_equal(_bits(prepared), _bits(np.where(out < 0, 0, out)))


def test_linear_converts_integers_refuses_mixed_floats_and_takes_empty_inputs():
    x = np.arange(6).reshape(2, 3)  # integers take the float operand's dtype
    out = F.linear(x, np.ones((2, 3), np.float32))
    assert out.dtype == np.float32
    with pytest.raises(TypeError, match="operands must share one float dtype"):
        F.linear(x.astype(np.float64), np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(out, [[3, 3], [12, 12]])
    assert F.linear(np.zeros((0, 3)), np.ones((2, 3))).shape == (0, 2)
    np.testing.assert_array_equal(F.linear(np.zeros((2, 0)), np.ones((3, 0)), np.ones(3)),
                                  np.ones((2, 3)))
    assert F.linear(np.ones((2, 3)), np.ones((0, 3))).shape == (2, 0)  # no outputs


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((8, 400)).astype(np.float32)
    w = rng.standard_normal((120, 400)).astype(np.float32)
    b = rng.standard_normal(120).astype(np.float32)
    expected = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w),
                                          torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(F.linear(x, w, b), expected, rtol=1e-4, atol=1e-4)


def test_the_linear_kernel_refuses_mismatched_arrays():
    x, w = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    with pytest.raises(TypeError, match="out must be a C-contiguous writeable"):
        _im2col.linear_forward(x, w, None, np.empty((2, 5), np.float32))
    with pytest.raises(TypeError, match="weight must be"):
        _im2col.linear_forward(x, np.ones((4, 3)), None, np.empty((2, 4), np.float32))
    with pytest.raises(TypeError, match="bias must be"):
        _im2col.linear_forward(x, w, np.ones(3, np.float32), np.empty((2, 4), np.float32))
    with pytest.raises(TypeError, match="2-D"):
        _im2col.linear_forward(np.ones(3, np.float32), w, None, np.empty(4, np.float32))


def _linear_backward_by_loops(g, x, w):
    x2, g2 = x.reshape(-1, w.shape[1]).astype(np.float64), g.reshape(-1, w.shape[0])
    grad_x = np.zeros(x2.shape)
    grad_w = np.zeros(w.shape)
    for r in range(x2.shape[0]):
        for j in range(w.shape[0]):
            for i in range(w.shape[1]):
                grad_x[r, i] += float(g2[r, j]) * float(w[j, i])
                grad_w[j, i] += float(g2[r, j]) * float(x2[r, i])
    return grad_x.reshape(x.shape), grad_w, g2.astype(np.float64).sum(axis=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape", [(1, 7), (4, 7), (2, 3, 7), (7,), (0, 7)])
def test_linear_backward_matches_the_loops(dtype, x_shape):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((5, 7)).astype(dtype)
    g = rng.standard_normal(x_shape[:-1] + (5,)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    got = F.linear_backward(g, x, w)
    for a, b in zip(got, _linear_backward_by_loops(g, x, w)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    grad_x, grad_w, grad_b = F.linear_backward(g, x, w, needs_input_grad=False)
    assert grad_x is None
    np.testing.assert_array_equal(grad_w, got[1])


def test_linear_layer_backward_matches_torch_and_accumulates():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((8, 400)).astype(np.float32)
    nn.manual_seed(3)
    layer = nn.Linear(400, 120)
    g = rng.standard_normal((8, 120)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(layer.weight.data.copy()).requires_grad_()
    tb = torch.from_numpy(layer.bias.data.copy()).requires_grad_()
    torch.nn.functional.linear(tx, tw, tb).backward(torch.from_numpy(g))
    for _ in range(2):  # gradients add up over backward calls, as torch's do
        layer(x)
        grad_x = layer.backward(g)
    np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.weight.grad, 2 * tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad, 2 * tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_the_linear_backward_kernel_refuses_mismatched_arrays():
    x, w, g = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32), np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="do not fit"):
        _im2col.linear_backward(x, w, g, np.empty((4, 2), np.float32), None)
    with pytest.raises(ValueError, match="do not fit"):
        _im2col.linear_backward(x, w, g, np.empty((4, 3), np.float32), np.empty((2, 2), np.float32))
    with pytest.raises(TypeError, match="grad_weight must be a C-contiguous writeable"):
        _im2col.linear_backward(x, w, g, np.empty((4, 3)), None)
    with pytest.raises(ValueError, match="read-only"):
        read_only = np.empty((4, 3), np.float32)
        read_only.flags.writeable = False
        _im2col.linear_backward(x, w, g, read_only, None)
    with pytest.raises(TypeError, match="2-D"):
        _im2col.linear_backward(x, w, np.ones(8, np.float32), np.empty((4, 3), np.float32), None)
    # None where an array is due (found in review: it crashed the interpreter)
    for args in ((x, None, g, np.empty((4, 3), np.float32)), (x, w, None, np.empty((4, 3), np.float32)),
                 (x, w, g, None), (None, w, g, np.empty((4, 3), np.float32))):
        with pytest.raises(TypeError, match="must be"):
            _im2col.linear_backward(*args, None)
