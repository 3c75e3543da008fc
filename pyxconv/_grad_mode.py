"""Inference mode: forward passes that keep nothing for a backward pass.

A layer's forward normally keeps what its backward needs (the input, a
convolution's column matrix). Inside :func:`no_grad`, as inside
``torch.no_grad()``, it keeps nothing: memory is freed as soon as each layer
is done, and calling ``backward`` afterwards raises
:class:`pyxconv.nn.BackwardBeforeForwardError`. ``model.eval()`` is
separate, as in PyTorch: it switches layers to their inference behaviour
(Dropout off, BatchNorm on its running statistics, no cached columns) but a
backward pass, for a saliency map or a gradient check, still works.

The setting is per Python thread.
"""
import contextlib
import threading

__all__ = ["is_grad_enabled", "no_grad"]

_state = threading.local()


def is_grad_enabled():
    """False inside :func:`no_grad` (in this thread), else True."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Run forward passes that keep nothing for backward, in this thread, inside the block.

    Examples
    --------
    >>> import numpy as np
    >>> import pyxconv
    >>> from pyxconv import nn
    >>> conv = nn.Conv2d(1, 2, 3)
    >>> with pyxconv.no_grad():
    ...     out = conv(np.ones((1, 1, 5, 5), np.float32))
    >>> out.shape, pyxconv.is_grad_enabled()
    ((1, 2, 3, 3), True)
    >>> conv.backward(np.ones_like(out))
    Traceback (most recent call last):
    ...
    pyxconv.nn._module.BackwardBeforeForwardError: Conv2d.backward needs a forward call outside no_grad() first
    """
    previous = is_grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous
