"""ONNX operators run on NumPy arrays through :mod:`pyxconv.functional`.

Each entry of :data:`OPS` takes ``(inputs, attrs, node)`` and returns a list of
outputs. Attributes an operator does not support raise :class:`UnsupportedOnnxError`
naming the operator type, the attribute and the node.
"""
import functools
import inspect

import numpy as np

import pyxconv.functional as F


class UnsupportedOnnxError(NotImplementedError):
    """An ONNX operator, attribute or attribute value pyxconv cannot run."""


def _fail(node, what):
    raise UnsupportedOnnxError(f"ONNX node {node.name!r} (op_type {node.op_type}): {what}")


def _spatial_pads(node, x, attrs, kernel, strides, dilations):
    """(before, after) pairs from ``pads``/``auto_pad``."""
    nd = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * (2 * nd)))
        return [(pads[i], pads[i + nd]) for i in range(nd)]
    if auto == "VALID":
        return [(0, 0)] * nd
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pairs = []
        for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small = total // 2
            pairs.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
        return pairs
    _fail(node, f"attribute auto_pad={auto!r} is not supported")


def _conv(inputs, attrs, node):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    nd = x.ndim - 2
    if nd not in (1, 2, 3):
        _fail(node, f"{nd}-d convolution is not supported (1-3 spatial dims)")
    kernel = tuple(w.shape[2:])
    strides = tuple(attrs.get("strides", [1] * nd))
    dil = tuple(attrs.get("dilations", [1] * nd))
    pads = tuple(tuple(p) for p in _spatial_pads(node, x, attrs, kernel, strides, dil))
    fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    return [fn(_f(x), _f(w), None if b is None else _f(b), strides, pads, dil,
               int(attrs.get("group", 1)))]


def _f(a):
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32)
    return np.ascontiguousarray(a)


