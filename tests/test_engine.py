"""The convolution engine: every algorithm its planner can pick, forced one by one.

Each is checked against the plain-loop reference, forward and backward, in
float32 and float64, on odd shapes (dilation, asymmetric padding, stride
larger than the kernel, one sample, one input channel), at 1 and 2 threads
with the same bits; and the planner's own choices are checked to be the ones
documented.
"""
import pickle

import numpy as np
import pytest

import pyxconv
from pyxconv import nn
from pyxconv._blas import get_isa
from pyxconv.functional import ConvPlan, conv2d, conv2d_backward, conv_algorithm
from pyxconv.functional._conv import conv_plan
from pyxconv.functional._conv import CONV_ALGORITHMS, position_tile
from pyxconv._kernels import _direct, _im2col
from reference import conv2d_by_loops

# (n, c_in, c_out, (H, W), kernel, stride, ((top, bottom), (left, right)), dilation)
GEOMETRIES = [
    (1, 1, 6, (12, 11), (5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)),  # LeNet's first layer
    (1, 3, 4, (17, 15), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    (2, 4, 5, (13, 16), (3, 2), (2, 1), ((2, 0), (0, 1)), (1, 2)),  # asymmetric, dilated
    (3, 2, 3, (11, 12), (2, 2), (3, 3), ((0, 0), (1, 1)), (1, 1)),  # stride > kernel
    (1, 5, 7, (9, 9), (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),  # pointwise
    # 3x3 of stride 1 (Winograd's): odd sizes (a last tile half outside), asymmetric and
    # wide padding, none, and a batch
    (2, 3, 5, (9, 8), (3, 3), (1, 1), ((2, 0), (0, 1)), (1, 1)),
    (1, 2, 3, (7, 10), (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (3, 4, 2, (4, 5), (3, 3), (1, 1), ((3, 2), (1, 4)), (1, 1)),
]
# (..., groups): depthwise with a channel multiplier, and two groups
GROUPED = [
    (2, 4, 8, (9, 10), (3, 3), (1, 2), ((1, 1), (0, 2)), (1, 1), 4),
    (3, 6, 4, (8, 7), (3, 2), (2, 1), ((0, 1), (1, 1)), (2, 1), 2),
    (1, 3, 3, (6, 6), (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 3),  # pointwise depthwise
]


def _case(geometry, dtype, seed):
    n, c_in, c_out, hw, kernel, stride, pads, dilation = geometry[:8]
    groups = geometry[8] if len(geometry) > 8 else 1
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in) + hw).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups) + kernel).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b, stride, pads, dilation


def _runnable(algorithm, geometry, dtype):
    kernel, stride, pads = geometry[4], geometry[5], geometry[6]
    pointwise = kernel == (1, 1) and stride == (1, 1) and pads == ((0, 0), (0, 0))
    grouped = len(geometry) > 8
    if algorithm == "direct":
        return (dtype == np.float32 and not grouped
                and _direct.channel_width(get_isa(), geometry[2]) > 0)
    if algorithm == "winograd":
        return (dtype == np.float32 and not grouped and kernel == (3, 3) and stride == (1, 1)
                and geometry[7] == (1, 1) and get_isa() != "none")
    if algorithm in ("samples", "tiles"):
        return not grouped
    if algorithm == "groups":
        return grouped
    if algorithm == "pointwise":  # one group: a grouped 1x1 runs by groups
        return pointwise and not grouped
    return True


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", CONV_ALGORITHMS)
@pytest.mark.parametrize("geometry", GEOMETRIES + GROUPED,
                         ids=lambda g: f"n{g[0]}c{g[1]}k{g[4]}s{g[5]}g{(g + (1,))[8]}")
def test_each_algorithm_matches_the_loops_forward_and_backward(geometry, algorithm, dtype):
    if not _runnable(algorithm, geometry, dtype):
        pytest.skip(f"{algorithm} does not run this geometry")
    x, w, b, stride, pads, dilation = _case(geometry, dtype, seed=len(algorithm))
    groups = geometry[8] if len(geometry) > 8 else 1
    ref_out, ref_backward = _grouped_loops(x, w, b, stride, pads, dilation, groups)
    g = np.random.default_rng(1).standard_normal(ref_out.shape).astype(dtype)
    ref_gx, ref_gw, ref_gb = ref_backward(g)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    results = []
    for threads in (1, 2):
        with pyxconv.num_threads(threads), conv_algorithm(algorithm):
            out = conv2d(x, w, b, stride, pads, dilation, groups)
            grads = conv2d_backward(g, x, w, stride, pads, dilation, groups)
        assert out.dtype == dtype and all(r.dtype == dtype for r in grads)
        np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
        for got, want in zip(grads, (ref_gx, ref_gw, ref_gb)):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)
        results.append((out,) + grads)
    for a, c in zip(*results):  # the same bits at every thread count
        np.testing.assert_array_equal(a, c)


