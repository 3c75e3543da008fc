"""Tools that look at a whole model: summary, receptive field, gradient check.

:func:`summary` walks a :mod:`pyxconv.nn` model with shape arithmetic only
(nothing is computed, so GoogLeNet at 224x224 takes milliseconds) and lists
each layer's output shape, parameter count and multiply-adds, the numbers
lecture 002 works out by hand. :func:`receptive_field` reads kernel sizes,
strides and dilations off the layers. :func:`gradcheck` compares a layer's
``backward`` with central differences in float64.
"""
import copy

import numpy as np

from pyxconv.teach._arithmetic import receptive_field as _receptive_field_of_sizes

__all__ = ["GradcheckError", "Summary", "gradcheck", "receptive_field", "summary"]


class Summary:
    """The result of :func:`summary`: rows and totals; ``str()`` gives the table.

    Attributes
    ----------
    rows : list of dict
        One per layer, in forward order, with keys ``name``, ``type``,
        ``depth``, ``output_shape`` (without the batch dimension), ``params``
        and ``mult_adds`` (for containers: the sums over their layers).
    total_params : int
    total_mult_adds : int
        Multiply-accumulate operations for one input.
    flops : int
        ``2 * total_mult_adds`` (a multiply and an add each).
    input_shape, output_shape : tuple
    """

    def __init__(self, rows, input_shape, output_shape, total_params, total_mult_adds):
        self.rows = rows
        self.input_shape = input_shape
        self.output_shape = output_shape
        self.total_params = total_params
        self.total_mult_adds = total_mult_adds
        self.flops = 2 * total_mult_adds

    def __str__(self):
        head = ("layer", "output shape", "params", "mult-adds")
        lines = [("  " * r["depth"] + f"{r['name']} {r['type']}".strip(),
                  "x".join(str(s) for s in r["output_shape"]),
                  f"{r['params']:,}", f"{r['mult_adds']:,}") for r in self.rows]
        widths = [max(len(head[i]), *(len(line[i]) for line in lines)) if lines else len(head[i])
                  for i in range(4)]
        fmt = "{:<%d}  {:>%d}  {:>%d}  {:>%d}" % tuple(widths)
        out = [fmt.format(*head), "-" * (sum(widths) + 6)]
        out += [fmt.format(*line) for line in lines]
        out.append("-" * (sum(widths) + 6))
        out.append(f"input {'x'.join(map(str, self.input_shape))}, output "
                   f"{'x'.join(map(str, self.output_shape))}")
        out.append(f"total parameters: {self.total_params:,}")
        out.append(f"total multiply-adds: {self.total_mult_adds:,} "
                   f"({self.total_mult_adds / 1e6:,.1f}M; FLOPs = 2 x mult-adds)")
        return "\n".join(out)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))

    def __repr__(self):
        return (f"Summary(total_params={self.total_params}, total_mult_adds="
                f"{self.total_mult_adds}, output_shape={self.output_shape})")


def _own_params(module):
    return sum(p.data.size for _, p in module.named_parameters())


