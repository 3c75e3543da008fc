"""Winograd's F(2x2, 3x3) forward (pyxconv._kernels._winograd) and the planner's use of it.

Checked against the plain-loop reference in float64, on odd sizes (a last tile half
outside the output), asymmetric and wide padding, with and without bias and ReLU;
the bits do not depend on the thread count, the tile blocks or the instruction set.
"""
import numpy as np
import pytest

import pyxconv
from pyxconv import _blas
from pyxconv.functional import conv2d, conv2d_backward, conv_algorithm
from pyxconv.functional._conv import conv_plan
from pyxconv._kernels import _winograd
from reference import conv2d_by_loops

# (n, c_in, c_out, (H, W), ((top, bottom), (left, right)))
SHAPES = [
    (2, 3, 4, (9, 8), ((1, 1), (1, 1))),
    (1, 5, 3, (7, 10), ((0, 0), (0, 0))),
    (3, 2, 5, (4, 5), ((3, 2), (1, 4))),     # padding wider than the kernel
    (1, 4, 2, (3, 3), ((0, 0), (0, 0))),     # one output
    (2, 6, 7, (13, 21), ((2, 0), (0, 1))),   # asymmetric
    (1, 3, 2, (6, 70), ((1, 1), (1, 1))),    # 35 tiles a row
    (1, 2, 3, (5, 300), ((1, 1), (0, 2))),   # 150 tiles a row: three chunks of the transform
]


def _run(x, w, b, pads, threads, isa, relu=False):
    n, _, h, wd = x.shape
    out_h = h + sum(pads[0]) - 2
    out_w = wd + sum(pads[1]) - 2
    out = np.full((n, w.shape[0], out_h, out_w), np.nan, np.float32)
    u = _winograd.transform_weights(w, threads)
    _winograd.conv_forward(x, u, b, out, pads[0][0], pads[1][0], isa, threads, relu=relu)
    return out


def _own_gemm_isas():
    return [isa for isa in _blas.available_isas() if isa != "none"]


needs_own_gemm = pytest.mark.skipif(not _own_gemm_isas(),
                                    reason="no own-GEMM instruction set on this CPU or build")


@needs_own_gemm
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}c{s[1]}o{s[2]}{s[3]}")
def test_matches_the_loops_at_every_thread_count_and_instruction_set(shape, with_bias):
    n, c_in, c_out, hw, pads = shape
    rng = np.random.default_rng(sum(hw))
    x = rng.standard_normal((n, c_in) + hw).astype(np.float32)
    w = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32) if with_bias else None
    ref, _ = conv2d_by_loops(x.astype(np.float64), w.astype(np.float64),
                             b.astype(np.float64) if with_bias else np.zeros(c_out),
                             (1, 1), pads, (1, 1))
    results = []
    for isa in _own_gemm_isas():
        for threads in (1, 2):
            out = _run(x, w, b, pads, threads, isa)
            # every output written (no NaN left), each within float32 rounding of the
            # sum: a few ulps of the terms' magnitude more than im2col's
            scale = np.abs(x).max() * np.abs(w).sum(axis=(1, 2, 3)).max()
            np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6 * scale)
            results.append(out)
    for other in results[1:]:  # the same bits on every instruction set and thread count
        assert other.tobytes() == results[0].tobytes()


@needs_own_gemm
def test_relu_is_the_unfused_relu_of_the_output_to_the_bit():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 11, 9)).astype(np.float32)
    w = rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    isa = _own_gemm_isas()[0]
    plain = _run(x, w, b, ((1, 1), (1, 1)), 2, isa)
    fused = _run(x, w, b, ((1, 1), (1, 1)), 2, isa, relu=True)
    assert (plain < 0).any()
    assert fused.tobytes() == np.where(plain < 0, np.float32(0), plain).tobytes()


@needs_own_gemm
def test_tile_blocks_split_one_image_without_changing_the_bits():
    # one 16 x 16 image (64 tiles): one run at 1 thread, two at 2
    assert _winograd.tile_block(32, 32, 64, 1, 1) == 64
    assert _winograd.tile_block(32, 32, 64, 1, 2) == 32
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 32, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)
    isa = _own_gemm_isas()[0]
    one, two = (_run(x, w, None, ((1, 1), (1, 1)), t, isa) for t in (1, 2))
    assert one.tobytes() == two.tobytes()
    with conv_algorithm("samples"):
        im2col = conv2d(x, w, padding=1)
    np.testing.assert_allclose(one, im2col, rtol=1e-4, atol=1e-4)