def _grouped_loops(x, w, b, stride, pads, dilation, groups):
    """The loop reference run group by group, its pieces put side by side."""
    if groups == 1:
        return conv2d_by_loops(x, w, b, stride, pads, dilation)
    cig, cog = x.shape[1] // groups, w.shape[0] // groups
    parts = [conv2d_by_loops(x[:, i * cig:(i + 1) * cig], w[i * cog:(i + 1) * cog],
                             b[i * cog:(i + 1) * cog], stride, pads, dilation)
             for i in range(groups)]
    out = np.concatenate([p[0] for p in parts], axis=1)

    def backward(g):
        grads = [p[1](g[:, i * cog:(i + 1) * cog]) for i, p in enumerate(parts)]
        return tuple(np.concatenate([gr[j] for gr in grads], axis=1 if j == 0 else 0)
                     for j in range(3))
    return out, backward


@pytest.mark.parametrize("algorithm", ["samples", "tiles"])
def test_backward_from_kept_columns_equals_rebuilding_them(algorithm):
    x, w, b, stride, pads, dilation = _case(GEOMETRIES[2], np.float32, seed=3)
    with conv_algorithm(algorithm):
        plan = conv_plan(x.shape[2:], w.shape[2:], stride, pads, dilation, 1, x.shape[0],
                         x.shape[1], w.shape[0], x.dtype)
        assert plan.algorithm == algorithm
        out, cols = plan.forward(x, w, b, keep_columns=True)
        assert cols.shape == (x.shape[0], plan.g.rows, plan.g.positions)
        g = np.cos(out)
        kept = plan.backward(g, x, w, cols)
        rebuilt = plan.backward(g, x, w, None)
    for a, c in zip(kept, rebuilt):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


def test_a_forced_algorithm_that_cannot_run_is_refused_with_the_reason():
    x = np.ones((2, 4, 6, 6), np.float32)
    with conv_algorithm("pointwise"), pytest.raises(ValueError, match="cannot run"):
        conv2d(x, np.ones((3, 4, 3, 3), np.float32))
    with conv_algorithm("samples"), pytest.raises(ValueError, match="groups=2"):
        conv2d(x, np.ones((4, 2, 3, 3), np.float32), groups=2)
    with conv_algorithm("groups"), pytest.raises(ValueError, match="groups=1"):
        conv2d(x, np.ones((4, 4, 3, 3), np.float32))
    with conv_algorithm("winograd"), pytest.raises(ValueError, match="3x3 kernels of stride 1"):
        conv2d(x, np.ones((4, 4, 3, 3), np.float32), stride=2)
    with conv_algorithm("winograd"), pytest.raises(ValueError, match="float32"):
        conv2d(x.astype(np.float64), np.ones((4, 4, 3, 3)))
    with pytest.raises(ValueError, match="name must be one of"):
        with conv_algorithm("fft"):
            pass


def _planned(n, c_in, c_out, hw, kernel, groups=1, padding=1, threads=2):
    with pyxconv.num_threads(threads):
        return conv_plan(hw, kernel, (1, 1), ((padding, padding),) * 2, (1, 1), groups, n,
                         c_in, c_out, np.float32)