def summary(model, input_shape):
    """Per-layer output shape, parameter count and multiply-adds of a model.

    Parameters
    ----------
    model : pyxconv.nn.Module
        Any layer or container (Sequential, Residual, Concat, nested).
    input_shape : tuple of int
        Shape of one input without the batch dimension, e.g. ``(3, 32, 32)``.

    Returns
    -------
    Summary
        Print it for the table; ``total_params``, ``total_mult_adds`` and
        ``rows`` hold the numbers.

    Raises
    ------
    ValueError
        If a layer does not accept the shape it receives (wrong channels, a
        kernel larger than its input, ...); the message names the layer.

    Notes
    -----
    A convolution producing ``H_out x W_out x C_out`` from ``C_in`` channels
    with a ``k x k`` kernel costs ``H_out W_out C_out k^2 C_in / groups``
    multiply-adds and has ``k^2 C_in C_out / groups + C_out`` parameters; a
    linear layer costs ``in x out``. Pooling and activations count as 0.

    Examples
    --------
    Lecture 002 (WE-15): ten 5x5 filters on 32x32x3, pad 2.

    >>> from pyxconv import nn
    >>> from pyxconv.teach import summary
    >>> s = summary(nn.Sequential(nn.Conv2d(3, 10, 5, padding=2), nn.ReLU()), (3, 32, 32))
    >>> s.total_params, s.output_shape  # 5*5*3*10 + 10; 32*32*10 outputs of 75 products
    (760, (10, 32, 32))
    >>> print(s)  # doctest: +NORMALIZE_WHITESPACE
    layer     output shape  params  mult-adds
    -----------------------------------------
    0 Conv2d      10x32x32     760    768,000
    1 ReLU        10x32x32       0          0
    -----------------------------------------
    input 3x32x32, output 10x32x32
    total parameters: 760
    total multiply-adds: 768,000 (0.8M; FLOPs = 2 x mult-adds)
    """
    from pyxconv.nn import Module

    if not isinstance(model, Module):
        raise TypeError(f"model must be a pyxconv.nn.Module, got {type(model).__name__}")
    input_shape = tuple(int(s) for s in input_shape)
    rows = []

    def walk(module, name, depth, shape):
        try:
            out = module.output_shape(shape)
        except ValueError as exc:
            raise ValueError(f"layer {name or type(module).__name__} "
                             f"({type(module).__name__}): {exc}") from None
        row = dict(name=name, type=type(module).__name__, depth=depth,
                   output_shape=tuple(out[1:]), params=_own_params(module),
                   mult_adds=module.mult_adds(shape))
        rows.append(row)
        children = list(module._modules.items())
        if not children:
            return out
        # containers: children see the shapes their forward pass gives them
        from pyxconv.nn import Sequential
        child_shape = shape
        for child_name, child in children:
            full = f"{name}.{child_name}" if name else child_name
            child_out = walk(child, full, depth + 1, child_shape)
            if isinstance(module, Sequential):
                child_shape = child_out
        return out

    from pyxconv.nn import Sequential
    if isinstance(model, Sequential):
        shape = (1,) + input_shape
        for child_name, child in model._modules.items():
            shape = walk(child, child_name, 0, shape)
        out = shape
    else:
        out = walk(model, "", 0, (1,) + input_shape)
    return Summary(rows, input_shape, tuple(out[1:]), _own_params(model),
                   model.mult_adds((1,) + input_shape))


def _leaf_layers(model):
    from pyxconv.nn import Concat, Module, Residual

    if isinstance(model, (Concat, Residual)):
        raise ValueError(
            f"receptive_field follows one path; {type(model).__name__} has several. "
            "Pass the layers of the path you mean as a list")
    if isinstance(model, Module) and model._modules:
        leaves = []
        for child in model._modules.values():
            leaves.extend(_leaf_layers(child))
        return leaves
    return [model]


def _geometry(layer):
    """(kernel, stride, dilation) of a layer along its first spatial dimension."""
    kernel = getattr(layer, "kernel_size", None)
    if kernel is None:
        return None
    stride = getattr(layer, "stride", 1)
    dilation = getattr(layer, "dilation", 1)
    first = (lambda v: v[0] if isinstance(v, (tuple, list)) else v)
    return (int(first(kernel)), int(first(stride if stride is not None else kernel)),
            int(first(dilation)))


