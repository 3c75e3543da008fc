"""Softmax, log-softmax and the classification losses, with their gradients.

The classifier head of a network turns the scores (logits) ``z`` of the C
classes into probabilities with the softmax and is trained with the
cross-entropy of those probabilities against the labels (lecture 003):

    p_j = exp(z_j) / sum_k exp(z_k),      L = -(1/M) sum_i log p_{c_i}(x_i).

:func:`softmax_cross_entropy` computes the loss and its gradient with respect
to the logits in one fused pass over the data (the compiled kernel
``pyxconv._kernels._softmax``): the probabilities never need to be stored.
:func:`binary_cross_entropy_with_logits` is the two-class (logistic
regression) version of lecture 004.

All functions follow PyTorch's ``torch.nn.functional`` names, argument order
and semantics; what PyTorch computes is computed here, to rounding.
"""
import math
import numbers

import numpy as np

from pyxconv._kernels import _softmax
from pyxconv._threads import threads_for
from pyxconv._validation import as_int, float_arrays

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_REDUCTIONS = ("mean", "sum", "none")
_INT64 = np.iinfo(np.int64)


def _float_array(x, name):
    """x as a float32/float64 ndarray, without a call when it already is one."""
    if isinstance(x, np.ndarray) and x.dtype in _FLOATS:
        return x
    return float_arrays(**{name: x})[0]


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_label_smoothing(label_smoothing):
    if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(
            label_smoothing, numbers.Real):
        raise TypeError(f"label_smoothing must be a real number, got {label_smoothing!r}")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return eps


def _check_class_weights(weight, n_classes, name="weight"):
    if weight.ndim != 1 or weight.shape[0] != n_classes:
        raise ValueError(
            f"{name} must have shape ({n_classes},), one weight per class, got {weight.shape}")
    _check_nonnegative(weight, name)
    return np.ascontiguousarray(weight)


def _check_nonnegative(weight, name):
    if not np.isfinite(weight).all():
        raise ValueError(f"{name} must be finite, got {weight!r}")
    if weight.size and weight.min() < 0:
        raise ValueError(f"{name} must be >= 0, got a minimum of {weight.min()}")


def _axis(axis, ndim, name="axis"):
    axis = as_int(axis, name)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array with {ndim} dimensions")
    return axis % ndim


def _rows_last_axis(x, axis):
    """x with ``axis`` moved last, as a C-contiguous 2-D (rows, C) array."""
    if axis != x.ndim - 1:
        x = np.moveaxis(x, axis, -1)
    moved_shape = x.shape
    return np.ascontiguousarray(x).reshape(-1, moved_shape[-1]), moved_shape


def _from_rows(out, moved_shape, axis, ndim):
    out = out.reshape(moved_shape)
    if axis != ndim - 1:
        out = np.ascontiguousarray(np.moveaxis(out, -1, axis))
    return out


def _softmax_impl(x, axis, log_output):
    x = _float_array(x, "x")
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension, got a 0-d array")
    axis = _axis(axis, x.ndim)
    if x.size == 0:
        return np.empty(x.shape, dtype=x.dtype)
    x2, moved_shape = _rows_last_axis(x, axis)
    out = np.empty(x2.shape, dtype=x.dtype)
    _softmax.softmax_rows(x2, out, log_output, threads_for(x2.size))
    return _from_rows(out, moved_shape, axis, x.ndim)


def softmax(x, axis=-1):
    """Softmax along one axis: positive values that sum to 1.

    Parameters
    ----------
    x : ndarray of any shape
        Scores (logits). float32 and float64 keep their dtype; integers
        become float64.
    axis : int, default -1
        The class axis (PyTorch's ``dim``).

    Returns
    -------
    ndarray, same shape and dtype as x
        ``exp(x) / sum(exp(x), axis)``.

    Raises
    ------
    ValueError
        0-d input or ``axis`` out of range.
    TypeError
        Complex, object or string arrays; non-integer ``axis``.

    Notes
    -----
    Softmax does not change when a constant is added to all the scores, so
    it is computed as ``exp(x - m) / sum(exp(x - m))`` with ``m = max(x)``:
    every exponent is <= 0 (no overflow) and the largest term is 1 (the sum
    cannot underflow to 0). Scores of 1e8 are as safe as scores of 1.

    NaN in a row gives NaN in that row.

    Examples
    --------
    Lecture 003's classifier output (WE-30): scores whose softmax is
    P(Dog) = 0.08, P(Cat) = 0.91, P(Rat) = 0.01.

    >>> import numpy as np
    >>> from pyxconv.functional import softmax
    >>> z = np.array([-2.5257, -0.0943, -4.6052])
    >>> softmax(z).round(2)
    array([0.08, 0.91, 0.01])
    >>> softmax(z + 1e8).round(2)   # shifting all scores changes nothing
    array([0.08, 0.91, 0.01])
    """
    return _softmax_impl(x, axis, False)