def test_the_planner_picks_as_documented():
    assert _planned(1, 64, 64, (56, 56), (3, 3)).algorithm == "tiles"  # one image, 2 cores
    assert _planned(1, 64, 64, (56, 56), (3, 3)).threads == 2
    # the batch size picks the algorithm, the thread count only how many run it
    one_thread = _planned(1, 64, 64, (56, 56), (3, 3), threads=1)
    assert one_thread.algorithm == "tiles" and one_thread.threads == 1
    assert _planned(3, 64, 64, (56, 56), (3, 3)).algorithm == "tiles"
    assert _planned(4, 64, 64, (56, 56), (3, 3), threads=8).algorithm == "samples"
    assert _planned(8, 64, 64, (56, 56), (3, 3)).algorithm == "samples"
    assert _planned(4, 8, 8, (9, 9), (1, 1), padding=0).algorithm == "pointwise"
    assert _planned(4, 8, 8, (9, 9), (1, 1), groups=2, padding=0).algorithm == "groups"
    assert _planned(4, 8, 8, (9, 9), (3, 3), groups=2).algorithm == "groups"
    assert _planned(4, 8, 8, (9, 9), (3, 3), groups=8).algorithm == "groups"  # depthwise
    # too little work for a second thread: one image of LeNet's first layer stays on one
    lenet = _planned(1, 1, 6, (32, 32), (5, 5), padding=0)
    assert lenet.algorithm == "tiles" and lenet.threads == 1
    assert isinstance(lenet, ConvPlan) and "tiles" in repr(lenet)


def test_plans_are_cached_per_setting():
    first = _planned(1, 64, 64, (56, 56), (3, 3))
    assert _planned(1, 64, 64, (56, 56), (3, 3)) is first
    assert _planned(1, 64, 64, (56, 56), (3, 3), threads=1) is not first


def test_tiles_are_set_by_the_shape_alone():
    assert position_tile(3136) % 32 == 0 and -(-3136 // position_tile(3136)) <= 16
    assert position_tile(1) == 64


@pytest.mark.parametrize("training", [True, False])
def test_the_layer_and_functional_give_the_same_bits(training):
    nn.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2))
    conv.train(training)
    x = np.random.default_rng(2).standard_normal((3, 3, 11, 10)).astype(np.float32)
    out = conv(x)
    g = np.sin(out)
    grad_x = conv.backward(g)
    w, b = conv.weight.data, conv.bias.data
    functional = conv2d(x, w, b, conv.stride, conv._pads, conv.dilation)
    if training and not _im2col.own_sgemm_serves(5, out[0, 0].size, 27):
        # (PYXCONV_ISA=none) the training forward's products are then the BLAS's, whose
        # sums may round otherwise than the functional forward's kernel (see the test
        # below; OpenBLAS's Haswell kernels on a Zen 5 differed in the last bit)
        np.testing.assert_allclose(out, functional, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(out, functional)
    fx, fw, fb = conv2d_backward(g, x, w, conv.stride, conv._pads, conv.dilation)
    np.testing.assert_array_equal(grad_x, fx)
    np.testing.assert_array_equal(conv.weight.grad, fw)
    np.testing.assert_array_equal(conv.bias.grad, fb)


# (N, C_in, H, W, C_out, kernel, padding): LeNet's layers (few output channels, which
# the own GEMM's size rule once sent to the BLAS in training only), a layer whose
# column rows pass the own GEMM's 512-deep passes, pointwise layers, small batches
SAME_BITS_LAYERS = [
    (8, 1, 32, 32, 6, 5, 0), (8, 6, 14, 14, 16, 5, 0), (6, 6, 14, 14, 16, 3, 1),
    (5, 64, 9, 9, 48, 3, 1), (2, 64, 9, 9, 48, 3, 1), (6, 40, 9, 9, 72, 1, 0),
    (1, 40, 9, 9, 72, 1, 0), (9, 20, 7, 7, 8, 3, 1),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer", SAME_BITS_LAYERS, ids=lambda l: "x".join(map(str, l)))
def test_training_inference_and_functional_give_the_same_bits(layer, dtype, threads):
    # the training forward keeps its columns and its backward reuses them; the
    # functional calls and an inference forward make their own: the same bits.
    # The training forward's products are the BLAS's in float64 (and where the own
    # GEMM does not serve), whose sums may round otherwise than the direct
    # kernel's: those forwards agree to rounding. The gradients agree to the bit
    # in every case.
    n, c_in, hw, _, c_out, k, pad = layer
    nn.manual_seed(1)
    conv = nn.Conv2d(c_in, c_out, k, padding=pad).astype(dtype)
    x = np.random.default_rng(3).standard_normal((n, c_in, hw, hw)).astype(dtype)
    with pyxconv.num_threads(threads):
        out = conv(x)
        g = np.sin(out)
        grad_x = conv.backward(g)
        with pyxconv.no_grad():
            inferred = conv(x)
        w, b = conv.weight.data, conv.bias.data
        functional = conv2d(x, w, b, padding=pad)
        fx, fw, fb = conv2d_backward(g, x, w, padding=pad)
    np.testing.assert_array_equal(inferred, functional)
    if dtype == np.float32 and _im2col.own_sgemm_serves(c_out, out[0, 0].size, c_in * k * k):
        np.testing.assert_array_equal(out, functional)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, functional, rtol=tol, atol=tol)
    np.testing.assert_array_equal(grad_x, fx)
    np.testing.assert_array_equal(conv.weight.grad, fw)
    np.testing.assert_array_equal(conv.bias.grad, fb)
    # and right: against sums over NumPy's sliding windows of the padded input
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad))), (k, k),
        axis=(2, 3))
    expected = np.einsum("nchwij,ocij->nohw", windows, w.astype(np.float64)) + b[:, None, None]
    expected_gw = np.einsum("nchwij,nohw->ocij", windows, g.astype(np.float64))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(fw, expected_gw, rtol=tol, atol=tol * 10)


