"""Smoke test of an installed pyxconv wheel: it imports, reports its build, and convolves right.

Run from outside the source tree (so that the installed package is the one
imported), by .ci/steps/wheel.sh and by cibuildwheel's test-command:

    python .ci/smoke_test.py [--expect-openmp]

The convolution is checked against a plain loop written here, not against a
value pyxconv printed once.
"""
import os
import sys

import numpy as np


def loop_conv2d(x, w, b, stride, padding):
    """Cross-correlation by the definition: one output element at a time."""
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    xp = np.zeros((n, c_in, h + 2 * padding, wd + 2 * padding))
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, c_out, oh, ow))
    for i in range(n):
        for o in range(c_out):
            for r in range(oh):
                for s in range(ow):
                    total = b[o]
                    for c in range(c_in):
                        for p in range(kh):
                            for q in range(kw):
                                total += xp[i, c, r * stride + p, s * stride + q] * w[o, c, p, q]
                    out[i, o, r, s] = total
    return out


def main(argv):
    import pyxconv
    from pyxconv._kernels import _openmp_helpers
    from pyxconv.functional import conv2d

    here = os.path.realpath(os.getcwd())
    where = os.path.realpath(pyxconv.__file__)
    print("smoke: imported", where)
    source_tree = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
    if where.startswith(source_tree + os.sep) and "--allow-source-tree" not in argv:
        raise SystemExit(f"smoke: imported the source tree ({where}), not the installed wheel "
                         f"(cwd {here})")
    pyxconv.show_config()
    if "--expect-openmp" in argv and not _openmp_helpers.openmp_enabled():
        raise SystemExit("smoke: the wheel was built without OpenMP")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    for stride, padding in [(1, 0), (2, 1)]:
        want = loop_conv2d(x, w, b, stride, padding)
        for dtype, rtol in [(np.float64, 1e-10), (np.float32, 1e-4)]:
            got = conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype),
                         stride=stride, padding=padding)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 10)
        with pyxconv.num_threads(1):
            one = conv2d(x, w, b, stride=stride, padding=padding)
        with pyxconv.num_threads(2):
            two = conv2d(x, w, b, stride=stride, padding=padding)
        np.testing.assert_array_equal(one, two)
    print("smoke: conv2d agrees with the loop reference (float64, float32; 1 and 2 threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