def log_softmax(x, axis=-1):
    """Logarithm of the softmax along one axis, computed without forming it.

    Parameters
    ----------
    x : ndarray of any shape
        Scores (logits).
    axis : int, default -1
        The class axis.

    Returns
    -------
    ndarray, same shape and dtype as x
        ``x - logsumexp(x, axis)``.

    Raises
    ------
    ValueError
        0-d input or ``axis`` out of range.
    TypeError
        Complex, object or string arrays; non-integer ``axis``.

    Notes
    -----
    The log-sum-exp trick: with ``m = max_k x_k``,

    .. math::

        \\log \\sum_k e^{x_k} = m + \\log \\sum_k e^{x_k - m},

    so ``log_softmax(x)_j = (x_j - m) - log(sum_k exp(x_k - m))``. The sum is
    between 1 and C, so the logarithm is always finite, and a very unlikely
    class gets a large negative value instead of ``log(0) = -inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import log_softmax
    >>> log_softmax(np.array([0.0, 0.0])).round(4)
    array([-0.6931, -0.6931])
    >>> log_softmax(np.array([0.0, -1000.0]))   # log(softmax) would give -inf
    array([    0., -1000.])
    """
    return _softmax_impl(x, axis, True)


def _grad_pair(grad_output, output):
    grad_output, output = float_arrays(grad_output=grad_output, output=output)
    if grad_output.shape != output.shape:
        raise ValueError(
            f"grad_output must have the shape of output {output.shape}, got {grad_output.shape}")
    if output.ndim == 0:
        raise ValueError("output must have at least one dimension, got a 0-d array")
    return grad_output, output


def softmax_backward(grad_output, output, axis=-1):
    """Gradient of :func:`softmax` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the softmax output.
    output : ndarray, same shape
        The softmax output ``y = softmax(x, axis)``.
    axis : int, default -1

    Returns
    -------
    grad_x : ndarray, same shape and dtype

    Raises
    ------
    ValueError
        Shape mismatch or ``axis`` out of range.

    Notes
    -----
    The Jacobian of the softmax is ``dy_i/dx_j = y_i ([i == j] - y_j)``, so

    .. math::

        \\frac{\\partial L}{\\partial x_j} = y_j \\Big(g_j - \\sum_i g_i y_i\\Big).

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import softmax, softmax_backward
    >>> y = softmax(np.array([1.0, 1.0]))
    >>> softmax_backward(np.array([1.0, 0.0]), y)
    array([ 0.25, -0.25])
    """
    grad_output, output = _grad_pair(grad_output, output)
    axis = _axis(axis, output.ndim)
    inner = np.sum(grad_output * output, axis=axis, keepdims=True)
    return output * (grad_output - inner)


def log_softmax_backward(grad_output, output, axis=-1):
    """Gradient of :func:`log_softmax` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the log-softmax output.
    output : ndarray, same shape
        The log-softmax output ``y = log_softmax(x, axis)``.
    axis : int, default -1

    Returns
    -------
    grad_x : ndarray, same shape and dtype

    Raises
    ------
    ValueError
        Shape mismatch or ``axis`` out of range.

    Notes
    -----
    ``dy_i/dx_j = [i == j] - p_j`` with ``p = exp(y)``, so
    ``grad_x_j = g_j - p_j sum_i g_i``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import log_softmax, log_softmax_backward
    >>> y = log_softmax(np.array([1.0, 1.0]))
    >>> log_softmax_backward(np.array([-1.0, 0.0]), y)   # the gradient of -y[0]
    array([-0.5,  0.5])
    """
    grad_output, output = _grad_pair(grad_output, output)
    axis = _axis(axis, output.ndim)
    return grad_output - np.exp(output) * np.sum(grad_output, axis=axis, keepdims=True)


def _class_indices(target, loss_shape, n_classes, ignore_index):
    """(flat int64 targets, ignore_index as int), every target checked to be a class
    index in [0, n_classes) or ignore_index (target already has loss_shape)."""
    if type(ignore_index) is not int:
        ignore_index = as_int(ignore_index, "ignore_index")
    if not _INT64.min <= ignore_index <= _INT64.max:
        raise ValueError(f"ignore_index must fit in int64, got {ignore_index}")
    t = np.ascontiguousarray(target, dtype=np.int64).reshape(-1)
    bad = _softmax.first_bad_target(t, n_classes, ignore_index)
    if bad >= 0:
        where = np.unravel_index(bad, loss_shape) if loss_shape else ()
        where = ", ".join(str(int(i)) for i in where)
        raise ValueError(
            f"target[{where}] = {t[bad]} is not a class index: with {n_classes} "
            f"classes it must be in [0, {n_classes - 1}] or equal "
            f"ignore_index={ignore_index}")
    return t, ignore_index


def _cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing,
                   want_grad):
    """The shared body of cross_entropy and softmax_cross_entropy."""
    _check_reduction(reduction)
    # every value but the default's 0.0 is checked: "" or None is not a smoothing of 0
    eps = (0.0 if type(label_smoothing) is float and label_smoothing == 0.0
           else _check_label_smoothing(label_smoothing))
    if not isinstance(target, np.ndarray):
        target = np.asarray(target)
    kind = target.dtype.kind
    probabilities = kind == "f"
    if probabilities:
        logits, target, weight = float_arrays(logits=logits, target=target, weight=weight)
    elif kind in "iu":
        logits = _float_array(logits, "logits")
        if weight is not None:
            weight = float_arrays(logits=logits, weight=weight)[1]
    else:
        raise TypeError(
            f"target has dtype {target.dtype}; pass integer class indices or float class "
            "probabilities")
    ndim = logits.ndim
    if ndim == 0:
        raise ValueError("logits must have shape (C,), (N, C) or (N, C, d1, ...), got a 0-d array")
    class_axis = 0 if ndim == 1 else 1
    n_classes = logits.shape[class_axis]
    if n_classes == 0:
        raise ValueError(f"logits has no classes: shape {logits.shape}")
    if weight is not None:
        weight = _check_class_weights(weight, n_classes)
    loss_shape = logits.shape[:class_axis] + logits.shape[class_axis + 1:]
    # validate the target before anything is copied or computed
    if probabilities:
        if target.shape != logits.shape:
            hint = " (class indices must be integers)" if target.shape == loss_shape else ""
            raise ValueError(
                f"class-probability target must have the shape of logits {logits.shape}, "
                f"got {target.shape}{hint}")
    else:
        if target.shape != loss_shape:
            raise ValueError(
                f"class-index target must have shape {loss_shape} (logits {logits.shape} "
                f"without the class axis), or logits' shape {logits.shape} for class "
                f"probabilities; got {target.shape}")
        t, ignore_index = _class_indices(target, loss_shape, n_classes, ignore_index)
    # (rows, C) C-contiguous logits, class axis last
    if ndim <= 2:
        z = np.ascontiguousarray(logits).reshape(-1, n_classes)
        moved_shape = None
    else:
        moved = np.moveaxis(logits, 1, -1)
        moved_shape = moved.shape
        z = np.ascontiguousarray(moved).reshape(-1, n_classes)
    rows = z.shape[0]
    n_threads = threads_for(z.size)
    row_loss = np.empty(rows, dtype=np.float64)
    grad = np.empty(z.shape, dtype=z.dtype) if want_grad else None
    mean = reduction == "mean"
    if probabilities:
        t = np.moveaxis(target, 1, -1) if ndim > 2 else target
        t = np.ascontiguousarray(t).reshape(-1, n_classes)
        scale = 1.0 / rows if mean and rows else 1.0
        total = _softmax.cross_entropy_prob(z, t, weight, eps, row_loss, grad, scale,
                                            n_threads)
        denom = float(rows)
    else:
        total, denom = _softmax.cross_entropy_index(z, t, weight, eps, ignore_index, row_loss,
                                                    grad, mean, n_threads)
    dtype = z.dtype.type
    if reduction == "none":
        loss = row_loss.astype(z.dtype).reshape(loss_shape)
    else:  # total: the row losses summed in row order by the kernel
        if reduction == "sum":
            loss = dtype(total)
        elif denom != 0.0:
            loss = dtype(total / denom)
        else:  # no non-ignored target, or their weights sum to 0: PyTorch's 0/0
            loss = dtype(math.nan if total == 0.0 or total != total else math.inf)
    if not want_grad:
        return loss
    if moved_shape is not None:
        grad = np.ascontiguousarray(np.moveaxis(grad.reshape(moved_shape), -1, 1))
    else:
        grad = grad.reshape(logits.shape)
    return loss, grad