def test_the_weight_gradient_keeps_no_product_per_sample():
    # per-sample products of this layer would take N * K * C_out * 4 = 37.7 MB; the
    # weight gradient keeps one partial sum per run of samples instead (at most
    # WEIGHT_GRAD_PARTIAL_BYTES), so the backward's peak is a few buffers of the
    # gradients' and weight's size
    import tracemalloc
    from pyxconv.functional._conv import WEIGHT_GRAD_PARTIAL_BYTES

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 128, 6, 6)).astype(np.float32)
    w = rng.standard_normal((128, 128, 3, 3)).astype(np.float32)
    conv = nn.Conv2d(128, 128, 3, padding=1)
    conv.weight.data[...] = w
    out = conv(x)
    g = np.cos(out)
    per_sample_products = 64 * 128 * 9 * 128 * 4
    tracemalloc.start()
    try:
        grad_x = conv.backward(g)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < WEIGHT_GRAD_PARTIAL_BYTES + 4 * x.nbytes + 2 * w.nbytes < per_sample_products
    expected_gx, expected_gw, _ = conv2d_backward(g.astype(np.float64), x.astype(np.float64),
                                                  w.astype(np.float64), padding=1)
    np.testing.assert_allclose(grad_x, expected_gx, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(conv.weight.grad, expected_gw, rtol=1e-4, atol=1e-2)


def test_pointwise_kernel_refuses_shapes_that_do_not_fit():
    from pyxconv._kernels import _im2col

    x = np.zeros((2, 3, 5), np.float32)
    out = np.zeros((2, 4, 5), np.float32)
    with pytest.raises(ValueError, match="do not fit"):
        _im2col.pointwise_products(np.zeros((4, 2), np.float32), False, x, out, None, False,
                                   5, 1)
    with pytest.raises(ValueError, match="do not fit"):
        _im2col.pointwise_products(np.zeros((4, 3), np.float32), True, x, out, None, False,
                                   5, 1)
    with pytest.raises(ValueError, match="bias has 3 values"):
        _im2col.pointwise_products(np.zeros((4, 3), np.float32), False, x, out,
                                   np.zeros(3, np.float32), False, 5, 1)
    with pytest.raises(ValueError, match="tile must be"):
        _im2col.pointwise_products(np.zeros((4, 3), np.float32), False, x, out, None, False,
                                   0, 1)


def test_a_bound_pointwise_plan_applies_bias_and_relu_in_its_pass():
    from pyxconv.functional import prepare_conv

    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 12, 5, 6)).astype(np.float32)
    w = rng.standard_normal((40, 12, 1, 1)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    x, w, b, plan = prepare_conv(x, w, b)
    assert plan.algorithm == "pointwise"
    got = plan.bind(w, b, relu=True)(x)
    expected = np.einsum("oc,nchw->nohw", w[:, :, 0, 0].astype(np.float64), x) + b[:, None, None]
    np.testing.assert_allclose(got, np.maximum(expected, 0), rtol=1e-5, atol=1e-5)
    assert (got >= 0).all()


def test_no_grad_keeps_nothing_and_backward_then_says_so():
    from pyxconv.nn import BackwardBeforeForwardError

    nn.manual_seed(0)
    layers = [nn.Conv2d(2, 3, 3), nn.Linear(4, 2), nn.ConvTranspose2d(2, 3, 2, stride=2)]
    inputs = [np.ones((2, 2, 5, 5), np.float32), np.ones((3, 4), np.float32),
              np.ones((1, 2, 3, 3), np.float32)]
    for layer, x in zip(layers, inputs):
        with pyxconv.no_grad():
            assert not pyxconv.is_grad_enabled()
            out = layer(x)
        assert pyxconv.is_grad_enabled()
        assert layer._x is None
        with pytest.raises(BackwardBeforeForwardError, match="outside no_grad"):
            layer.backward(np.ones_like(out))
        layer(x)  # outside: backward works again
        assert layer.backward(np.ones_like(out)).shape == x.shape


def test_eval_mode_keeps_no_columns_but_still_has_a_backward():
    nn.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3).eval()
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    out = conv(x)
    assert conv._cols is None
    grad_x = conv.backward(np.ones_like(out))
    np.testing.assert_allclose(grad_x, conv2d_backward(np.ones_like(out), x,
                                                       conv.weight.data)[0], rtol=1e-6)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_transposed_layers_report_their_output_shape(nd):
    layer = getattr(nn, f"ConvTranspose{nd}d")(3, 2, 3, stride=2, padding=1, output_padding=1)
    x = np.zeros((2, 3) + (4,) * nd, np.float32)
    assert layer(x).shape == layer.output_shape(x.shape) == (2, 2) + (8,) * nd


