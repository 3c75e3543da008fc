"""Losses as layers: ``loss = criterion(logits, target)``, then ``criterion.backward()``.

The forward pass computes the gradient at the same time (the fused
softmax cross-entropy kernel does both in one pass over the logits), so
``backward`` only scales it by the upstream gradient.
"""
import numpy as np

from pyxconv import functional as F
from pyxconv.nn._module import Module

__all__ = ["BCEWithLogits", "NLLLoss", "SoftmaxCrossEntropy"]


class SoftmaxCrossEntropy(Module):
    """Softmax followed by the cross-entropy with integer class labels, averaged over the batch.

    ``L = mean_n ( log sum_j exp(z_nj) - z_n,y_n )``; its gradient is
    ``(softmax(z) - onehot(y)) / N``. Equivalent to ``torch.nn.CrossEntropyLoss()``.

    ``forward(logits, target)`` with logits of shape ``(N, K)`` (or
    ``(N, K, d1, ...)``) and integer targets of shape ``(N,)`` (or
    ``(N, d1, ...)``) in ``[0, K)`` returns the loss as a Python float;
    ``backward(grad=1.0)`` returns the gradient with respect to the logits.
    Both come from one call of the fused kernel
    :func:`pyxconv.functional.softmax_cross_entropy`.

    Parameters
    ----------
    weight, ignore_index, label_smoothing
        As in :func:`pyxconv.functional.softmax_cross_entropy`.

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

    def __init__(self, weight=None, ignore_index=-100, label_smoothing=0.0):
        super().__init__()
        self.weight_ = weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits, target):
        loss, self._grad = F.softmax_cross_entropy(
            logits, target, weight=self.weight_, ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing)
        return float(loss)

    def backward(self, grad=1.0):
        return self._grad if grad == 1.0 else self._grad * grad

    def output_shape(self, input_shape):
        return ()


class BCEWithLogits(Module):
    """Sigmoid followed by binary cross-entropy, averaged; ``torch.nn.BCEWithLogitsLoss()``.

    ``L = mean( max(z, 0) - z y + log(1 + exp(-|z|)) )``, which is
    ``-[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]`` written so that no
    exponential overflows; the gradient is ``(sigmoid(z) - y) / n``. Both come
    from :func:`pyxconv.functional.sigmoid_binary_cross_entropy`.

    Parameters
    ----------
    weight, pos_weight
        As in :func:`pyxconv.functional.binary_cross_entropy_with_logits`.

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

    def __init__(self, weight=None, pos_weight=None):
        super().__init__()
        self.weight_ = weight
        self.pos_weight = pos_weight

    def forward(self, logits, target):
        loss, self._grad = F.sigmoid_binary_cross_entropy(logits, target, weight=self.weight_,
                                                          pos_weight=self.pos_weight)
        return float(loss)

    def backward(self, grad=1.0):
        return self._grad if grad == 1.0 else self._grad * grad

    def output_shape(self, input_shape):
        return ()


class NLLLoss(Module):
    """Negative log-likelihood of log-probabilities at integer labels; ``torch.nn.NLLLoss``.

    ``forward(log_probs, target)`` with log-probabilities of shape ``(N, C)``
    (or ``(N, C, d1, ...)``, or ``(C,)``) and integer targets of shape ``(N,)``
    (or ``(N, d1, ...)``, or ``()``) returns the loss, a Python float for
    ``'mean'`` and ``'sum'``, an array of the target's shape for ``'none'``;
    ``backward(grad=1.0)`` returns its gradient with respect to
    ``log_probs`` (:func:`pyxconv.functional.nll_loss_backward`). Applied to
    :func:`pyxconv.functional.log_softmax` output it is the cross-entropy.

    Parameters
    ----------
    weight, ignore_index, reduction
        As in :func:`pyxconv.functional.nll_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nll = nn.NLLLoss()
    >>> logp = np.log(np.array([[0.08, 0.91, 0.01]]))
    >>> round(nll(logp, np.array([1])), 4)  # -log(0.91)
    0.0943
    >>> nll.backward()
    array([[ 0., -1.,  0.]])
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.weight_ = weight
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, log_probs, target):
        loss = F.nll_loss(log_probs, target, weight=self.weight_,
                          ignore_index=self.ignore_index, reduction=self.reduction)
        self._input, self._target, self._loss_shape = log_probs, target, np.shape(loss)
        return loss if self.reduction == "none" else float(loss)

    def backward(self, grad=1.0):
        if self.reduction == "none":
            grad = np.broadcast_to(np.asarray(grad, np.float64), self._loss_shape)
        return F.nll_loss_backward(grad, self._input, self._target, weight=self.weight_,
                                   ignore_index=self.ignore_index, reduction=self.reduction)

    def output_shape(self, input_shape):
        if self.reduction != "none":
            return ()
        shape = tuple(input_shape)
        return shape[1:] if len(shape) == 1 else shape[:1] + shape[2:]