_CE_PARAMS = """
    Parameters
    ----------
    logits : ndarray of shape (N, C), (N, C, d1, d2, ...) or (C,)
        Unnormalised class scores. float32 or float64 (integers become
        float64). The class axis is axis 1 (axis 0 for a single sample).
    target : ndarray of int of shape (N,), (N, d1, ...) or (), or float of logits' shape
        Integer class indices in ``[0, C)`` (or ``ignore_index``), or class
        probabilities of the same shape and dtype as ``logits`` (soft
        labels; they are not checked to sum to 1, as in PyTorch).
    weight : ndarray of shape (C,), optional
        A rescaling weight for each class (finite, >= 0).
    ignore_index : int, default -100
        Class-index targets equal to it contribute neither loss nor
        gradient and are left out of the mean's denominator. Not used with
        class probabilities.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        ``'mean'``: the sum of the losses divided by the summed weights of the
        non-ignored targets (by the number of rows N * d1 * ... for class
        probabilities); ``'sum'``: their sum; ``'none'``: one loss for each
        sample (and position), shape (N, d1, ...).
    label_smoothing : float in [0, 1], default 0.0
        Mixes the target with the uniform distribution:
        ``(1 - label_smoothing) * target + label_smoothing / C``.
"""

_CE_RAISES = """
    Raises
    ------
    ValueError
        A class index outside ``[0, C)`` that is not ``ignore_index``; a
        target shape that fits neither form; ``weight`` not of shape (C,),
        negative or not finite; ``label_smoothing`` outside [0, 1]; an
        unknown ``reduction``; 0-d logits or C = 0.
    TypeError
        Bool, complex, object or string arrays; float32 mixed with float64;
        non-integer ``ignore_index``; non-numeric ``label_smoothing``.
"""

_CE_NOTES = """
    Notes
    -----
    With ``w`` the class weights (all 1 by default), ``eps`` the label
    smoothing and ``lse = log sum_k exp(z_k)``, the loss of one sample with
    class index ``c`` is

    .. math::

        \\ell = (1 - \\epsilon)\\, w_c (\\mathrm{lse} - z_c)
               + \\frac{\\epsilon}{C} \\sum_k w_k (\\mathrm{lse} - z_k),

    and with class probabilities ``t`` it is
    ``sum_k w_k ((1 - eps) t_k + eps / C) (lse - z_k)``. Without smoothing and
    weights this is ``-log p_c``, lecture 003's ``-log p(c_i | x_i)``.

    *Log-sum-exp.* Factoring ``exp(m)`` out of the sum, with ``m = max_k z_k``,

    .. math::

        \\mathrm{lse} = \\log \\Big(e^m \\sum_k e^{z_k - m}\\Big)
                     = m + \\log s, \\qquad s = \\sum_k e^{z_k - m}.

    The exponentials are at most 1 and ``s`` is at least 1 (the term
    ``k = argmax``), so nothing overflows and the logarithm is finite.
    ``lse - z_c`` is formed as ``(m - z_c) + log s``, two non-negative terms,
    so logits of +-1e8 give the exact loss (two equal logits of 1e8 give
    log 2 = 0.693, where a naive ``log(softmax)`` gives nan or 0).

    *Gradient.* Writing the loss as ``sum_k a_k (lse - z_k)`` (for a class
    index, ``a_k = (1 - eps) w_c [k == c] + eps w_k / C``) and using
    ``d lse / d z_j = p_j``,

    .. math::

        \\frac{\\partial \\ell}{\\partial z_j} = p_j \\sum_k a_k - a_j,

    which is ``p - onehot(c)`` in the plain case. For ``'mean'`` it is divided
    by the same denominator as the loss; for ``'none'`` it is the gradient of
    the summed losses (each sample's loss depends only on its own logits).

    *NaN.* Logits containing NaN are not an error: the loss of that sample,
    and so the mean, is NaN, and so is its gradient row, as in PyTorch.
    PyTorch's conventions are kept for the edge cases too: if every target
    is ignored, the mean is NaN (0/0) and the gradient is 0.

    The per-sample losses are accumulated in float64 and reduced in a fixed
    order, so the result does not depend on the number of threads.
"""