def _conv_bn_relu_model(dtype):
    nn.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, dtype=dtype), nn.BatchNorm2d(8, dtype=dtype),
                          nn.ReLU(), nn.Conv2d(8, 4, 3, bias=False, dtype=dtype), nn.ReLU(),
                          nn.Conv2d(4, 4, 1, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype),
                          nn.Flatten(), nn.Linear(4 * 9 * 9, 3, dtype=dtype))
    rng = np.random.default_rng(4)
    for layer in (model[1], model[6]):  # running statistics far from the defaults
        layer.running_mean[...] = rng.standard_normal(layer.num_features)
        layer.running_var[...] = rng.uniform(0.5, 2.0, layer.num_features)
        layer.weight.data[...] = rng.uniform(0.5, 1.5, layer.num_features)
        layer.bias.data[...] = rng.standard_normal(layer.num_features)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_eval_sequential_gives_the_unfused_outputs(dtype):
    model = _conv_bn_relu_model(dtype).eval()
    x = np.random.default_rng(5).standard_normal((2, 3, 11, 11)).astype(dtype)
    steps = model.fused_steps()
    assert len(steps) == 5  # conv+bn+relu, conv+relu, conv+bn, flatten, linear
    fused = model(x)
    unfused = x
    for layer in model:
        unfused = layer.forward(unfused)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fused, unfused, rtol=tol, atol=tol)


def test_the_fused_eval_sequential_on_winograd_gives_the_unfused_outputs():
    # a 3x3 layer of 32 channels, which the planner gives to Winograd's F(2x2, 3x3):
    # the folded BatchNorm and the ReLU go into its output transform
    nn.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
    rng = np.random.default_rng(9)
    model[1].running_mean[...] = rng.standard_normal(32)
    model[1].running_var[...] = rng.uniform(0.5, 2.0, 32)
    model.eval()
    x = rng.standard_normal((8, 32, 12, 12)).astype(np.float32)
    plan = conv_plan((12, 12), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, 8, 32, 32,
                     np.float32)
    if get_isa() != "none":
        assert plan.inference_algorithm == "winograd"
    assert len(model.fused_steps()) == 1
    fused = model(x)
    unfused = x
    for layer in model:
        unfused = layer.forward(unfused)
    assert (unfused == 0).any() and (unfused > 0).any()
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_relu_fused_in_eval_gives_the_same_bits(dtype):
    nn.manual_seed(6)
    model = nn.Sequential(nn.Linear(7, 5, dtype=dtype), nn.ReLU(), nn.Linear(5, 3, dtype=dtype),
                          nn.ReLU(), nn.Linear(3, 2, dtype=dtype)).eval()
    assert len(model.fused_steps()) == 3
    x = np.random.default_rng(7).standard_normal((4, 7)).astype(dtype)
    x[0, :] = np.nan
    with pyxconv.no_grad():
        fused = model(x)
    unfused = x
    for layer in model:
        unfused = layer.forward(unfused)
    np.testing.assert_array_equal(fused.view(np.uint8), unfused.view(np.uint8))
    assert np.isnan(fused[0]).all()


