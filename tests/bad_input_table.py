"""Malformed calls to every public function, and the error each must raise.

Run by ``tests/test_bad_input.py`` in a child process, so that a call that
crashed the interpreter fails its test instead of killing the test run.

Each case is ``(case_id, call, error, message_regex)``: ``call`` takes the
namespace ``ns`` (with ``np``, ``F`` = pyxconv.functional and read-only
example arrays) and makes one call that must raise ``error`` with a message
matching ``message_regex``. Every example array is read-only and is checked
unchanged after each call.
"""
import numpy as np


def make_namespace():
    import pyxconv.functional as F

    rng = np.random.default_rng(0)
    arrays = {
        "x4": rng.standard_normal((2, 4, 6, 6)),
        "w4": rng.standard_normal((6, 2, 3, 3)),
        "x3": rng.standard_normal((2, 4, 9)),
        "w3": rng.standard_normal((6, 4, 3)),
        "x5": rng.standard_normal((1, 2, 4, 4, 4)),
        "w5": rng.standard_normal((3, 2, 2, 2, 2)),
        "x32": rng.standard_normal((2, 4, 6, 6)).astype(np.float32),
        "nan4": np.full((2, 4, 6, 6), np.nan),
    }
    for a in arrays.values():
        a.setflags(write=False)
    ns = {"np": np, "F": F}
    ns.update(arrays)
    return ns, arrays


HUGE = 2**40

CASES = [
    # ---------------------------------------------------------------- conv2d
    ("conv2d-x-3d", lambda ns: ns["F"].conv2d(ns["x3"], ns["w4"]), ValueError, "x must be 4-D"),
    ("conv2d-weight-5d", lambda ns: ns["F"].conv2d(ns["x4"], ns["w5"]), ValueError,
     "weight must be 4-D"),
    ("conv2d-channels", lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"]), ValueError, "C_in=4"),
    ("conv2d-groups-not-dividing", lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=3),
     ValueError, "groups=3 must divide"),
    ("conv2d-groups-zero", lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=0),
     ValueError, "groups must be >= 1"),
    ("conv2d-stride-zero", lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=2, stride=0),
     ValueError, "stride must be >= 1"),
    ("conv2d-stride-float", lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=2, stride=1.0),
     TypeError, "stride must be an integer"),
    ("conv2d-dilation-negative",
     lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=2, dilation=-1),
     ValueError, "dilation must be >= 1"),
    ("conv2d-padding-negative",
     lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=2, padding=-2),
     ValueError, "padding must be >= 0"),
    ("conv2d-kernel-larger-than-input",
     lambda ns: ns["F"].conv2d(ns["x4"], np.ones((6, 2, 7, 7)), groups=2),
     ValueError, "kernel does not fit"),
    ("conv2d-huge-dilation",
     lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=2, dilation=HUGE),
     ValueError, "kernel does not fit"),
    ("conv2d-huge-padding-memory",
     lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=2, padding=HUGE),
     MemoryError, "output of shape"),
    ("conv2d-mixed-dtypes", lambda ns: ns["F"].conv2d(ns["x32"], ns["w4"], groups=2),
     TypeError, "share one float dtype"),
    ("conv2d-complex", lambda ns: ns["F"].conv2d(ns["x4"].astype(complex), ns["w4"], groups=2),
     TypeError, "complex"),
    ("conv2d-object", lambda ns: ns["F"].conv2d(np.array([[[[object()]]]]), ns["w4"]),
     TypeError, "object"),
    ("conv2d-string", lambda ns: ns["F"].conv2d("abc", ns["w4"]), TypeError, "dtype"),
    ("conv2d-ragged", lambda ns: ns["F"].conv2d([[1, 2], [3]], ns["w4"]), TypeError,
     "array-like"),
    ("conv2d-bias-shape", lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], np.ones(3), groups=2),
     ValueError, "bias must have shape"),
    ("conv2d-empty-batch", lambda ns: ns["F"].conv2d(np.ones((0, 4, 6, 6)), ns["w4"], groups=2),
     ValueError, "empty dimension"),
    ("conv2d-same-stride-2",
     lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=2, padding="same", stride=2),
     ValueError, "'same' needs stride 1"),
    ("conv2d-padding-bad-pairs",
     lambda ns: ns["F"].conv2d(ns["x4"], ns["w4"], groups=2, padding=((1, 2, 3), (0, 0))),
     ValueError, "pairs must be"),
    ("conv2d-backward-grad-shape",
     lambda ns: ns["F"].conv2d_backward(np.ones((2, 6, 3, 3)), ns["x4"], ns["w4"], groups=2),
     ValueError, "grad_out must have the output's shape"),
    ("conv2d-backward-grad-dtype",
     lambda ns: ns["F"].conv2d_backward(np.ones((2, 6, 4, 4), np.float32), ns["x4"], ns["w4"],
                                        groups=2),
     TypeError, "share one float dtype"),
    # ---------------------------------------------------------------- conv1d / conv3d
    ("conv1d-x-4d", lambda ns: ns["F"].conv1d(ns["x4"], ns["w3"]), ValueError, "x must be 3-D"),
    ("conv1d-kernel-too-long", lambda ns: ns["F"].conv1d(ns["x3"], np.ones((1, 4, 12))),
     ValueError, "kernel does not fit: length"),
    ("conv3d-channels", lambda ns: ns["F"].conv3d(ns["x5"], np.ones((3, 5, 2, 2, 2))),
     ValueError, "C_in=2"),
    ("conv3d-stride-tuple-length",
     lambda ns: ns["F"].conv3d(ns["x5"], ns["w5"], stride=(1, 1)),
     ValueError, "stride must be an int or 3 ints"),
    ("same_padding-zero-size", lambda ns: ns["F"].same_padding((0, 4), 3, stride=2), ValueError,
     "input_size must be >= 1"),
    ("same_padding-stride-zero", lambda ns: ns["F"].same_padding((4, 4), 3, stride=0), ValueError,
     "stride must be >= 1"),
    # ---------------------------------------------------------------- im2col / col2im
    ("im2col-kernel-zero", lambda ns: ns["F"].im2col(ns["x4"], 0), ValueError,
     "kernel_size must be >= 1"),
    ("im2col-kernel-too-big", lambda ns: ns["F"].im2col(ns["x4"], 7), ValueError,
     "kernel does not fit"),
    ("col2im-wrong-columns", lambda ns: ns["F"].col2im(np.ones((1, 4, 5)), (3, 3), 2),
     ValueError, "columns"),
    ("col2im-output-size-zero", lambda ns: ns["F"].col2im(np.ones((1, 4, 4)), (0, 3), 2),
     ValueError, "output_size must be >= 1"),
]
