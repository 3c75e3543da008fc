"""The direct convolution kernel for few output channels (pyxconv._kernels._direct).

It runs inference forwards without columns. Checked here: its bits equal the own
GEMM's product of the im2col columns (the one FMA chain per output its header
promises) on every instruction set this machine has, forward results against the
plain loops in 1, 2 and 3 dimensions, the same bits at 1 and 2 threads, the
lanes a tile computes past a row's end never reaching the output, the planner's
choice, and the refusals.
"""
import numpy as np
import pytest

import pyxconv
from pyxconv import functional as F
from pyxconv import nn
from pyxconv._blas import available_isas, get_isa, set_isa
from pyxconv._kernels import _direct, _im2col
from pyxconv._kernels._geometry import ConvGeometry
from pyxconv.functional import conv_algorithm
from pyxconv.functional._conv import (DIRECT_MIN_ROWS_PER_CHANNEL,
                                     DIRECT_SHORT_TILE_MAX_WEIGHT_BYTES, _Geometry, conv_plan)
from reference import conv2d_by_loops

DIRECT_ISAS = [isa for isa in available_isas() if _direct.channel_width(isa, 1)]
needs_direct = pytest.mark.skipif(not DIRECT_ISAS, reason="no direct kernel on this CPU/build")

# (n, c_in, spatial, kernel, stride, pads (before, after) per dim, dilation)
GEOMETRIES = [
    (2, 6, (14, 14), (5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)),  # LeNet's second layer
    (1, 1, (13, 11), (5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)),  # one input channel
    (3, 3, (17, 15), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),  # stride 2
    (2, 4, (13, 16), (3, 2), (2, 1), ((2, 0), (0, 1)), (1, 2)),  # asymmetric, dilated
    (3, 2, (11, 12), (2, 2), (3, 3), ((0, 0), (1, 1)), (1, 1)),  # stride > kernel
    (1, 3, (30, 29), (7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1)),  # a 7x7 stem
    (2, 3, (9, 37), (3, 3), (1, 1), ((1, 1), (2, 0)), (1, 2)),   # wide rows: tiles by rows
    (1, 1, (32, 32), (5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)),  # LeNet's first layer
    (2, 5, (40,), (4,), (1,), ((2, 1),), (2,)),                    # 1-D
    (2, 3, (6, 7, 8), (3, 2, 3), (1, 2, 1), ((1, 1), (0, 1), (1, 0)), (1, 1, 2)),  # 3-D
]
IDS = [f"{len(g[2])}d-n{g[0]}c{g[1]}k{g[3]}s{g[4]}" for g in GEOMETRIES]


def _operands(geometry, c_out, seed=0):
    n, c_in, spatial, kernel = geometry[:4]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in) + spatial).astype(np.float32)
    w = rng.standard_normal((c_out, c_in) + kernel).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    return x, w, b


def _direct_forward(x, w, b, geometry, isa, threads, relu=False):
    """The kernel itself, with the engine's geometry (1-D and 2-D padded out to 3-D)."""
    n, c_in, spatial, kernel, stride, pads, dilation = geometry
    g = _Geometry(spatial, kernel, stride, pads, dilation, 1, n, c_in, w.shape[0])
    out = np.full((n, w.shape[0], g.positions), np.nan, np.float32)
    _direct.conv_forward_direct(x.reshape((n, c_in) + g.in3), w.reshape(w.shape[0], -1), b,
                                out, isa, g.kernel_geometry, threads, relu=relu)
    return out, g


def _columns_through_own_gemm(x, w, b, geometry, isa, relu=False):
    """weight @ im2col(x[n]) on the own GEMM, then the bias and ReLU: the bits to match."""
    n, c_in, spatial, kernel, stride, pads, dilation = geometry
    g = _Geometry(spatial, kernel, stride, pads, dilation, 1, n, c_in, w.shape[0])
    x5 = np.ascontiguousarray(x.reshape((n, c_in) + g.in3))
    cols = np.empty((n, g.rows, g.positions), np.float32)
    from pyxconv.functional._conv import _run_im2col
    _run_im2col(x5, cols.reshape(-1), g, 0, n, 0, g.out_rows, 1, per_sample=True)
    w2 = w.reshape(w.shape[0], -1)
    out = np.empty((n, w.shape[0], g.positions), np.float32)
    for s in range(n):
        _im2col.sgemm_own(w2, cols[s], out[s], isa=isa if isa != "neon" else None)
    out = out + b[:, None]
    return np.where(out < 0, np.float32(0), out) if relu else out


