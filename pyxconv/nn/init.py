"""Weight initialisation: He (Kaiming) and Xavier (Glorot), as in ``torch.nn.init``.

For a weight of shape ``(C_out, C_in, *kernel)`` (or ``(out, in)`` for a
linear layer), ``fan_in = C_in * prod(kernel)`` and
``fan_out = C_out * prod(kernel)``.

* He: variance ``2 / fan_in`` keeps the variance of activations constant
  through ReLU layers (half the units are zeroed, so twice the variance).
* Xavier: variance ``2 / (fan_in + fan_out)`` balances forward activations
  and backward gradients for tanh/sigmoid layers.

Each function fills ``param`` (a :class:`~pyxconv.nn.Parameter` or an
ndarray) in place and returns it.
"""
import math

import numpy as np

__all__ = ["calculate_fans", "kaiming_normal_", "kaiming_uniform_", "torch_default_",
           "xavier_normal_", "xavier_uniform_", "zeros_"]


def _array(param):
    return param.data if hasattr(param, "grad") and hasattr(param, "data") else param


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def calculate_fans(shape):
    """``(fan_in, fan_out)`` of a weight of ``shape``.

    Examples
    --------
    >>> from pyxconv.nn.init import calculate_fans
    >>> calculate_fans((6, 1, 5, 5))
    (25, 150)
    """
    if len(shape) < 2:
        raise ValueError(f"fans need a weight with at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def kaiming_uniform_(param, a=0.0, mode="fan_in", rng=None):
    """He uniform: U(-b, b), ``b = gain * sqrt(3 / fan)``, ``gain = sqrt(2 / (1 + a^2))``."""
    w = _array(param)
    fan = calculate_fans(w.shape)[0 if mode == "fan_in" else 1]
    bound = math.sqrt(2.0 / (1 + a * a)) * math.sqrt(3.0 / fan)
    w[...] = _rng(rng).uniform(-bound, bound, w.shape)
    return param


def kaiming_normal_(param, a=0.0, mode="fan_in", rng=None):
    """He normal: N(0, std^2), ``std = gain / sqrt(fan)``, ``gain = sqrt(2 / (1 + a^2))``."""
    w = _array(param)
    fan = calculate_fans(w.shape)[0 if mode == "fan_in" else 1]
    std = math.sqrt(2.0 / (1 + a * a)) / math.sqrt(fan)
    w[...] = _rng(rng).normal(0.0, std, w.shape)
    return param


def xavier_uniform_(param, gain=1.0, rng=None):
    """Glorot uniform: U(-b, b), ``b = gain * sqrt(6 / (fan_in + fan_out))``."""
    w = _array(param)
    fan_in, fan_out = calculate_fans(w.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    w[...] = _rng(rng).uniform(-bound, bound, w.shape)
    return param


def xavier_normal_(param, gain=1.0, rng=None):
    """Glorot normal: N(0, std^2), ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    w = _array(param)
    fan_in, fan_out = calculate_fans(w.shape)
    w[...] = _rng(rng).normal(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), w.shape)
    return param


def zeros_(param):
    _array(param)[...] = 0
    return param


def torch_default_(weight, bias=None, rng=None):
    """PyTorch's default for Conv and Linear layers.

    ``kaiming_uniform_(a=sqrt(5))`` on the weight, i.e. U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), and the same bound for the bias.
    """
    rng = _rng(rng)
    kaiming_uniform_(weight, a=math.sqrt(5), rng=rng)
    if bias is not None:
        fan_in = calculate_fans(_array(weight).shape)[0]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        _array(bias)[...] = rng.uniform(-bound, bound, _array(bias).shape)
    return weight