def softmax_cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                          label_smoothing=0.0):
    return _cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing,
                          True)


def cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    return _cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing,
                          False)


softmax_cross_entropy.__doc__ = f"""Softmax cross-entropy and its gradient, in one fused pass.

    The loss of :func:`cross_entropy` together with its gradient with respect
    to the logits, computed at once: the forward and backward pass of a
    classifier's softmax + cross-entropy head.
{_CE_PARAMS}
    Returns
    -------
    loss : float32/float64 scalar, or ndarray of shape (N, d1, ...) for ``'none'``
        Same dtype as ``logits``.
    grad_logits : ndarray, shape and dtype of logits
        ``d loss / d logits`` (for ``'none'``: ``d loss.sum() / d logits``).
{_CE_RAISES}{_CE_NOTES}
    Examples
    --------
    Lecture 003 (WE-30): the network says P(Dog) = 0.08, P(Cat) = 0.91,
    P(Rat) = 0.01. If the picture is a cat (class 1), the loss is
    ``-ln 0.91 = 0.0943``; had it been a dog, ``-ln 0.08 = 2.5257``. The
    gradient is the probabilities minus the one-hot label.

    >>> import numpy as np
    >>> from pyxconv.functional import softmax_cross_entropy
    >>> z = np.log(np.array([[0.08, 0.91, 0.01]]))
    >>> loss, grad = softmax_cross_entropy(z, np.array([1]))
    >>> round(float(loss), 4)
    0.0943
    >>> grad.round(2)
    array([[ 0.08, -0.09,  0.01]])
    >>> round(float(softmax_cross_entropy(z, np.array([0]))[0]), 4)
    2.5257
    """

cross_entropy.__doc__ = f"""Cross-entropy of logits against targets, as PyTorch's ``cross_entropy``.

    Applies the softmax to the logits and takes the negative log-probability
    of the target class, ``-log p_c`` (lecture 003), averaged over the batch.
    Use :func:`softmax_cross_entropy` to get the gradient as well.
{_CE_PARAMS}
    Returns
    -------
    loss : float32/float64 scalar, or ndarray of shape (N, d1, ...) for ``'none'``
        Same dtype as ``logits``.
{_CE_RAISES}{_CE_NOTES}
    Examples
    --------
    Lecture 003 (WE-30): P(Cat) = 0.91 for a cat costs ``-ln 0.91``.

    >>> import numpy as np
    >>> from pyxconv.functional import cross_entropy
    >>> z = np.array([[-2.5257, -0.0943, -4.6052]])
    >>> round(float(cross_entropy(z, np.array([1]))), 4)
    0.0943

    Two equal logits of 1e8 are two equally likely classes, ``log 2``:

    >>> round(float(cross_entropy(np.array([[1e8, 1e8]]), np.array([0]))), 4)
    0.6931

    Ten classes and near-zero logits: the loss of guessing, ``log 10``.

    >>> rng = np.random.default_rng(0)
    >>> z = 1e-3 * rng.standard_normal((100, 10))
    >>> round(float(cross_entropy(z, rng.integers(0, 10, 100))), 2)
    2.3
    """