def receptive_field(layers):
    """Receptive field, in input pixels, of one output of a stack of layers.

    Parameters
    ----------
    layers : Module, or sequence of Modules / ints / (kernel, stride[, dilation])
        A :class:`pyxconv.nn.Sequential` (nested ones are flattened), a list
        of layers, or the plain sizes of
        :func:`pyxconv.teach._arithmetic.receptive_field`. Layers without a
        kernel (activations, normalisation) do not widen the field.

    Returns
    -------
    int
        Along the first spatial dimension (square kernels give the side).

    Raises
    ------
    ValueError
        For a model with parallel paths (Concat, Residual), or no layer with a
        kernel.

    Notes
    -----
    ``r = 1 + sum_l d_l (F_l - 1) prod_{i<l} S_i``.

    Examples
    --------
    Three stacked 3x3 convolutions see a 7x7 patch (WE-18):

    >>> from pyxconv import nn
    >>> from pyxconv.teach import receptive_field
    >>> receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(),
    ...                               nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3)))
    7
    >>> receptive_field([3, 3, 3])
    7
    """
    from pyxconv.nn import Module

    if not isinstance(layers, Module):
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            return _receptive_field_of_sizes(layers)  # raises its TypeError
        layers = list(layers)
        if not any(isinstance(item, Module) for item in layers):
            return _receptive_field_of_sizes(layers)
    items = _leaf_layers(layers) if isinstance(layers, Module) else layers
    sizes = []
    for item in items:
        if isinstance(item, Module):
            for leaf in _leaf_layers(item):
                g = _geometry(leaf)
                if g is not None:
                    sizes.append(g)
        else:
            sizes.append(item)
    if not sizes:
        raise ValueError("no layer with a kernel (convolution or pooling) in the model")
    return _receptive_field_of_sizes(sizes)


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with the numerical one."""


def _numerical_grad(f, x, eps):
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def _compare(name, analytic, numeric, atol, rtol, report):
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"{name}: backward returned shape {analytic.shape}, expected "
                             f"{numeric.shape}")
    err = np.abs(analytic - numeric)
    report[name] = float(err.max()) if err.size else 0.0
    bad = err > atol + rtol * np.abs(numeric)
    if bad.any():
        i = np.unravel_index(np.argmax(err), err.shape)
        raise GradcheckError(
            f"{name}: analytic and numerical gradients differ at {bad.sum()} of {err.size} "
            f"entries; worst at index {tuple(int(j) for j in i)}: analytic {analytic[i]:.6g}, "
            f"numerical {numeric[i]:.6g} (atol={atol}, rtol={rtol})")


def gradcheck(layer_or_fn, inputs, backward=None, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Check ``backward`` against central differences, in float64.

    The scalar checked is ``sum(forward(x) * G)`` for a fixed random ``G``, so
    every output element takes part. For each input (and each parameter of a
    layer) the gradient ``backward(G)`` is compared with
    ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``, entry by entry.

    Parameters
    ----------
    layer_or_fn : pyxconv.nn.Module or callable
        A layer: a float64 copy is checked (the original is untouched), for
        its first input and every parameter. A function ``fn(*inputs)``:
        pass ``backward(grad_out, *inputs)`` returning the gradient of each
        float input (a tuple, or one array for one input).
    inputs : ndarray or tuple
        The input(s). Integer arrays (e.g. class labels) are passed through
        and not differentiated.
    backward : callable, optional
        Needed for a function, not for a layer.
    eps, atol, rtol : float
        Step of the central difference; tolerances as in ``np.isclose``.
    seed : int
        Seed of ``G``.

    Returns
    -------
    dict
        Largest absolute error per checked array (``"input"``, ``"input1"``,
        ..., parameter names), when all pass.

    Raises
    ------
    GradcheckError
        Naming the array, the worst index and both values.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> from pyxconv.teach import gradcheck
    >>> x = np.random.default_rng(0).normal(size=(2, 3))
    >>> sorted(gradcheck(nn.Linear(3, 2), x))
    ['bias', 'input', 'weight']
    >>> sorted(gradcheck(np.sin, (x,), backward=lambda g, x: g * np.cos(x)))
    ['input']
    """
    from pyxconv.nn import Module

    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    inputs = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f"
              else np.asarray(a) for a in inputs]
    rng = np.random.default_rng(seed)
    report = {}
    if isinstance(layer_or_fn, Module):
        layer = copy.deepcopy(layer_or_fn).astype(np.float64)
        out = np.asarray(layer.forward(*inputs), dtype=np.float64)
        g = rng.normal(size=out.shape)
        if out.ndim == 0:
            g = np.float64(g)
        layer.zero_grad()
        grad_x = layer.backward(g)

        def f():
            return float(np.sum(np.asarray(layer.forward(*inputs)) * g))

        if inputs[0].dtype.kind == "f" and grad_x is not None:
            _compare("input", grad_x, _numerical_grad(f, inputs[0], eps), atol, rtol, report)
        for name, p in layer.named_parameters():
            analytic = p.grad.copy()
            _compare(name, analytic, _numerical_grad(f, p.data, eps), atol, rtol, report)
        return report
    if backward is None:
        raise TypeError("gradcheck of a function needs backward=callable(grad_out, *inputs)")
    out = np.asarray(layer_or_fn(*inputs), dtype=np.float64)
    g = rng.normal(size=out.shape)
    grads = backward(g, *inputs)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    float_idx = [i for i, a in enumerate(inputs) if a.dtype.kind == "f"]
    if len(grads) != len(float_idx):
        raise GradcheckError(f"backward returned {len(grads)} gradients for "
                             f"{len(float_idx)} float inputs")
    for k, (i, analytic) in enumerate(zip(float_idx, grads)):
        def f():
            return float(np.sum(np.asarray(layer_or_fn(*inputs), dtype=np.float64) * g))
        name = "input" if k == 0 else f"input{k}"
        _compare(name, analytic, _numerical_grad(f, inputs[i], eps), atol, rtol, report)
    return report
