"""Reference computations shared by the tests (never library code under test)."""
import numpy as np


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of the scalar ``f(x)`` with respect to every entry of ``x``.

    ``x`` must be a float64 array: it is perturbed in place (and restored), and
    passed to ``f``, so ``f`` may use its argument or a closure over ``x``.
    """
    if not (isinstance(x, np.ndarray) and x.dtype == np.float64):
        raise TypeError("numerical_gradient needs a float64 ndarray, so the perturbations "
                        "are not lost to rounding")
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = f(x)
        x[idx] = old - eps
        minus = f(x)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def conv2d_by_loops(x, w, b, stride, pads, dilation):
    """2-D cross-correlation and its backward by the definition, in float64 plain loops.

    Returns ``(out, backward)`` where ``backward(g)`` gives ``(grad_x, grad_w,
    grad_b)``: every product x[n, ci, ih, iw] * w[co, ci, a, e] that makes
    out[n, co, oh, ow] sends g[n, co, oh, ow] back to both factors.
    ``pads`` is ((top, bottom), (left, right)).
    """
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh_n = (h + pads[0][0] + pads[0][1] - dh * (kh - 1) - 1) // sh + 1
    ow_n = (wd + pads[1][0] + pads[1][1] - dw * (kw - 1) - 1) // sw + 1

    def products():
        for s in range(n):
            for co in range(c_out):
                for oh in range(oh_n):
                    for ow in range(ow_n):
                        for ci in range(c_in):
                            for a in range(kh):
                                for e in range(kw):
                                    ih = oh * sh - pads[0][0] + a * dh
                                    iw = ow * sw - pads[1][0] + e * dw
                                    if 0 <= ih < h and 0 <= iw < wd:
                                        yield (s, co, oh, ow), (s, ci, ih, iw), (co, ci, a, e)

    out = np.zeros((n, c_out, oh_n, ow_n))
    if b is not None:
        out += np.asarray(b, np.float64)[:, None, None]
    for o, i, k in products():
        out[o] += x[i] * w[k]

    def backward(g):
        g = np.asarray(g, np.float64)
        grad_x, grad_w = np.zeros_like(x), np.zeros_like(w)
        for o, i, k in products():
            grad_x[i] += g[o] * w[k]
            grad_w[k] += g[o] * x[i]
        return grad_x, grad_w, g.sum(axis=(0, 2, 3))

    return out, backward
