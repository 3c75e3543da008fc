"""Module, Parameter and the containers (Sequential, Residual, Concat).

A layer is an object with ``forward(x)``, which caches what the backward pass
needs, and ``backward(grad_out)``, which returns the gradient with respect to
``x`` and *adds* the gradients of its parameters to ``param.grad``. Training
is then, by hand::

    out = model(x)                  # forward, caching
    loss = criterion(out, y)
    model.backward(criterion.backward())
    optimizer.step(); model.zero_grad()

Parameter and buffer names follow PyTorch (``weight``, ``bias``,
``running_mean``, ...), and containers name their children as PyTorch does
(``"0"``, ``"1"``, ... in a :class:`Sequential`), so :meth:`Module.state_dict`
keys such as ``"0.weight"`` are the keys of the PyTorch model of the same
architecture.
"""
import os
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .._grad_mode import is_grad_enabled
from .._io import atomic_write
from ..functional import plan_settings, relu_
from ._eval_program import EvalProgram, StaleProgram

__all__ = ["Concat", "Module", "Parameter", "Residual", "Sequential"]


class Parameter:
    """A learnable array and its accumulated gradient.

    Attributes
    ----------
    data : ndarray
        The value. Optimisers update it in place.
    grad : ndarray
        Same shape and dtype; ``backward`` adds to it, ``zero_grad`` clears it.
    """

    __slots__ = ("data", "grad")

    def __init__(self, data):
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def _to_numpy(value, key):
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"state_dict[{key!r}] is not array-like: {exc}") from None


class BackwardBeforeForwardError(RuntimeError, AttributeError):
    """``backward`` was called without the tensors a ``forward`` call keeps.

    Also an AttributeError, so ``getattr(layer, name, default)`` and
    ``hasattr`` keep working on layers.
    """