def _nll_checked(input, target, weight, ignore_index, reduction):
    """Validated nll_loss arguments: (rows, C) log-probabilities and the row targets."""
    _check_reduction(reduction)
    input = _float_array(input, "input")
    if weight is not None:
        weight = float_arrays(input=input, weight=weight)[1]
    if not isinstance(target, np.ndarray):
        target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if input.ndim == 0:
        raise ValueError("input must have shape (C,), (N, C) or (N, C, d1, ...), got a 0-d array")
    class_axis = 0 if input.ndim == 1 else 1
    n_classes = input.shape[class_axis]
    if n_classes == 0:
        raise ValueError(f"input has no classes: shape {input.shape}")
    if weight is not None:
        weight = _check_class_weights(weight, n_classes)
    loss_shape = input.shape[:class_axis] + input.shape[class_axis + 1:]
    if target.shape != loss_shape:
        raise ValueError(f"target must have shape {loss_shape} (input {input.shape} without "
                         f"the class axis), got {target.shape}")
    t, ignore_index = _class_indices(target, loss_shape, n_classes, ignore_index)
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    # each row's weight w[t] in float64, 0 for ignored targets
    w_rows = np.where(valid, 1.0 if weight is None else weight.astype(np.float64)[safe], 0.0)
    return input, class_axis, loss_shape, safe, valid, w_rows


