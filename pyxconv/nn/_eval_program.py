"""An eval-mode Sequential's forward for one input shape, prepared once.

A Sequential in eval mode runs the same few layers on inputs of one shape
again and again (a served model, an evaluation loop). Each layer call
checks its input and parameters, looks its plan up and reaches its kernel
through several Python frames: for LeNet-5 on one image that cost about
twice the arithmetic. :class:`EvalProgram` does the checks and look-ups once
per (layers, modes, input shape and dtype, engine settings) and keeps, per
step, a callable that only runs the kernel: the convolutions' bound plans
(:meth:`pyxconv.functional.ConvPlan.bind`), the max pools' prepared forwards
(:func:`pyxconv.functional.prepare_max_pool`), and the products of the
Linear layers. The results are the bits of the fused steps
(:meth:`Sequential.fused_steps`).

A program holds the parameter arrays it bound; before each run it checks
that every layer still holds those arrays (``layer.weight.data is ...``), so
changes in place show, and an array put in a parameter's place makes the
Sequential prepare a new program.
"""
import numpy as np

from pyxconv import functional as F
from pyxconv._validation import FLOAT_DTYPES


def _bindable(weight, bias, dtype):
    """Whether the parameters can be bound as they are: else the layer's own path converts them."""
    return all(a is None or (a.dtype == dtype and a.flags.c_contiguous) for a in (weight, bias))


class StaleProgram(Exception):
    """A bound parameter array was replaced: the program must be prepared again."""


class EvalProgram:
    """The eval forward of ``steps`` (from :meth:`Sequential.fused_steps`) for inputs like ``x``.

    Making one runs the forward on ``x`` (the prepared steps' first call);
    :attr:`output` is the result.
    """

    def __init__(self, steps, x):
        self._bound = []  # (parameter, the array bound from it)
        self._steps = []
        for step in steps:
            prepared = self._prepare(step, x)
            x = prepared(x)
            self._steps.append(prepared)
        self.output = x

    def _bind(self, parameter):
        if parameter is None:
            return None
        self._bound.append((parameter, parameter.data))
        return parameter.data

    def _prepare(self, step, x):
        """A callable that runs ``step`` on inputs like ``x``: prepared, or the step itself."""
        from pyxconv.nn._layers import Flatten, Linear, _ConvNd
        from pyxconv.nn._module import _FusedConv, _FusedLinearReLU
        from pyxconv.nn._pool import _MaxPoolNd

        owner = getattr(step, "__self__", None)  # a layer's bound forward
        if not isinstance(x, np.ndarray):
            return step

        def plain(layer, kind):
            # a subclass with a forward of its own runs that forward
            return isinstance(layer, kind) and type(layer).forward is kind.forward

        if isinstance(step, _FusedConv) and step.bn is None and plain(step.conv, _ConvNd):
            return self._conv(step.conv, x, step.relu) or step
        if plain(owner, _ConvNd):
            return self._conv(owner, x, False) or step
        if plain(owner, _MaxPoolNd) and not owner.keep_indices \
                and x.flags.c_contiguous and x.dtype in FLOAT_DTYPES:
            pool = F.prepare_max_pool(x.shape, x.dtype, owner.kernel_size, owner.stride,
                                      owner.padding, owner.dilation, owner.ceil_mode)
            owner.indices = None
            return pool
        if plain(owner, Flatten):
            shape = owner.output_shape(x.shape)
            return lambda h: h.reshape(shape)
        if isinstance(step, _FusedLinearReLU) and plain(step.linear, Linear):
            return self._linear(step.linear, x, True) or step
        if plain(owner, Linear):
            return self._linear(owner, x, False) or step
        return step

    def _conv(self, conv, x, relu):
        weight, bias = conv._checked_parameters()
        if not _bindable(weight, bias, x.dtype):
            return None
        x, weight, bias, plan = F.prepare_conv(x, weight, bias, conv.stride, conv._pads,
                                               conv.dilation, conv.groups, conv._nd)
        conv._x = conv._cols = conv._plan = None
        return plan.bind(self._bind(conv.weight), self._bind(conv.bias), relu=relu)

    def _linear(self, linear, x, relu):
        bias = None if linear.bias is None else linear.bias.data
        if x.shape[-1:] != (linear.in_features,) \
                or not _bindable(linear.weight.data, bias, x.dtype):
            return None
        linear._x = None
        return F.prepare_linear(x.shape, self._bind(linear.weight), self._bind(linear.bias),
                                relu=relu)

    def __call__(self, x):
        """The forward of ``x`` (of the shape and dtype the program was made for)."""
        for parameter, array in self._bound:
            if parameter.data is not array:
                raise StaleProgram
        for step in self._steps:
            x = step(x)
        return x
