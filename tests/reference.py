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