def _nll_rows_shape(input, class_axis):
    """input's shape with the class axis moved last."""
    shape = input.shape
    return shape[:class_axis] + shape[class_axis + 1:] + (shape[class_axis],)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities at integer targets, as PyTorch's ``nll_loss``.

    The loss of sample ``n`` (and position ``d1, ...``) with class index
    ``c = target[n, d1, ...]`` is ``-weight[c] * input[n, c, d1, ...]``.
    Applied to :func:`log_softmax` output it is :func:`cross_entropy`.

    Parameters
    ----------
    input : ndarray of shape (N, C), (N, C, d1, d2, ...) or (C,)
        Log-probabilities (any real scores are accepted). float32 or float64
        (integers become float64). The class axis is axis 1 (axis 0 for a
        single sample).
    target : ndarray of int of shape (N,), (N, d1, ...) or ()
        Class indices in ``[0, C)``, or ``ignore_index``.
    weight : ndarray of shape (C,), optional
        A rescaling weight for each class (finite, >= 0).
    ignore_index : int, default -100
        Targets equal to it contribute neither loss nor gradient and are left
        out of the mean's denominator.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        ``'mean'``: the summed losses divided by the summed weights of the
        non-ignored targets; ``'sum'``: their sum; ``'none'``: one loss for
        each sample (and position), shape (N, d1, ...), 0 where ignored.

    Returns
    -------
    loss : float32/float64 scalar, or ndarray of shape (N, d1, ...) for ``'none'``
        Same dtype as ``input``.

    Raises
    ------
    ValueError
        A class index outside ``[0, C)`` that is not ``ignore_index``; a
        target shape other than input's without the class axis; ``weight``
        not of shape (C,), negative or not finite; an unknown ``reduction``;
        0-d input or C = 0.
    TypeError
        A non-integer target; float32 input mixed with a float64 weight;
        bool, complex, object or string input; non-integer ``ignore_index``.

    See Also
    --------
    nll_loss_backward : the gradient with respect to ``input``.

    Notes
    -----
    As in PyTorch, a mean over no weight (every target ignored, or weights
    summing to 0) is NaN (0/0); NaN in a selected input entry gives NaN.
    The products ``weight[c] * input[..., c, ...]`` are summed in float64 in
    a fixed order, so the result does not depend on the number of threads.

    Examples
    --------
    Lecture 003 (WE-30): P(Cat) = 0.91 for a cat costs ``-ln 0.91``.

    >>> import numpy as np
    >>> from pyxconv.functional import nll_loss
    >>> logp = np.log(np.array([[0.08, 0.91, 0.01], [0.08, 0.91, 0.01]]))
    >>> round(float(nll_loss(logp, np.array([1, 0]), reduction="none")[0]), 4)
    0.0943
    >>> round(float(nll_loss(logp, np.array([1, -100]))), 4)   # the second is ignored
    0.0943
    """
    input, class_axis, loss_shape, safe, valid, w_rows = _nll_checked(
        input, target, weight, ignore_index, reduction)
    rows = np.moveaxis(input, class_axis, -1).reshape(-1, input.shape[class_axis])
    picked = rows[np.arange(rows.shape[0]), safe].astype(np.float64)
    losses = np.where(valid, -(w_rows * picked), 0.0)
    dtype = input.dtype.type
    if reduction == "none":
        return losses.astype(input.dtype).reshape(loss_shape)
    total = float(np.sum(losses))
    if reduction == "sum":
        return dtype(total)
    denom = float(np.sum(w_rows))
    return dtype(total / denom) if denom != 0.0 else dtype(math.nan)


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100,
                      reduction="mean"):
    """Gradient of :func:`nll_loss` with respect to its input.

    It does not depend on the input's values: ``-weight[c] * grad_output`` at
    each target's class (divided by the summed weights for ``'mean'``), 0
    elsewhere and at ignored targets.

    Parameters
    ----------
    grad_output : scalar, or ndarray of the loss's shape (N, d1, ...) for ``'none'``
        The gradient flowing into the loss.
    input, target, weight, ignore_index, reduction
        As given to :func:`nll_loss`.

    Returns
    -------
    ndarray, shape and dtype of input

    Raises
    ------
    ValueError
        As :func:`nll_loss`, or ``grad_output`` not of the loss's shape.

    Notes
    -----
    For ``'mean'`` over no weight the non-ignored entries are NaN
    (``-0 / 0``), as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import nll_loss_backward
    >>> nll_loss_backward(1.0, np.zeros((2, 3)), np.array([2, 0]))
    array([[ 0. ,  0. , -0.5],
           [-0.5,  0. ,  0. ]])
    """
    input, class_axis, loss_shape, safe, valid, w_rows = _nll_checked(
        input, target, weight, ignore_index, reduction)
    g = np.asarray(grad_output)
    if g.dtype.kind not in "fiu":
        raise TypeError(f"grad_output must be real numbers, got dtype {g.dtype}")
    want = loss_shape if reduction == "none" else ()
    if g.shape != want:
        raise ValueError(f"grad_output must have the loss's shape {want} for "
                         f"reduction={reduction!r}, got {g.shape}")
    g = g.astype(np.float64).reshape(-1) if reduction == "none" else float(g)
    if reduction == "mean":
        denom = float(np.sum(w_rows))
        g = g / denom if denom != 0.0 else math.nan
    n_rows = safe.shape[0]
    grad = np.zeros((n_rows, input.shape[class_axis]), dtype=input.dtype)
    idx = np.flatnonzero(valid)
    grad[idx, safe[idx]] = -(w_rows * g)[idx]
    grad = grad.reshape(_nll_rows_shape(input, class_axis))
    return np.ascontiguousarray(np.moveaxis(grad, -1, class_axis))


def _bce(logits, target, weight, reduction, pos_weight, want_grad):
    _check_reduction(reduction)
    logits, target, weight, pos_weight = float_arrays(
        logits=logits, target=target, weight=weight, pos_weight=pos_weight)
    if target.shape != logits.shape:
        raise ValueError(
            f"target must have the shape of logits {logits.shape}, got {target.shape}")
    for name, w in (("weight", weight), ("pos_weight", pos_weight)):
        if w is None:
            continue
        try:
            shape = np.broadcast_shapes(w.shape, logits.shape)
        except ValueError:
            shape = None
        if shape != logits.shape:
            raise ValueError(
                f"{name} of shape {w.shape} does not broadcast to logits' shape {logits.shape}")
        _check_nonnegative(w, name)
    x, y = logits, target
    e = np.exp(-np.abs(x))                       # in (0, 1]: never overflows
    softplus_neg = np.log1p(e) + np.maximum(-x, 0)   # log(1 + exp(-x)) = -log sigmoid(x)
    if pos_weight is None:
        log_weight = 1
    else:
        log_weight = (pos_weight - 1) * y + 1
    loss = (1 - y) * x + log_weight * softplus_neg
    if weight is not None:
        loss = loss * weight
    loss = np.asarray(loss, dtype=x.dtype)
    n = loss.size
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = x.dtype.type(loss.sum(dtype=np.float64))
    else:
        out = x.dtype.type(loss.sum(dtype=np.float64) / n if n else math.nan)
    if not want_grad:
        return out
    sigmoid_neg = np.where(x >= 0, e, 1) / (1 + e)   # sigmoid(-x) = 1 - sigmoid(x)
    grad = (1 - y) - log_weight * sigmoid_neg
    if weight is not None:
        grad = grad * weight
    if reduction == "mean" and n:
        grad = grad / n
    return out, np.asarray(grad, dtype=x.dtype)


_BCE_PARAMS = """
    Parameters
    ----------
    logits : ndarray of any shape
        Scores ``x``; the probability of the positive class is
        ``sigmoid(x) = 1 / (1 + exp(-x))``.
    target : ndarray, shape of logits
        Labels ``y``, 0 or 1 (soft labels in between are allowed; the
        values are not checked, as in PyTorch).
    weight : ndarray, optional
        Rescaling weight, broadcastable to the logits' shape, finite and >= 0.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        ``'mean'`` divides the sum by the number of elements.
    pos_weight : ndarray, optional
        Weight of the positive examples, broadcastable to the logits' shape
        (usually one per class, shape (C,)), finite and >= 0.