def test_relu_in_place_refuses_what_it_cannot_write():
    from pyxconv.functional import relu_
    x = np.array([-0.0, -2.0, np.nan, 3.0], np.float32)
    assert relu_(x) is x
    assert np.signbit(x[0]) and x[1] == 0 and np.isnan(x[2]) and x[3] == 3
    with pytest.raises(TypeError, match="writeable C-contiguous"):
        relu_(np.ones((4, 4))[:, ::2])
    with pytest.raises(TypeError, match="writeable C-contiguous"):
        relu_([1.0, -1.0])


def test_backward_after_a_fused_forward_runs_the_layers_first():
    model = _conv_bn_relu_model(np.float64).eval()
    x = np.random.default_rng(6).standard_normal((2, 3, 11, 11))
    out = model(x)
    grad_x = model.backward(np.ones_like(out))
    unfused = x
    for layer in model:
        unfused = layer.forward(unfused)
    np.testing.assert_allclose(grad_x, model.backward(np.ones_like(out)), rtol=1e-12)
    with pyxconv.no_grad():
        model(x)
    from pyxconv.nn import BackwardBeforeForwardError
    with pytest.raises(BackwardBeforeForwardError):
        model.backward(np.ones_like(out))


@pytest.mark.parametrize("kernel", [1, 2])  # pointwise, and the panels' output pass
def test_relu_fused_into_the_output_pass_keeps_nan(kernel):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = 1.0
    x[0, 0, 3, 3] = np.nan
    w = np.zeros((3, 1, kernel, kernel), np.float32)
    w[0, 0, 0, 0], w[1, 0, 0, 0] = 1.0, -1.0
    x, wc, bc, plan = F_prepare(x, w)
    out, _ = plan.forward(x, wc, bc, relu=True)
    assert out[0, 0, 0] == 1.0 and out[0, 1, 0] == 0.0 and not np.signbit(out[0, 1, 0])
    assert np.isnan(out[0, :, -1]).all()  # the window over the NaN


def F_prepare(x, w):
    from pyxconv.functional import prepare_conv
    return prepare_conv(x, w)


def test_a_repeated_call_skips_the_checks_but_not_for_arguments_that_only_look_alike():
    from pyxconv.functional import _conv

    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    _conv._checked_calls.clear()
    first = conv2d(x, w, stride=1, padding=1)
    assert len(_conv._checked_calls) == 1
    np.testing.assert_array_equal(conv2d(x, w, stride=1, padding=1), first)
    # True == 1 and 1.0 == 1 as dictionary keys, but the checks refuse them
    with pytest.raises((TypeError, ValueError), match="stride"):
        conv2d(x, w, stride=True, padding=1)
    with pytest.raises((TypeError, ValueError), match="padding"):
        conv2d(x, w, stride=1, padding=1.0)
    # a list is checked every time, and gives the same result
    np.testing.assert_array_equal(conv2d(x, w, stride=[1, 1], padding=1), first)
    assert len(_conv._checked_calls) == 1
    # another thread count is another plan
    with pyxconv.num_threads(1):
        np.testing.assert_array_equal(conv2d(x, w, stride=1, padding=1), first)
    assert len(_conv._checked_calls) == 2
    # a reference from plain loops, so the cached path is checked against the truth
    np.testing.assert_allclose(first, conv2d_by_loops(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1))[0], rtol=1e-5, atol=1e-5)