@needs_direct
@pytest.mark.parametrize("isa", DIRECT_ISAS)
@pytest.mark.parametrize("c_out", [1, 6, 8, 9, 16, 17, 32, 33, 64, 65, 130])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
def test_the_direct_kernel_gives_the_own_gemm_bits(geometry, c_out, isa):
    x, w, b = _operands(geometry, c_out)
    want = _columns_through_own_gemm(x, w, b, geometry, isa)
    for threads in (1, 2):
        got, _ = _direct_forward(x, w, b, geometry, isa, threads)
        np.testing.assert_array_equal(got, want)


@needs_direct
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES if len(g[2]) == 2],
                         ids=[i for i, g in zip(IDS, GEOMETRIES) if len(g[2]) == 2])
def test_the_direct_kernel_matches_the_loops(geometry, relu):
    isa = DIRECT_ISAS[0]
    x, w, b = _operands(geometry, 40, seed=1)  # a whole block and a part of one
    ref, _ = conv2d_by_loops(x, w, b, geometry[4], geometry[5], geometry[6])
    if relu:
        ref = np.maximum(ref, 0)
    got, g = _direct_forward(x, w, b, geometry, isa, 2, relu=relu)
    np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)


@needs_direct
@pytest.mark.parametrize("isa", DIRECT_ISAS)
@pytest.mark.parametrize("width", [6, 64])  # channel tiles; row tiles stored as vectors
def test_relu_in_the_direct_kernel_keeps_nan_and_turns_negatives_to_plus_zero(isa, width):
    x = np.zeros((1, 1, 2, width), np.float32)
    x[0, 0, 0, 0], x[0, 0, 1, -1] = 1.0, np.nan
    w = np.zeros((3, 1, 1, 1), np.float32)
    w[:, 0, 0, 0] = (1.0, -1.0, 0.0)
    geometry = (1, 1, (2, width), (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1))
    out, _ = _direct_forward(x, w, None, geometry, isa, 1, relu=True)
    assert out[0, 0, 0] == 1.0 and out[0, 1, 0] == 0.0 and not np.signbit(out[0, 1, 0])
    assert np.isnan(out[0, :, -1]).all()
    want = _columns_through_own_gemm(x, w, np.zeros(3, np.float32), geometry, isa, relu=True)
    np.testing.assert_array_equal(out, want)


@needs_direct
@pytest.mark.parametrize("geometry, c_out", [
    ((2, 6, (14, 14), (5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)), 16),  # channel tiles
    ((2, 1, (28, 37), (5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)), 6),   # row tiles
])
def test_lanes_past_a_row_end_never_reach_the_output(geometry, c_out):
    # Unpadded: the last tile of each row computes positions past its end, reading
    # into the next row and, for all but the last sample, into the next sample.
    # That sample holds inf and NaN: nothing of it may leak into the first one's outputs.
    x, w, b = _operands(geometry, c_out)
    x[1] = np.inf
    x[1, :, ::2] = np.nan
    ref, _ = conv2d_by_loops(x[:1], w, b, geometry[4], geometry[5], geometry[6])
    for isa in DIRECT_ISAS:
        got, _ = _direct_forward(x, w, b, geometry, isa, 1)
        assert np.isfinite(got[0]).all()
        np.testing.assert_allclose(got[:1].reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)


def test_both_tile_shapes_are_exercised():
    if not DIRECT_ISAS:
        pytest.skip("no direct kernel on this CPU/build")
    isa = DIRECT_ISAS[0]
    assert _direct.channel_width(isa, 6, 1, 28) == 6        # rows of 6 channels
    assert _direct.channel_width(isa, 6, 2, 28) >= 8        # stride 2: channel vectors
    assert _direct.channel_width(isa, 9, 1, 28) >= 16       # more than 8 channels


@needs_direct
def test_a_view_ending_the_buffer_is_read_only_inside_it():
    # x ends exactly where its (larger) buffer would go on: the last sample's
    # overrunning tile must read a padded copy, not the memory after x.
    geometry = GEOMETRIES[0]
    x, w, b = _operands(geometry, 16)
    backing = np.full(x.size + 64, np.nan, np.float32)
    backing[:x.size] = x.ravel()
    view = backing[:x.size].reshape(x.shape)
    got, _ = _direct_forward(view, w, b, geometry, DIRECT_ISAS[0], 1)
    assert np.isfinite(got).all()