"""

_BCE_NOTES = """
    Notes
    -----
    The loss of one element, with ``q = pos_weight`` (1 by default),

    .. math::

        \\ell = -w \\,[\\, q\\, y \\log \\sigma(x) + (1 - y) \\log(1 - \\sigma(x)) \\,]
             = w \\,[\\, (1 - y)\\, x + (1 + (q - 1) y)\\, \\mathrm{softplus}(-x) \\,],

    using ``log(1 - sigmoid(x)) = -x - softplus(-x)``. ``softplus(-x) =
    log(1 + exp(-x))`` is computed as ``log1p(exp(-|x|)) + max(-x, 0)``, which
    never overflows, so logits of +-1e8 give exact losses.

    The gradient is ``w [(1 - y) - (1 + (q - 1) y) sigmoid(-x)]``, which is
    ``sigmoid(x) - y`` in the plain case.
"""


def binary_cross_entropy_with_logits(logits, target, weight=None, reduction="mean",
                                     pos_weight=None):
    return _bce(logits, target, weight, reduction, pos_weight, False)


def sigmoid_binary_cross_entropy(logits, target, weight=None, reduction="mean",
                                 pos_weight=None):
    return _bce(logits, target, weight, reduction, pos_weight, True)


binary_cross_entropy_with_logits.__doc__ = f"""Binary cross-entropy of sigmoid(logits).

    The loss of logistic regression: lecture 004's "is this digit a 5?"
    classifier, with the semantics of PyTorch's function of the same name.
    Use :func:`sigmoid_binary_cross_entropy` for the gradient too.
{_BCE_PARAMS}
    Returns
    -------
    loss : float32/float64 scalar, or ndarray of the logits' shape for ``'none'``

    Raises
    ------
    ValueError
        Shape mismatch; weights that do not broadcast, are negative or not
        finite; unknown ``reduction``.
    TypeError
        Complex, object or string arrays; float32 mixed with float64.
{_BCE_NOTES}
    Examples
    --------
    A score of 0 is a coin toss, ``log 2`` whatever the label:

    >>> import numpy as np
    >>> from pyxconv.functional import binary_cross_entropy_with_logits
    >>> x = np.array([0.0, 0.0, 1e8, -1e8])
    >>> y = np.array([1.0, 0.0, 1.0, 1.0])
    >>> binary_cross_entropy_with_logits(x, y, reduction="none").round(4)
    array([6.931e-01, 6.931e-01, 0.000e+00, 1.000e+08])
    """

sigmoid_binary_cross_entropy.__doc__ = f"""Binary cross-entropy of sigmoid(logits) and its gradient.

    :func:`binary_cross_entropy_with_logits` together with
    ``d loss / d logits``.
{_BCE_PARAMS}
    Returns
    -------
    loss : float32/float64 scalar, or ndarray of the logits' shape for ``'none'``
    grad_logits : ndarray, shape and dtype of logits
        ``d loss / d logits`` (for ``'none'``: ``d loss.sum() / d logits``).

    Raises
    ------
    ValueError
        Shape mismatch; weights that do not broadcast, are negative or not
        finite; unknown ``reduction``.
    TypeError
        Complex, object or string arrays; float32 mixed with float64.
{_BCE_NOTES}
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import sigmoid_binary_cross_entropy
    >>> loss, grad = sigmoid_binary_cross_entropy(np.array([0.0, 2.0]), np.array([1.0, 0.0]),
    ...                                           reduction="sum")
    >>> grad.round(4)   # sigmoid(x) - y
    array([-0.5   ,  0.8808])
    """