class Module:
    """Base class of every layer.

    Subclasses register their arrays with :meth:`_param` and :meth:`_buffer`
    and their sub-layers with :meth:`_child`, in PyTorch's order, and define
    ``forward`` and ``backward``.
    """

    def __init__(self):
        self._params = OrderedDict()
        self._buffers = OrderedDict()
        self._modules = OrderedDict()
        self.training = True

    #: Counts every change of any module's ``training`` flag, so that a
    #: Sequential can tell without visiting its layers that no mode changed.
    _mode_changes = 0

    @property
    def training(self):
        """True in training mode (:meth:`train`), False in eval mode (:meth:`eval`)."""
        return self._training

    @training.setter
    def training(self, mode):
        self.__dict__["_training"] = mode
        Module._mode_changes += 1

    # -- registration -------------------------------------------------------------
    def _param(self, name, array):
        p = Parameter(array)
        self._params[name] = p
        object.__setattr__(self, name, p)
        return p

    def _buffer(self, name, array):
        self._buffers[name] = array
        object.__setattr__(self, name, array)
        return array

    def _child(self, name, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: {name} must be a pyxconv.nn.Module, "
                            f"got {type(module).__name__}")
        self._modules[name] = module
        return module

    def __getattr__(self, name):
        # Only called when normal lookup fails: for a layer, a missing private
        # attribute is a cache that forward has not filled yet.
        if name.startswith("_") and not name.startswith("__"):
            raise BackwardBeforeForwardError(
                f"{type(self).__name__} has no {name!r}: backward needs the values of a "
                "forward call; call forward (in training mode) first")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- the layer protocol ---------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def output_shape(self, input_shape):
        """Shape of ``forward``'s output for an input of ``input_shape`` (batch included).

        The default keeps the shape (activations, dropout, normalisation).
        """
        return tuple(input_shape)

    def mult_adds(self, input_shape):
        """Multiply-adds of one forward pass on ``input_shape`` (0 unless overridden)."""
        return 0

    # -- traversal ------------------------------------------------------------------
    def children(self):
        return list(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self):
        seen = set()
        for prefix, module in self.named_modules():
            for name, p in module._params.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self):
        """All learnable :class:`Parameter` objects, sub-layers included, each once."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad.fill(0)

    def train(self, mode=True):
        for _, module in self.named_modules():
            module.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def astype(self, dtype):
        """Convert every parameter and floating buffer to ``dtype`` in place; returns self."""
        dtype = np.dtype(dtype)
        for _, module in self.named_modules():
            for p in module._params.values():
                p.data = p.data.astype(dtype)
                p.grad = np.zeros_like(p.data)
            for name, b in list(module._buffers.items()):
                if b.dtype.kind == "f":
                    module._buffer(name, b.astype(dtype))
        return self

    # -- state ----------------------------------------------------------------------
    def _state_entries(self):
        """name -> (module, attribute, is_param), in PyTorch's state_dict order."""
        entries = OrderedDict()
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name in module._params:
                entries[dot + name] = (module, name, True)
            for name in module._buffers:
                entries[dot + name] = (module, name, False)
        return entries

    def state_dict(self):
        """Copies of every parameter and buffer, keyed as in PyTorch (e.g. ``"0.weight"``).

        Returns
        -------
        OrderedDict of str to ndarray
        """
        out = OrderedDict()
        for key, (module, name, is_param) in self._state_entries().items():
            value = module._params[name].data if is_param else module._buffers[name]
            out[key] = np.array(value, copy=True)
        return out

    def load_state_dict(self, state_dict, *, allow_nonfinite=False):
        """Copy parameters and buffers from ``state_dict``; all or nothing.

        Accepts NumPy arrays, anything array-like, and PyTorch tensors, so
        ``model.load_state_dict(torch_model.state_dict())`` works when the
        architectures match.

        Parameters
        ----------
        state_dict : mapping of str to array-like
            As :meth:`state_dict` returns.
        allow_nonfinite : bool, default False
            Accept NaN or infinite values. By default they are an error: a
            checkpoint saved after training diverged would otherwise load
            without a word and poison every output.

        Raises
        ------
        ValueError
            If keys are missing or unexpected, a shape differs, or (unless
            ``allow_nonfinite``) a value is NaN or infinite. Everything is
            checked before anything is replaced: the model is left
            unchanged, and the message lists every problem.
        TypeError
            If a value is not array-like.
        """
        entries = self._state_entries()
        given = list(state_dict.keys())
        missing = [k for k in entries if k not in state_dict]
        unexpected = [k for k in given if k not in entries]
        converted = {}
        mismatched, nonfinite = [], []
        for key, (module, name, is_param) in entries.items():
            if key not in state_dict:
                continue
            value = _to_numpy(state_dict[key], key)
            current = module._params[name].data if is_param else module._buffers[name]
            if value.shape != current.shape:
                mismatched.append(f"shape mismatch: {key}: expected shape {current.shape}, "
                                  f"got {value.shape}")
            elif value.dtype.kind not in "biuf":
                raise TypeError(f"state_dict[{key!r}] has dtype {value.dtype}, expected numbers")
            elif (not allow_nonfinite and value.dtype.kind == "f"
                  and not np.isfinite(value).all()):
                bad = int(value.size - np.count_nonzero(np.isfinite(value)))
                nonfinite.append(f"{key} ({bad} of {value.size} values)")
            converted[key] = value
        if nonfinite:
            mismatched.append("NaN or infinite values in " + ", ".join(nonfinite)
                              + " (pass allow_nonfinite=True to load them anyway)")
        if missing or unexpected or mismatched:
            problems = []
            if missing:
                problems.append(f"missing keys {missing}")
            if unexpected:
                problems.append(f"unexpected keys {unexpected}")
            if mismatched:
                problems.append("; ".join(mismatched))
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + ", ".join(problems)
                             + "; nothing was loaded")
        for key, (module, name, is_param) in entries.items():
            if is_param:
                module._params[name].data[...] = converted[key]
            else:
                module._buffers[name][...] = converted[key]

    def save(self, path):
        """Write :meth:`state_dict` to an ``.npz`` file, atomically.

        As with ``np.savez``, ``.npz`` is appended to a name without it. The
        file is written beside the target and renamed over it (see
        :func:`pyxconv._io.atomic_write`), so a crash or a kill mid-write
        leaves the previous file whole.
        """
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        with atomic_write(path) as f:
            np.savez(f, **self.state_dict())

    def load(self, path, *, allow_nonfinite=False):
        """Read an ``.npz`` written by :meth:`save` (or ``np.savez(**state_dict)``).

        Parameters
        ----------
        path : str or path-like
            The file.
        allow_nonfinite : bool, default False
            Accept NaN or infinite weights (see :meth:`load_state_dict`).

        Returns
        -------
        Module
            ``self``.

        Raises
        ------
        ValueError
            If the file is not an ``.npz`` archive (an ``.npy`` array, text,
            a truncated or corrupt archive: the message names the expected
            format), or its contents do not fit this model (keys, shapes,
            non-finite values; see :meth:`load_state_dict`). Every check is
            made before anything is replaced, so the model is unchanged.
        """
        path = os.fspath(path)
        with open(path, "rb") as f:
            start = f.read(6)
        expected = (f"expected an .npz archive written by {type(self).__name__}.save "
                    "(np.savez of the state_dict)")
        if start.startswith(b"\x93NUMPY"):
            raise ValueError(f"{path}: is a single .npy array, not a weights file; {expected}")
        if not start.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise ValueError(f"{path}: not a zip archive (starts with {start!r}); {expected}")
        try:
            with np.load(path, allow_pickle=False) as data:
                # "pyxconv/..." entries are metadata of pyxconv.models.save, not weights
                arrays = {k: data[k] for k in data.files if not k.startswith("pyxconv/")}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or unreadable archive ({exc}); {expected}") from None
        self.load_state_dict(arrays, allow_nonfinite=allow_nonfinite)
        return self

    def extra_repr(self):
        return ""

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Layers applied one after another; ``backward`` runs them in reverse.

    Children are named ``"0"``, ``"1"``, ... as in ``torch.nn.Sequential``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    >>> list(model.state_dict())
    ['0.weight', '0.bias']
    >>> model(np.zeros((4, 3), np.float32)).shape
    (4, 2)
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            self._child(str(i), layer)
        self.layers = list(layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        """The layers in order; in eval mode with Conv -> BatchNorm -> ReLU chains fused.

        In eval mode a convolution followed by a BatchNorm (its running
        statistics folded into the convolution's weight and bias) and/or a
        ReLU runs as one convolution with the ReLU in its output pass
        (:meth:`fused_steps`): the same outputs to rounding, without the
        intermediate arrays. A Linear followed by a ReLU applies the ReLU in
        place on the product (the same bits). For a C-contiguous ndarray
        input these steps run as an ``EvalProgram`` (``pyxconv.nn._eval_program``)
        prepared once per input shape and dtype (see the performance page):
        the same bits, without the per-layer checks and look-ups. A
        ``backward`` after such a forward first runs the layers one by one on
        the same input; after one under :func:`pyxconv.no_grad`, which keeps
        nothing, it raises :class:`BackwardBeforeForwardError`.
        """
        if self.training:
            self._fused_input, self._kept_nothing = None, False
            for layer in self.layers:
                x = layer.forward(x)
            return x
        self._fused_input = x if is_grad_enabled() else None
        # the layers' own saved values (from earlier forwards) are not this forward's
        self._kept_nothing = self._fused_input is None
        # the steps depend on which layers there are and on their modes only
        cached = self.__dict__.get("_fused_cache")
        if cached is None or cached[1] != Module._mode_changes or cached[0] != self.layers:
            cached = self._fused_cache = (list(self.layers), Module._mode_changes,
                                          self.fused_steps())
            self._programs = {}
        if type(x) is np.ndarray and x.flags.c_contiguous:
            return self._run_program(cached[2], x)
        for step in cached[2]:
            x = step(x)
        return x

    #: Eval programs a Sequential keeps, one per input shape and dtype (the oldest goes).
    MAX_EVAL_PROGRAMS = 4

    def _run_program(self, steps, x):
        """The fused steps on ``x`` through an :class:`EvalProgram` for its shape, made once."""
        key = (x.shape, x.dtype.char, plan_settings())
        program = self._programs.get(key)
        if program is not None:
            try:
                return program(x)
            except StaleProgram:  # a parameter array was replaced
                del self._programs[key]
        try:
            program = EvalProgram(steps, x)
        except (TypeError, ValueError):
            # an input the layers refuse: they raise their own messages
            for step in steps:
                x = step(x)
            return x
        if len(self._programs) >= self.MAX_EVAL_PROGRAMS:
            del self._programs[next(iter(self._programs))]
        self._programs[key] = program
        return program.output

    def fused_steps(self):
        """The eval-mode forward as a list of callables: fused chains and the other layers."""
        from pyxconv.nn._layers import BatchNorm2d, Linear, _ConvNd
        from pyxconv.nn._activations import ReLU

        steps, i, layers = [], 0, self.layers
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, _ConvNd) and layer._nd == 2:
                bn = layers[i + 1] if i + 1 < len(layers) else None
                if not (isinstance(bn, BatchNorm2d) and not bn.training):
                    bn = None
                after = i + 1 + (bn is not None)
                relu = after < len(layers) and isinstance(layers[after], ReLU)
                if bn is not None or relu:
                    steps.append(_FusedConv(layer, bn, relu))
                    i = after + relu
                    continue
            if (isinstance(layer, Linear) and i + 1 < len(layers)
                    and isinstance(layers[i + 1], ReLU)):
                steps.append(_FusedLinearReLU(layer))
                i += 2
                continue
            steps.append(layer.forward)
            i += 1
        return steps

    def backward(self, grad_out):
        if self.__dict__.get("_kept_nothing"):
            raise BackwardBeforeForwardError(
                "Sequential.backward needs a forward call outside no_grad() first: the last "
                "one, in eval mode under no_grad(), kept nothing")
        if not self.training and getattr(self, "_fused_input", None) is not None:
            # the fused forward kept nothing per layer: run the layers one by one first
            x, self._fused_input = self._fused_input, None
            for layer in self.layers:
                x = layer.forward(x)
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def mult_adds(self, input_shape):
        total = 0
        for layer in self.layers:
            total += layer.mult_adds(input_shape)
            input_shape = layer.output_shape(input_shape)
        return total