def _conv_transpose(inputs, attrs, node):
    x, w = _f(inputs[0]), _f(inputs[1])
    b = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    nd = x.ndim - 2
    if nd not in (1, 2, 3):
        _fail(node, f"{nd}-d transposed convolution is not supported")
    g = int(attrs.get("group", 1))
    kernel = w.shape[2:]
    s = list(attrs.get("strides", [1] * nd))
    d = list(attrs.get("dilations", [1] * nd))
    op = list(attrs.get("output_padding", [0] * nd))
    auto = attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    full = [(x.shape[2 + i] - 1) * s[i] + op[i] + (kernel[i] - 1) * d[i] + 1 for i in range(nd)]
    if "output_shape" in attrs:
        target = list(attrs["output_shape"])[-nd:]
        totals = [full[i] - target[i] for i in range(nd)]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            upper = auto == "SAME_UPPER"
            pairs = [((t // 2, t - t // 2) if upper else (t - t // 2, t // 2)) for t in totals]
        else:
            # as onnx's reference: no padding at the start, the output ends where asked
            pairs = [(0, t) for t in totals]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        totals = [full[i] - x.shape[2 + i] * s[i] for i in range(nd)]
        upper = auto == "SAME_UPPER"
        pairs = [((t // 2, t - t // 2) if upper else (t - t // 2, t // 2)) for t in totals]
    elif auto in ("VALID", "NOTSET", ""):
        pads = list(attrs.get("pads", [0] * (2 * nd)))
        pairs = [(pads[i], pads[i + nd]) for i in range(nd)]
    else:
        _fail(node, f"attribute auto_pad={auto!r} is not supported")
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
    y = fn(x, w, None if b is None else _f(b), tuple(s), 0, 0, g, tuple(d))
    # y covers the full output but output_padding; that and negative pads (an output
    # larger than the full one) extend it with positions no input reaches: bias only
    grow = [(max(0, -p0), op[i] + max(0, -p1)) for i, (p0, p1) in enumerate(pairs)]
    if any(g0 or g1 for g0, g1 in grow):
        core = tuple(slice(g0, g0 + y.shape[2 + i]) for i, (g0, _) in enumerate(grow))
        y = np.pad(y, [(0, 0), (0, 0)] + grow)
        if b is not None:
            mask = np.ones(y.shape[2:], bool)
            mask[core] = False
            y = y + mask * np.asarray(b, y.dtype).reshape((1, -1) + (1,) * nd)
    sl = tuple(slice(max(p0, 0), y.shape[2 + i] - max(p1, 0))
               for i, (p0, p1) in enumerate(pairs))
    return [np.ascontiguousarray(y[(slice(None), slice(None)) + sl])]


def _pool_args(node, x, attrs):
    nd = x.ndim - 2
    k = tuple(attrs["kernel_shape"])
    s = tuple(attrs.get("strides", [1] * nd))
    d = tuple(attrs.get("dilations", [1] * nd))
    pads = _spatial_pads(node, x, attrs, k, s, d)
    return nd, k, s, d, pads, bool(attrs.get("ceil_mode", 0))


def has_pool(kind, nd):
    """Whether pyxconv.functional has ``{kind}_pool{nd}d`` (``kind``: "max" or "avg")."""
    return hasattr(F, f"{kind}_pool{nd}d")


def has_avg_pool_dilation(nd=2):
    """Whether ``avg_pool{nd}d`` takes a ``dilation`` argument."""
    fn = getattr(F, f"avg_pool{nd}d", None)
    return fn is not None and "dilation" in inspect.signature(fn).parameters


@functools.lru_cache(maxsize=None)
def has_wide_pool_padding(kind):
    """Whether ``{kind}_pool2d`` accepts padding wider than half the window.

    Probed with a 3x3 window padded by 2 on a 3x3 input (every window still
    holds an input element), so a pyxconv that learns it is detected.
    """
    fn = getattr(F, f"{kind}_pool2d")
    try:
        fn(np.zeros((1, 1, 3, 3), np.float32), 3, 1, 2)
    except ValueError:
        return False
    return True


def _split_pads(pads):
    """Symmetric part ``min(before, after)`` and the extra (before, after) beyond it."""
    sym = [min(a, b) for a, b in pads]
    extra = [(a - m, b - m) for (a, b), m in zip(pads, sym)]
    return sym, extra


def _check_pool_support(node, kind, nd, k, sym, d):
    if nd not in (1, 2, 3):
        _fail(node, f"{nd}-d pooling is not supported (1-3 spatial dims)")
    if not has_pool(kind, nd):
        _fail(node, f"needs pyxconv.functional.{kind}_pool{nd}d, which this pyxconv does not "
                    "have (issue 18 item 5)")
    if any(p > kk // 2 for p, kk in zip(sym, k)) and not has_wide_pool_padding(kind):
        _fail(node, f"pads {sym} wider than half the window {list(k)} need pool padding wider "
                    "than kernel_size // 2, which this pyxconv does not have (issue 18 item 5)")
    if kind == "avg" and any(v != 1 for v in d) and not has_avg_pool_dilation(nd):
        _fail(node, f"attribute dilations={list(d)} needs dilation in average pooling, which "
                    "this pyxconv does not have (issue 18 item 5)")


def _pool_input(x):
    """A float copy of ``x`` (integers go through float64, exact to 2**53) and its dtype."""
    x = np.asarray(x)
    if x.dtype in (np.float32, np.float64):
        return np.ascontiguousarray(x), x.dtype
    return np.ascontiguousarray(x, dtype=np.float64), x.dtype


def _max_pool(inputs, attrs, node):
    x, dtype = _pool_input(inputs[0])
    nd, k, s, d, pads, ceil = _pool_args(node, x, attrs)
    order = int(attrs.get("storage_order", 0))
    if order not in (0, 1):
        _fail(node, f"attribute storage_order={order} is not supported (0 or 1)")
    sym, extra = _split_pads(pads)
    _check_pool_support(node, "max", nd, k, sym, d)
    fn = getattr(F, f"max_pool{nd}d")
    in_spatial = x.shape[2:]
    if any(a or b for a, b in extra):
        # the larger side's surplus becomes explicit -inf, the rest ordinary padding
        x = np.pad(x, [(0, 0), (0, 0)] + extra, constant_values=-np.inf)
    # keywords: max_pool3d (from the pooling branch) is called the same way
    out, idx = fn(x, k, stride=s, padding=tuple(sym), dilation=d, ceil_mode=ceil,
                  return_indices=True)
    res = [out if dtype == x.dtype else out.astype(dtype)]
    if len(node.output) > 1 and node.output[1]:
        # pyxconv indexes within the (padded) plane; ONNX flattens (N, C, spatial) of the
        # input, row-major (storage_order 0) or column-major (1) within each plane
        coords = np.unravel_index(np.asarray(idx, np.int64), x.shape[2:])
        coords = tuple(c - e[0] for c, e in zip(coords, extra))
        flat = np.ravel_multi_index(coords, in_spatial, order="F" if order else "C")
        plane = int(np.prod(in_spatial))
        nc = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(
            (x.shape[0], x.shape[1]) + (1,) * nd)
        res.append(flat.astype(np.int64) + nc * plane)
    return res


def _avg_pool(inputs, attrs, node):
    x, dtype = _pool_input(inputs[0])
    nd, k, s, d, pads, ceil = _pool_args(node, x, attrs)
    include = bool(attrs.get("count_include_pad", 0))
    sym, extra = _split_pads(pads)
    _check_pool_support(node, "avg", nd, k, sym, d)
    fn = getattr(F, f"avg_pool{nd}d")
    kw = {"dilation": d} if any(v != 1 for v in d) else {}
    kw.update(stride=s, padding=tuple(sym), ceil_mode=ceil)
    if not any(a or b for a, b in extra):
        out = fn(x, k, count_include_pad=include, **kw)
    else:
        widths = [(0, 0), (0, 0)] + extra
        xp = np.pad(x, widths)
        if include:
            # the explicit zeros are padding ONNX counts: divisor as with symmetric pads
            out = fn(xp, k, count_include_pad=True, **kw)
        else:
            # mean over the real elements: (sum / n_window) / (n_real / n_window), where
            # n_window counts the explicitly padded plane and n_real only the input's
            mask = np.pad(np.ones((1, 1) + x.shape[2:], x.dtype), widths)
            out = (fn(xp, k, count_include_pad=False, **kw)
                   / fn(mask, k, count_include_pad=False, **kw))
    return [out.astype(dtype, copy=False)]


def _global_avg(inputs, attrs, node):
    x = _f(inputs[0])
    return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)]


def _global_max(inputs, attrs, node):
    x = _f(inputs[0])
    fn = getattr(F, "global_max_pool%dd" % (x.ndim - 2), None)
    if fn is not None:
        y = fn(x)
        return [np.asarray(y).reshape(x.shape[:2] + (1,) * (x.ndim - 2))]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


def _max_unpool(inputs, attrs, node):
    x, idx = _f(inputs[0]), np.asarray(inputs[1], np.int64)
    nd = x.ndim - 2
    k = tuple(attrs["kernel_shape"])
    s = tuple(attrs.get("strides", [1] * nd))
    pads = list(attrs.get("pads", [0] * (2 * nd)))
    inferred = x.shape[:2] + tuple((x.shape[2 + i] - 1) * s[i] + k[i] - pads[i] - pads[i + nd]
                                   for i in range(nd))
    y = np.zeros(int(np.prod(inferred)), x.dtype)
    y[idx.ravel()] = x.ravel()
    y = y.reshape(inferred)
    if len(inputs) > 2 and inputs[2] is not None:
        # as onnx's reference: the indices address the inferred shape, whose block is
        # placed at the start of a larger requested output
        out_shape = tuple(int(v) for v in inputs[2])
        if len(out_shape) != x.ndim or any(o < i for o, i in zip(out_shape, inferred)):
            _fail(node, f"output_shape {list(out_shape)} is smaller than the unpooled shape "
                        f"{list(inferred)}")
        y = np.pad(y, [(0, o - i) for o, i in zip(out_shape, inferred)])
    return [y]


def _axis_softmax(fn_name):
    def run(inputs, attrs, node):
        x = _f(inputs[0])
        axis = int(attrs.get("axis", -1))
        return [getattr(F, fn_name)(x, axis)]
    return run


def _reduction(node, attrs):
    r = attrs.get("reduction", "mean")
    r = r.decode() if isinstance(r, bytes) else r
    if r not in ("mean", "sum", "none"):
        _fail(node, f"attribute reduction={r!r} is not supported")
    return r


def _nll(node, logp, target, weight, attrs):
    """ONNX's NLL: pyxconv.functional.nll_loss, ignore_index only when the node sets one."""
    ii = attrs.get("ignore_index")
    # without the attribute no target is ignored: an index no int64 class can equal
    ii = np.iinfo(np.int64).min if ii is None else int(ii)
    w = None if weight is None else _f(weight).astype(logp.dtype, copy=False)
    return np.asarray(F.nll_loss(logp, np.asarray(target, np.int64), w, ii,
                                 _reduction(node, attrs)), logp.dtype)


def _nll_op(inputs, attrs, node):
    w = inputs[2] if len(inputs) > 2 else None
    return [_nll(node, _f(inputs[0]), inputs[1], w, attrs)]


def _sce_op(inputs, attrs, node):
    w = inputs[2] if len(inputs) > 2 else None
    logp = F.log_softmax(_f(inputs[0]), 1)
    return [_nll(node, logp, inputs[1], w, attrs), logp][:len(node.output)]


def _gemm(inputs, attrs, node):
    a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    y = attrs.get("alpha", 1.0) * (a @ b)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + attrs.get("beta", 1.0) * np.asarray(inputs[2])
    return [y.astype(np.result_type(inputs[0]))]


def _flatten(inputs, attrs, node):
    x = np.asarray(inputs[0])
    axis = int(attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def _reshape(inputs, attrs, node):
    x = np.asarray(inputs[0])
    shape = [int(v) for v in np.asarray(inputs[1])]
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [x.reshape(shape)]


def _batchnorm(inputs, attrs, node):
    x, scale, b, mean, var = (np.asarray(v) for v in inputs[:5])
    eps = attrs.get("epsilon", 1e-5)
    sh = (1, -1) + (1,) * (x.ndim - 2)
    outs = []
    if attrs.get("training_mode", 0):
        # batch statistics (population variance) normalise; the running ones are updated
        axes = (0,) + tuple(range(2, x.ndim))
        batch_mean, batch_var = x.mean(axis=axes), x.var(axis=axes)
        m = attrs.get("momentum", 0.9)
        outs = [(mean * m + batch_mean * (1 - m)).astype(mean.dtype),
                (var * m + batch_var * (1 - m)).astype(var.dtype)]
        mean, var = batch_mean, batch_var
    inv = scale / np.sqrt(var + np.asarray(eps, var.dtype))
    y = (x * inv.reshape(sh) + (b - mean * inv).reshape(sh)).astype(x.dtype)
    return ([y] + outs)[:len(node.output)]


def _dropout(inputs, attrs, node):
    x = np.asarray(inputs[0])
    training = len(inputs) > 2 and inputs[2] is not None and bool(np.asarray(inputs[2]))
    ratio = float(np.asarray(inputs[1])) if len(inputs) > 1 and inputs[1] is not None else 0.5
    if training and ratio > 0:
        if not 0 <= ratio < 1:
            _fail(node, f"ratio must be in [0, 1) in training mode, got {ratio}")
        seed = attrs.get("seed")
        # with a seed, the mask stream of onnx's reference (legacy NumPy seeding), so a
        # seeded graph gives the same mask here as there; without one, fresh randomness
        rng = np.random.RandomState(None if seed is None else int(seed) % 2**32)
        mask = rng.uniform(0.0, 1.0, x.shape) >= ratio
        return [(x * mask * (1 / (1 - ratio))).astype(x.dtype), mask]
    return [x.copy(), np.ones(x.shape, bool)]


def _prelu(inputs, attrs, node):
    x, slope = np.asarray(inputs[0]), np.asarray(inputs[1], dtype=np.asarray(inputs[0]).dtype)
    return [np.where(x >= 0, x, x * slope).astype(x.dtype)]


def _softplus(inputs, attrs, node):
    # ONNX Softplus is log(exp(x) + 1) everywhere: no linear branch (threshold = max float)
    x = _f(inputs[0])
    return [F.softplus(x, 1.0, float(np.finfo(x.dtype).max))]


def _unary(fn, **names):
    def run(inputs, attrs, node):
        kw = {k: float(attrs.get(onnx_name, default)) for k, (onnx_name, default) in names.items()}
        return [fn(_f(inputs[0]), **kw)]
    return run


OPS = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": _max_pool,
    "AveragePool": _avg_pool,
    "GlobalAveragePool": _global_avg,
    "GlobalMaxPool": _global_max,
    "MaxUnpool": _max_unpool,
    "Softmax": _axis_softmax("softmax"),
    "LogSoftmax": _axis_softmax("log_softmax"),
    "SoftmaxCrossEntropyLoss": _sce_op,
    "NegativeLogLikelihoodLoss": _nll_op,
    "Relu": _unary(F.relu),
    "LeakyRelu": _unary(F.leaky_relu, negative_slope=("alpha", 0.01)),
    "PRelu": _prelu,
    "Elu": _unary(F.elu, alpha=("alpha", 1.0)),
    "Sigmoid": _unary(F.sigmoid),
    "Tanh": _unary(F.tanh),
    "Softplus": _softplus,
    "Gemm": _gemm,
    "MatMul": lambda i, a, n: [np.matmul(i[0], i[1])],
    "Flatten": _flatten,
    "Reshape": _reshape,
    "BatchNormalization": _batchnorm,
    "Dropout": _dropout,
    "Add": lambda i, a, n: [np.add(i[0], i[1])],
    "Concat": lambda i, a, n: [np.concatenate(i, axis=int(a["axis"]))],
    "Identity": lambda i, a, n: [np.asarray(i[0])],
    "Constant": None,  # handled by the graph runner
}

#: How each operator of :data:`OPS` runs, and what it does not support (the
#: documentation's operator table is generated from this).
DESCRIPTIONS = {
    "Conv": "``conv1d``/``conv2d``/``conv3d``; ``pads`` (asymmetric too), ``auto_pad``, "
            "``strides``, ``dilations``, ``group``.",
    "ConvTranspose": "``conv_transpose1d``/``2d``/``3d``; ``pads``, ``auto_pad``, "
                     "``output_padding``, ``output_shape``, ``dilations``, ``group``.",
    "MaxPool": "``max_pool1d``/``2d`` (``3d`` when pyxconv.functional has it); ``pads`` "
               "(asymmetric: explicit -inf), ``auto_pad``, ``dilations``, ``ceil_mode``, the "
               "``Indices`` output in either ``storage_order``; integer inputs.",
    "AveragePool": "``avg_pool1d``/``2d`` (``3d`` and ``dilations`` when pyxconv.functional "
                   "has them); ``pads``, ``auto_pad``, ``ceil_mode``, ``count_include_pad``.",
    "GlobalAveragePool": "the mean over the spatial axes.",
    "GlobalMaxPool": "``global_max_pool2d`` (other ranks: the maximum over the spatial axes).",
    "MaxUnpool": "scatter at the indices; ``output_shape`` input.",
    "Softmax": "``softmax`` along ``axis``.",
    "LogSoftmax": "``log_softmax`` along ``axis``.",
    "SoftmaxCrossEntropyLoss": "``log_softmax`` then ``nll_loss``; ``weight``, "
                               "``ignore_index``, ``reduction``, the ``log_prob`` output.",
    "NegativeLogLikelihoodLoss": "``nll_loss``; ``weight``, ``ignore_index``, ``reduction``.",
    "Relu": "``relu``.",
    "LeakyRelu": "``leaky_relu``, ``alpha``.",
    "PRelu": "the slope broadcast against the input (any shape).",
    "Elu": "``elu``, ``alpha``.",
    "Sigmoid": "``sigmoid``.",
    "Tanh": "``tanh``.",
    "Softplus": "``softplus`` without its linear branch (ONNX has none).",
    "Gemm": "``alpha * A' @ B' + beta * C``; ``transA``, ``transB``, broadcast ``C``.",
    "MatMul": "NumPy ``matmul`` (broadcast batches, 1-D operands).",
    "Flatten": "to 2-D at ``axis`` (negative too).",
    "Reshape": "``0`` copies a dimension unless ``allowzero``; ``-1`` is inferred.",
    "BatchNormalization": "eval form; ``training_mode=1`` normalises with the batch's "
                          "statistics and returns the updated running ones.",
    "Dropout": "identity in inference; in training mode a mask (with ``seed``, the "
               "stream of onnx's reference implementation) and the ``mask`` output.",
    "Add": "NumPy broadcasting, any dtype.",
    "Concat": "along ``axis``.",
    "Identity": "a copy-free pass-through.",
    "Constant": "its ``value`` tensor.",
}
