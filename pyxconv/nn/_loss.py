"""Losses as layers: ``loss = criterion(logits, target)``, then ``criterion.backward()``.

The forward pass computes the gradient at the same time (the fused
softmax cross-entropy kernel does both in one pass over the logits), so
``backward`` only scales it by the upstream gradient.
"""
import numpy as np

from pyxconv import functional as F
from pyxconv.nn._module import Module

__all__ = ["BCEWithLogits", "SoftmaxCrossEntropy"]


def _softmax_cross_entropy_numpy(logits, target):
    """Reference path used when the fused kernel is not available."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    rows = np.arange(n)
    loss = float(np.mean(np.log(s[:, 0]) - z[rows, target]))
    grad = e / s
    grad[rows, target] -= 1
    grad /= n
    return loss, grad


class SoftmaxCrossEntropy(Module):
    """Softmax followed by the cross-entropy with integer class labels, averaged over the batch.

    ``L = mean_n ( log sum_j exp(z_nj) - z_n,y_n )``; its gradient is
    ``(softmax(z) - onehot(y)) / N``. Equivalent to ``torch.nn.CrossEntropyLoss()``.

    ``forward(logits, target)`` with logits of shape ``(N, K)`` and target of
    shape ``(N,)`` (ints in ``[0, K)``) returns the loss as a Python float;
    ``backward(grad=1.0)`` returns the gradient with respect to the logits.

    Examples
    --------
    Lecture 003 (WE-30): the scores whose softmax is about (0.08, 0.91, 0.01).

    >>> import numpy as np
    >>> from pyxconv import nn
    >>> ce = nn.SoftmaxCrossEntropy()
    >>> z = np.log(np.array([[0.08, 0.91, 0.01]]))
    >>> round(ce(z, np.array([1])), 4)  # -log(0.91)
    0.0943
    >>> np.round(ce.backward(), 2)
    array([[ 0.08, -0.09,  0.01]])
    """

    def forward(self, logits, target):
        if not isinstance(logits, np.ndarray) or logits.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy expected logits of shape (N, K), got shape "
                             f"{getattr(logits, 'shape', type(logits).__name__)}")
        target = np.asarray(target)
        if target.shape != (logits.shape[0],) or target.dtype.kind not in "iu":
            raise ValueError(f"SoftmaxCrossEntropy expected integer targets of shape "
                             f"({logits.shape[0]},), got shape {target.shape} dtype {target.dtype}")
        fused = getattr(F, "softmax_cross_entropy", None)
        if fused is not None:
            loss, grad = fused(logits, target)
        else:
            if target.size and (target.min() < 0 or target.max() >= logits.shape[1]):
                raise ValueError(f"targets must be in [0, {logits.shape[1]}), got values from "
                                 f"{target.min()} to {target.max()}")
            loss, grad = _softmax_cross_entropy_numpy(logits, target)
        self._grad = grad
        return float(loss)

    def backward(self, grad=1.0):
        return self._grad if grad == 1.0 else self._grad * grad

    def output_shape(self, input_shape):
        return ()


class BCEWithLogits(Module):
    """Sigmoid followed by binary cross-entropy, averaged; ``torch.nn.BCEWithLogitsLoss()``.

    ``L = mean( max(z, 0) - z y + log(1 + exp(-|z|)) )``, which is
    ``-[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]`` written so that no
    exponential overflows; the gradient is ``(sigmoid(z) - y) / n``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> bce = nn.BCEWithLogits()
    >>> round(bce(np.array([0.0, 0.0]), np.array([1.0, 0.0])), 4)  # log 2
    0.6931
    >>> bce.backward()
    array([-0.25,  0.25])
    """

    def forward(self, logits, target):
        logits = np.asarray(logits)
        target = np.asarray(target, dtype=logits.dtype if logits.dtype.kind == "f" else None)
        if target.shape != logits.shape:
            raise ValueError(f"BCEWithLogits expected targets of the logits' shape "
                             f"{logits.shape}, got {target.shape}")
        loss = np.mean(np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits))))
        sig = 0.5 * (1 + np.tanh(0.5 * logits))
        self._grad = ((sig - target) / logits.size).astype(logits.dtype, copy=False)
        return float(loss)

    def backward(self, grad=1.0):
        return self._grad if grad == 1.0 else self._grad * grad

    def output_shape(self, input_shape):
        return ()