@needs_own_gemm
def test_one_image_splits_into_a_whole_number_of_rounds_over_the_threads():
    # 64 -> 64 channels, 56 x 56 (784 tiles): 7 runs fill the scratch; on 2 threads
    # that would be 4 runs against 3, so it takes 8, with the same bits as one run
    assert -(-784 // _winograd.tile_block(64, 64, 784, 1, 1)) == 7
    block = _winograd.tile_block(64, 64, 784, 1, 2)
    assert -(-784 // block) % 2 == 0
    assert 16 * 128 * block <= _winograd.SCRATCH_FLOATS
    assert -(-784 // _winograd.tile_block(64, 64, 784, 16, 2)) == 7  # enough tasks already
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.1).astype(np.float32)
    isa = _own_gemm_isas()[0]
    one, two = (_run(x, w, None, ((1, 1), (1, 1)), t, isa) for t in (1, 2))
    assert one.tobytes() == two.tobytes()


def test_tile_blocks_hold_the_scratch_near_its_target():
    for c_in, c_out, tiles in ((64, 64, 784), (128, 128, 64), (256, 256, 49), (3, 5, 7)):
        block = _winograd.tile_block(c_in, c_out, tiles)
        assert 1 <= block <= tiles
        assert block <= 32 or 16 * (c_in + c_out) * block <= _winograd.SCRATCH_FLOATS


@needs_own_gemm
def test_bad_arguments_are_refused_before_the_kernel_runs():
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    u = _winograd.transform_weights(w)
    out = np.empty((1, 3, 3, 3), np.float32)
    isa = _own_gemm_isas()[0]
    with pytest.raises(ValueError, match="own-GEMM instruction set"):
        _winograd.conv_forward(x, u, None, out, 0, 0, "none", 1)
    with pytest.raises(ValueError, match=r"does not match .* \(16, 3, 2\) wanted"):
        _winograd.conv_forward(x, u[:, :2], None, out, 0, 0, isa, 1)
    with pytest.raises(ValueError, match="x .* and out .* do not match"):
        _winograd.conv_forward(x, u, None, out[:0], 0, 0, isa, 1)
    with pytest.raises(TypeError, match="float32"):
        _winograd.conv_forward(x.astype(np.float64), u, None, out, 0, 0, isa, 1)
    with pytest.raises(ValueError, match=">= 0"):
        _winograd.conv_forward(x, u, None, out, -1, 0, isa, 1)
    with pytest.raises(TypeError, match="bias"):
        _winograd.conv_forward(x, u, np.ones(2, np.float32), out, 0, 0, isa, 1)
    with pytest.raises(ValueError, match=r"\(C_out, C_in, 3, 3\)"):
        _winograd.transform_weights(np.ones((3, 2, 5, 5), np.float32))


@needs_own_gemm
def test_the_planner_runs_it_in_training_and_inference_and_the_backward_is_right():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 32, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    plan = conv_plan((16, 16), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, 8, 32, 32,
                     np.float32)
    assert plan.inference_algorithm == "winograd" and not plan.keeps_columns
    conv = pyxconv.nn.Conv2d(32, 32, 3, padding=1)
    conv.weight.data[...] = w
    conv.bias.data[...] = b
    trained = conv(x)
    g = np.cos(trained)
    grad_x = conv.backward(g)
    # the reference: sums over NumPy's sliding windows of the padded input, in float64
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    ref_out = np.einsum("nchwij,ocij->nohw", windows, w.astype(np.float64)) + b[:, None, None]
    ref_gw = np.einsum("nchwij,nohw->ocij", windows, g.astype(np.float64))
    gp = np.pad(g.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    g_windows = np.lib.stride_tricks.sliding_window_view(gp, (3, 3), axis=(2, 3))
    ref_gx = np.einsum("nohwij,ocij->nchw", g_windows, w[:, :, ::-1, ::-1].astype(np.float64))
    np.testing.assert_allclose(trained, ref_out, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad_x, ref_gx, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(conv.weight.grad, ref_gw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(conv.bias.grad, g.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-3)
    conv.eval()
    assert conv(x).tobytes() == trained.tobytes() == conv2d(x, w, b, padding=1).tobytes()


@needs_own_gemm
def test_forward_and_backward_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 48, 18, 15)).astype(np.float32)
    w = (rng.standard_normal((40, 48, 3, 3)) * 0.1).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    pads = ((1, 2), (0, 1))
    plan = conv_plan((18, 15), (3, 3), (1, 1), pads, (1, 1), 1, 4, 48, 40, np.float32)
    assert plan.inference_algorithm == "winograd" and plan.winograd_input_grad
    out = conv2d(x, w, b, padding=pads)
    g = np.sin(out)
    gx, gw, gb = conv2d_backward(g, x, w, padding=pads)
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(w).requires_grad_()
    tb = torch.from_numpy(b).requires_grad_()
    # torch pads symmetrically only: pad the input by hand (left, right, top, bottom)
    padded = torch.nn.functional.pad(tx, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    tout = torch.nn.functional.conv2d(padded, tw, tb)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-4, atol=1e-3)


@needs_own_gemm
@pytest.mark.parametrize("shape", [(1, 4, 5, (13, 21), ((2, 0), (0, 1))),
                                   (16, 3, 2, (9, 8), ((1, 1), (1, 1)))],
                         ids=["one-run", "several-runs"])
def test_weight_gradient_matches_the_loops_and_keeps_its_bits(shape):
    # the batch's tiles go in runs fixed by the shapes (more than one for the second),
    # each summed apart and added in order: the same bits at every thread count and ISA
    n, c_in, c_out, hw, pads = shape
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, c_in) + hw).astype(np.float32)
    w = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32)
    out_hw = tuple(s + sum(p) - 2 for s, p in zip(hw, pads))
    gy = rng.standard_normal((n, c_out) + out_hw).astype(np.float32)
    tiles = n * -(-out_hw[0] // 2) * -(-out_hw[1] // 2)
    runs = _winograd.weight_grad_runs(c_in, c_out, tiles)
    assert (runs > 1) == (n == 16)
    _, ref_backward = conv2d_by_loops(x.astype(np.float64), w.astype(np.float64),
                                      np.zeros(c_out), (1, 1), pads, (1, 1))
    _, ref_gw, _ = ref_backward(gy.astype(np.float64))
    results = []
    for isa in _own_gemm_isas():
        for threads in (1, 2):
            with pyxconv.num_threads(threads), conv_algorithm("winograd"):
                plan = conv_plan(hw, (3, 3), (1, 1), pads, (1, 1), 1, n, c_in, c_out,
                                 np.float32)
                assert plan.winograd_weight_grad
                _, gw, _ = plan.backward(gy, x, w, needs_input_grad=False)
            np.testing.assert_allclose(gw, ref_gw, rtol=1e-4, atol=1e-4 * np.abs(ref_gw).max())
            results.append(gw)
    for other in results[1:]:
        assert other.tobytes() == results[0].tobytes()


@needs_own_gemm
def test_weight_gradient_kernel_refuses_bad_arguments():
    x = np.ones((2, 3, 6, 6), np.float32)
    gy = np.ones((2, 4, 4, 4), np.float32)
    du = np.empty((1, 16, 3, 4), np.float32)
    isa = _own_gemm_isas()[0]
    with pytest.raises(ValueError, match="do not match"):
        _winograd.conv_weight_grad(x, gy[:1], du, 0, 0, isa, 1)
    with pytest.raises(ValueError, match=r"does not match .* \(runs, 16, 3, 4\) wanted"):
        _winograd.conv_weight_grad(x, gy, du[:, :, :2], 0, 0, isa, 1)
    with pytest.raises(ValueError, match="own-GEMM"):
        _winograd.conv_weight_grad(x, gy, du, 0, 0, "none", 1)
    with pytest.raises(ValueError, match="read-only"):
        du.setflags(write=False)
        _winograd.conv_weight_grad(x, gy, du, 0, 0, isa, 1)