@needs_direct
def test_the_planner_picks_the_direct_kernel_for_few_output_channels():
    isa = get_isa()
    if not _direct.channel_width(isa, 1):
        pytest.skip(f"no direct kernel on {isa}")

    def plan(c_in, c_out, hw, k, pad=0, dtype=np.float32, groups=1, stride=1, n=8):
        return conv_plan(hw, (k, k), (stride, stride), ((pad, pad),) * 2, (1, 1), groups, n,
                         c_in, c_out, dtype)

    assert plan(6, 16, (14, 14), 5).inference_algorithm == "direct"  # LeNet's second layer
    assert plan(6, 16, (14, 14), 5).algorithm == "samples"  # what training runs
    # stride 2, fewer column rows per output channel than DIRECT_MIN_ROWS_PER_CHANNEL
    # times a block of at least 16 channels: panels
    assert 3 * 9 < DIRECT_MIN_ROWS_PER_CHANNEL * 16
    assert plan(3, 32, (32, 32), 3, pad=1, stride=2).inference_algorithm == "panels"
    # at stride 1 the same rows get the row tiles (blocks of 6 channels): direct
    assert _direct.channel_width(isa, 32, 1, 32, 27) == 6
    assert plan(3, 32, (32, 32), 3, pad=1).inference_algorithm == "direct"
    # a 7x7 stride-2 stem: its blocks' packed weights stay in the L1 cache, so direct
    # however few positions the tile holds
    assert 4 * 3 * 49 * _direct.channel_width(isa, 64, 2, 112, 147) \
        <= DIRECT_SHORT_TILE_MAX_WEIGHT_BYTES
    assert plan(3, 64, (224, 224), 7, pad=3, stride=2, n=1).inference_algorithm == "direct"
    assert plan(6, 16, (14, 14), 5, dtype=np.float64).inference_algorithm == "panels"
    assert plan(8, 8, (14, 14), 3, groups=2).inference_algorithm == "groups"
    assert plan(1, 64, (14, 14), 1, pad=1).inference_algorithm == "panels"  # K = 1
    assert plan(64, 64, (14, 14), 1).inference_algorithm == "pointwise"
    wide = plan(64, 64, (14, 14), 5, pad=2)  # direct where the tiles hold 6 positions
    want = "direct" if _direct.tile_positions(isa, 64) >= 6 else "panels"
    assert wide.inference_algorithm == want
    # 3x3 of stride 1 with at least WINOGRAD_MIN_CHANNELS channels in and out: Winograd,
    # in training too (it keeps no columns)
    assert plan(64, 64, (14, 14), 3, pad=1).inference_algorithm == "winograd"
    assert not plan(64, 64, (14, 14), 3, pad=1).keeps_columns
    assert plan(32, 32, (14, 14), 3, pad=1).inference_algorithm == "winograd"
    assert plan(31, 64, (14, 14), 3, pad=1).inference_algorithm != "winograd"
    assert plan(256, 257, (14, 14), 3, pad=1).inference_algorithm != "winograd"
    assert plan(64, 64, (7, 7), 3, pad=1).inference_algorithm != "winograd"  # 16 tiles
    one = conv_plan((14, 14), (3, 3), (1, 1), ((1, 1),) * 2, (1, 1), 1, 1, 64, 64,
                    np.float32)  # one image of 49 tiles
    assert one.inference_algorithm == "winograd"
    assert plan(64, 64, (14, 14), 3, pad=1, dtype=np.float64).inference_algorithm == "panels"
    previous = set_isa("none")
    try:
        assert plan(6, 16, (14, 14), 5).inference_algorithm == "panels"  # a plan per ISA
    finally:
        set_isa(previous)


@needs_direct
def test_the_layer_in_eval_and_the_functional_call_give_the_same_bits():
    nn.manual_seed(3)
    conv = nn.Conv2d(6, 16, 5, padding=1).eval()
    x = np.random.default_rng(4).standard_normal((5, 6, 14, 14)).astype(np.float32)
    with pyxconv.no_grad():
        out = conv(x)
    np.testing.assert_array_equal(out, F.conv2d(x, conv.weight.data, conv.bias.data, padding=1))
    x, w, b, plan = F.prepare_conv(x, conv.weight.data, conv.bias.data, padding=1)
    assert plan.inference_algorithm == "direct"


def test_forcing_the_direct_kernel_where_it_cannot_run_says_why():
    x = np.ones((2, 4, 6, 6))
    with conv_algorithm("direct"), pytest.raises(ValueError, match="direct.*float64"):
        F.conv2d(x, np.ones((3, 4, 3, 3)))
    with conv_algorithm("direct"), pytest.raises(ValueError, match="groups=2"):
        F.conv2d(x.astype(np.float32), np.ones((4, 2, 3, 3), np.float32), groups=2)
    previous = set_isa("none")
    try:
        with conv_algorithm("direct"), pytest.raises(ValueError, match="'none'"):
            F.conv2d(x.astype(np.float32), np.ones((3, 4, 3, 3), np.float32))
    finally:
        set_isa(previous)
    pyxconv.set_workspace_limit(1024)
    try:
        with conv_algorithm("direct"), pytest.raises(ValueError, match="workspace limit"):
            F.conv2d(np.ones((2, 4, 30, 30), np.float32), np.ones((3, 4, 3, 3), np.float32))
    finally:
        pyxconv.set_workspace_limit(None)