class _FusedLinearReLU:
    """Linear then ReLU, the ReLU applied in place on the product (no second array)."""

    def __init__(self, linear):
        self.linear = linear

    def __call__(self, x):
        return relu_(self.linear.forward(x))


class _FusedConv:
    """Conv2d (+ BatchNorm2d in eval mode, folded) (+ ReLU) as one convolution call."""

    def __init__(self, conv, bn, relu):
        self.conv, self.bn, self.relu = conv, bn, relu

    def __call__(self, x):
        conv, bn = self.conv, self.bn
        w, b = conv._checked_parameters()
        if bn is not None:
            # y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta
            scale = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
            if bn.affine:
                scale = scale * bn.weight.data
            shift = ((0.0 if b is None else b.astype(np.float64)) - bn.running_mean) * scale
            if bn.affine:
                shift = shift + bn.bias.data
            w = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
            b = shift.astype(w.dtype)
        return conv.fused_forward(x, w, b, relu=self.relu)


class Residual(Module):
    """A residual block, :math:`H(x) = F(x) + x` (lecture 002, ResNet).

    Parameters
    ----------
    body : Module
        :math:`F`, e.g. conv-BN-ReLU-conv-BN. Its output must have the shape
        of the shortcut's output.
    shortcut : Module, optional
        Applied to ``x`` before the addition (e.g. a strided 1x1 conv when
        ``body`` changes the shape). Identity when omitted.

    Notes
    -----
    State keys are ``body.*`` and ``shortcut.*``. The gradient of the sum
    flows unchanged into both paths, which is why deep residual networks
    train: ``dL/dx = F'(x)^T g + g``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> block = nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU()))
    >>> block(np.zeros((1, 2, 4, 4), np.float32)).shape
    (1, 2, 4, 4)
    """

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = self._child("body", body)
        self.shortcut = None if shortcut is None else self._child("shortcut", shortcut)

    def forward(self, x):
        fx = self.body.forward(x)
        sx = x if self.shortcut is None else self.shortcut.forward(x)
        if fx.shape != sx.shape:
            raise ValueError(
                f"Residual: body output shape {fx.shape} differs from shortcut output shape "
                f"{sx.shape}; give a shortcut that matches (e.g. a 1x1 Conv2d with the stride)")
        return fx + sx

    def backward(self, grad_out):
        gx = self.body.backward(grad_out)
        gs = grad_out if self.shortcut is None else self.shortcut.backward(grad_out)
        return gx + gs

    def output_shape(self, input_shape):
        return self.body.output_shape(input_shape)

    def mult_adds(self, input_shape):
        total = self.body.mult_adds(input_shape)
        if self.shortcut is not None:
            total += self.shortcut.mult_adds(input_shape)
        return total