def test_nn_holds_no_kernel_logic():
    """nn imports neither the compiled kernels nor private names of functional."""
    import ast
    from pathlib import Path

    import pyxconv.nn

    offending = []
    for path in Path(pyxconv.nn.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                module, names = "", [alias.name for alias in node.names]
            else:
                continue
            dotted = [module] + [f"{module}.{n}" for n in names] + names
            if any("_kernels" in d or "functional._" in d for d in dotted) or (
                    module.endswith("functional") and any(n.startswith("_") for n in names)):
                offending.append(f"{path.name}:{node.lineno}")
    assert not offending, offending


@pytest.mark.parametrize("c_in, size, k", [(128, 16, 3), (64, 32, 3), (64, 56, 3), (6, 14, 5),
                                           (3, 224, 7), (512, 7, 3)])
def test_panel_rows_fit_the_cap_and_prefer_whole_tiles(c_in, size, k):
    from pyxconv.functional._conv import PANEL_BYTES, _PANEL_COLUMN_MULTIPLE, panel_rows
    plan = conv_plan((size, size), (k, k), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, 4, c_in, 64,
                     np.float32)
    g = plan.g
    rows = panel_rows(g, 4)
    per_row = g.rows * g.out_w * 4
    assert 1 <= rows <= g.out_rows
    assert rows == 1 or rows * per_row <= PANEL_BYTES
    most = min(g.out_rows, max(1, PANEL_BYTES // per_row))
    assert rows >= most * 3 // 4
    # no row count in the allowed range wastes less of the last 32-column tile
    def waste(r):
        return (-(r * g.out_w)) % _PANEL_COLUMN_MULTIPLE / (r * g.out_w)
    if most < g.out_rows:
        assert all(waste(rows) <= waste(r) for r in range(max(1, most * 3 // 4), most + 1))


def test_the_weight_gradient_drops_its_transposed_copy_where_the_limit_is_too_small():
    # grad_out[n]^T of this layer takes C_out * positions * 8 = 128 KiB a thread; under
    # a 96 KiB workspace limit (two column buffers of one output row, 72 KiB, still fit)
    # the products are made untransposed, with the same sums to rounding
    from pyxconv.functional._conv import _Geometry, weight_grad_transposed

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 16, 32, 32))
    w = rng.standard_normal((16, 16, 3, 3))
    g = rng.standard_normal((3, 16, 32, 32))
    geometry = _Geometry((32, 32), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, 3, 16, 16)
    assert weight_grad_transposed(geometry, 8)
    expected = conv2d_backward(g, x, w, padding=1)
    try:
        pyxconv.set_workspace_limit(96 * 2**10)
        assert not weight_grad_transposed(geometry, 8)
        for threads in (1, 2):
            with pyxconv.num_threads(threads):
                got = conv2d_backward(g, x, w, padding=1)
            for a, b in zip(got, expected):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-11)
    finally:
        pyxconv.set_workspace_limit(None)


def test_the_kernel_geometry_checks_its_sizes_once():
    from pyxconv._kernels._geometry import ConvGeometry
    good = ((1, 9, 8), (1, 4, 3), (1, 3, 2), (1, 2, 3), (0, 1, 0), (1, 1, 2))
    g = ConvGeometry(*good)
    assert (g.in_size, g.out_size, g.kernel_size, g.stride, g.padding, g.dilation) == good
    assert (g.kernel_volume, g.positions) == (6, 12)
    assert pickle.loads(pickle.dumps(g)) == g and hash(g) == hash(ConvGeometry(*good))
    names = ("in_size", "out_size", "kernel_size", "stride", "padding", "dilation")
    for i, name in enumerate(names):
        bad = list(good)
        bad[i] = (1, -1 if name == "padding" else 0, 2)
        with pytest.raises(ValueError, match=f"{name} must be >= "):
            ConvGeometry(*bad)
        bad[i] = (1, 2)
        with pytest.raises(ValueError, match=f"{name} must have 3 values"):
            ConvGeometry(*bad)
        bad[i] = (1, 2.0, 3)
        with pytest.raises(TypeError, match=f"{name} must be integers"):
            ConvGeometry(*bad)
    with pytest.raises(ValueError, match="too large"):
        ConvGeometry((2**31, 2**31, 2), *good[1:])
    # the plan makes its geometry once, and every call passes the same object
    plan = conv_plan((9, 8), (3, 2), (2, 3), ((1, 1), (0, 0)), (1, 2), 1, 2, 3, 4, np.float32)
    assert plan.g.kernel_geometry is plan.g.kernel_geometry
    assert plan.g.kernel_geometry.out_size == (1,) + plan.g.out_spatial


def test_unfold_kernels_refuse_chunks_and_buffers_outside_their_arrays():
    from pyxconv.functional._conv import _Geometry
    g = _Geometry((6, 6), (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, 2, 3, 1)
    size = 2 * g.rows * g.positions  # two samples' (K, L) columns

    def call(kernel, planes=(6, 6), cols_size=size, samples=(0, 2), rows=(0, 4)):
        x = np.ones((2, 3, 1) + planes)
        cols = np.zeros(cols_size)
        arrays = (x, cols) if kernel is _im2col.im2col else (cols, x)
        kernel(*arrays, g.rows * g.positions, g.positions, *samples, *rows,
               g.kernel_geometry, 1)

    for kernel in (_im2col.im2col, _im2col.col2im):
        call(kernel)
        with pytest.raises(ValueError, match="too small"):
            call(kernel, cols_size=size - 1)
        with pytest.raises(ValueError, match="not all in"):
            call(kernel, samples=(1, 2))  # samples 1 and 2 of 2
        with pytest.raises(ValueError, match="not all in"):
            call(kernel, rows=(2, 3))  # output rows 2 to 4 of 4
        with pytest.raises(ValueError, match="planes of 1 x 6 x 5"):
            call(kernel, planes=(6, 5))


def test_unfold_kernels_refuse_arguments_whose_sums_would_wrap_or_overlap():
    # (found in review) a check by addition lets n_start = 2**63 - 1 wrap negative
    from pyxconv.functional._conv import _Geometry
    g = _Geometry((6, 6), (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, 2, 3, 1)
    x = np.ones((2, 3, 1, 6, 6))
    cols = np.zeros(2 * g.rows * g.positions)
    per_sample = (g.rows * g.positions, g.positions)
    for kernel in (_im2col.im2col, _im2col.col2im):
        arrays = (x, cols) if kernel is _im2col.im2col else (cols, x)
        with pytest.raises(ValueError, match="not all in"):
            kernel(*arrays, *per_sample, 2**63 - 1, 1, 0, 4, g.kernel_geometry, 1)
        with pytest.raises(ValueError, match="not all in"):
            kernel(*arrays, *per_sample, 0, 2, 2**63 - 1, 1, g.kernel_geometry, 1)
        with pytest.raises(ValueError, match="too small"):
            kernel(*arrays, 2**62, g.positions, 0, 2, 0, 4, g.kernel_geometry, 1)
        with pytest.raises(ValueError, match="overlap"):  # rows 8 values apart, 16 long
            kernel(*arrays, g.rows * g.positions, 8, 0, 2, 0, 4, g.kernel_geometry, 1)


def test_products_that_become_gemv_hold_the_blas_to_one_thread_above_its_gemv_bound():
    # (found in review) OpenBLAS keeps a gemm under 65536 multiply-adds on the calling
    # thread, but splits a gemv over its threads from 2304 * 4 matrix elements on
    from pyxconv._blas import gemms_single_threaded_below, gemvs_single_threaded_below
    from pyxconv._parallel import blas_on_one_thread, small_product
    from pyxconv.functional._conv import _Geometry

    if not gemms_single_threaded_below():
        pytest.skip("not OpenBLAS alone: every product holds the BLAS to one thread")
    limit = blas_on_one_thread()
    assert gemvs_single_threaded_below() < 48000 < gemms_single_threaded_below()
    assert small_product(48000, one_row=True) is limit  # LeNet's Linear at batch 1
    assert small_product(48000) is not limit and small_product(100, one_row=True) is not limit
    one_channel = _Geometry((16, 16), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, 1, 4, 1)
    assert one_channel.c_out * one_channel.rows * one_channel.positions < 65536
    assert one_channel.blas_limit is limit  # (1 x 36) @ (36 x 256): a gemv of 9216
    several = _Geometry((16, 16), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, 1, 4, 4)
    assert several.blas_limit is not limit