@needs_direct
def test_the_kernel_refuses_arguments_that_disagree():
    isa = DIRECT_ISAS[0]
    x = np.ones((1, 2, 1, 6, 6), np.float32)
    w = np.ones((4, 18), np.float32)
    geometry = ConvGeometry((1, 6, 6), (1, 4, 4), (1, 3, 3), (1, 1, 1), (0, 0, 0), (1, 1, 1))
    args = (geometry, 1)
    _direct.conv_forward_direct(x, w, None, np.empty((1, 4, 16), np.float32), isa, *args)
    with pytest.raises(ValueError, match="planes of 1 x 6 x 7"):
        _direct.conv_forward_direct(np.ones((1, 2, 1, 6, 7), np.float32), w, None,
                                    np.empty((1, 4, 16), np.float32), isa, *args)
    with pytest.raises(ValueError, match="inconsistent"):
        _direct.conv_forward_direct(x, w, None, np.empty((1, 4, 15), np.float32), isa, *args)
    with pytest.raises(ValueError, match="inconsistent"):
        _direct.conv_forward_direct(x, np.ones((4, 17), np.float32), None,
                                    np.empty((1, 4, 16), np.float32), isa, *args)
    with pytest.raises(ValueError, match="contiguous"):
        wide = np.ones((1, 4, 1, 6, 6), np.float32)[:, ::2]
        _direct.conv_forward_direct(wide, w, None, np.empty((1, 4, 16), np.float32), isa,
                                    *args)
    with pytest.raises(ValueError, match="no direct kernel"):
        _direct.conv_forward_direct(x, w, None, np.empty((1, 4, 16), np.float32), "none",
                                    *args)
    with pytest.raises(ValueError, match="unknown instruction set"):
        _direct.channel_width("sse9", 4)
    assert _direct.channel_width("none", 4) == 0


_GUARD_PAGE_SCRIPT = r"""
import ctypes, mmap, sys
import numpy as np
from pyxconv._kernels import _direct
from pyxconv._kernels._geometry import ConvGeometry
page = mmap.PAGESIZE
buf = mmap.mmap(-1, 2 * page)
libc = ctypes.CDLL(None, use_errno=True)
base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
assert libc.mprotect(ctypes.c_void_p(base + page), page, 0) == 0  # PROT_NONE
n, length, k = 3, 6, 5  # tiny samples: a 12-position tile reads past two of them
count = n * length
x = np.frombuffer(buf, np.float32, count, page - 4 * count).reshape(n, 1, 1, 1, length)
x[...] = np.arange(count, dtype=np.float32).reshape(x.shape)
w = np.ones((2, k), np.float32)
out = np.empty((n, 2, length - k + 1), np.float32)
for isa in sys.argv[1:]:
    for threads in (1, 2):
        geometry = ConvGeometry((1, 1, length), (1, 1, length - k + 1), (1, 1, k), (1, 1, 1),
                                (0, 0, 0), (1, 1, 1))
        _direct.conv_forward_direct(x, w, None, out, isa, geometry, threads)
        want = np.stack([np.convolve(x[s, 0, 0, 0], np.ones(k), "valid") for s in range(n)])
        assert np.array_equal(out[:, 0], want) and np.array_equal(out[:, 1], want), isa
print("ok")
"""


@needs_direct
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs POSIX mprotect")
def test_tiles_never_read_past_the_input_array(tmp_path):
    # x ends right before a PROT_NONE page: a read past it would kill the process
    import subprocess
    import sys
    script = tmp_path / "guard.py"
    script.write_text(_GUARD_PAGE_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), *DIRECT_ISAS], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr)


@needs_direct
def test_workspace_bytes_counts_the_packed_weights_and_a_padded_sample_per_thread():
    # LeNet's second layer, 64 samples, 2 threads, by hand: weights 150 rows x one block of
    # 16 channels = 2400 floats; a sample 6 x 14 x 14 = 1176 floats (plus at most one read
    # past it), rounded up to 1184; two buffers; 64 bytes of alignment.
    geometry = ConvGeometry((1, 14, 14), (1, 10, 10), (1, 5, 5), (1, 1, 1), (0, 0, 0), (1, 1, 1))
    for isa in DIRECT_ISAS:
        got = _direct.workspace_bytes(64, 6, 16, isa, geometry, 2)
        assert got == (2400 + 2 * 1184) * 4 + 64, isa
    assert _direct.workspace_bytes(64, 6, 16, "none", geometry, 2) == 0