class Concat(Module):
    """Parallel branches on one input, outputs concatenated along channels (an inception module).

    Children are named ``"0"``, ``"1"``, ... like a :class:`Sequential`.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> block = nn.Concat(nn.Conv2d(3, 4, 1), nn.Conv2d(3, 2, 3, padding=1))
    >>> block(np.zeros((1, 3, 5, 5), np.float32)).shape
    (1, 6, 5, 5)
    """

    def __init__(self, *branches, dim=1):
        super().__init__()
        for i, branch in enumerate(branches):
            self._child(str(i), branch)
        self.branches = list(branches)
        self.dim = dim

    def __getitem__(self, i):
        return self.branches[i]

    def __len__(self):
        return len(self.branches)

    def forward(self, x):
        outs = [b.forward(x) for b in self.branches]
        self._sizes = [o.shape[self.dim] for o in outs]
        return np.concatenate(outs, axis=self.dim)

    def backward(self, grad_out):
        splits = np.cumsum(self._sizes)[:-1]
        parts = np.split(grad_out, splits, axis=self.dim)
        total = None
        for branch, g in zip(self.branches, parts):
            gx = branch.backward(np.ascontiguousarray(g))
            total = gx if total is None else total + gx
        return total

    def output_shape(self, input_shape):
        shapes = [tuple(b.output_shape(input_shape)) for b in self.branches]
        rest = {s[:self.dim] + s[self.dim + 1:] for s in shapes}
        if len(rest) > 1:
            raise ValueError(f"Concat: branch outputs {shapes} differ outside dim {self.dim}")
        out = list(shapes[0])
        out[self.dim] = sum(s[self.dim] for s in shapes)
        return tuple(out)

    def mult_adds(self, input_shape):
        return sum(b.mult_adds(input_shape) for b in self.branches)
