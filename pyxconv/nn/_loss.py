"""Losses as layers: ``loss = criterion(logits, target)``, then ``criterion.backward()``.

The forward pass computes the gradient at the same time (the fused
softmax cross-entropy kernel does both in one pass over the logits), so
``backward`` only scales it by the upstream gradient.
"""
from pyxconv import functional as F
from pyxconv.nn._module import Module

__all__ = ["BCEWithLogits", "SoftmaxCrossEntropy"]


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
