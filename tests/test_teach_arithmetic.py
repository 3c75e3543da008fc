"""The lectures' arithmetic (pyxconv.teach) against the worked examples and against conv2d."""
import math

import numpy as np
import pytest

from pyxconv.functional import conv1d, conv2d
from pyxconv.teach import (
    conv_mult_adds,
    conv_output_size,
    conv_params,
    dense_params,
    explain_output_cell,
    jacobian_bytes,
    receptive_field,
)

LECTURE_003_X = np.array([[4, 1, -3, 1], [2, 0, -2, 3], [4, 2, -1, 2], [2, 1, -1, 0]])
LECTURE_003_K = np.array([[2, -1, 2], [-2, 0, 1], [1, 3, 4]])


def test_output_size_of_the_lectures_7x7_example_we12():
    assert [conv_output_size(7, 3, stride=s) for s in (1, 2, 3)] == [5, 3, 2]
    assert conv_output_size(7, 3, stride=3, exact=True) == pytest.approx(7 / 3)
    assert conv_output_size(7, 3, stride=2, exact=True) == 3


def test_zero_padding_preserves_size_we13():
    assert conv_output_size(7, 3, padding=1) == 7
    for f in (1, 3, 5, 7):
        assert conv_output_size(32, f, padding=(f - 1) // 2) == 32
    # F=5, S=2 on an even size never fits exactly
    assert all(conv_output_size(32, 5, 2, p, exact=True).denominator == 2 for p in range(3))
    assert conv_output_size(31, 5, 2, 2, exact=True) == 16


def test_shrinking_and_params_we14_we15_we22():
    assert conv_output_size(32, 5) == 28 and conv_output_size(28, 5) == 24
    assert conv_output_size(32, 5, padding=2) == 32
    assert conv_params(3, 10, 5) == 760
    assert conv_params(2, 5, 1, bias=False) == 10


def test_output_size_agrees_with_conv2d_on_every_small_case():
    for n in range(1, 9):
        for k in range(1, n + 3):
            for s in (1, 2, 3):
                for p in (0, 1, 2):
                    for d in (1, 2):
                        span = d * (k - 1) + 1
                        if span > n + 2 * p:
                            with pytest.raises(ValueError):
                                conv_output_size(n, k, s, p, d)
                            continue
                        out = conv1d(np.zeros((1, 1, n)), np.zeros((1, 1, k)), stride=s,
                                     padding=p, dilation=d)
                        assert conv_output_size(n, k, s, p, d) == out.shape[-1]


def test_ceil_mode_matches_pytorch_pooling_rule_we33():
    assert [conv_output_size(w, 2, 2, ceil_mode=True) for w in (4, 5, 7, 32, 224)] == [
        2, 3, 4, 16, 112]
    assert [conv_output_size(w, 2, 2) for w in (5, 7)] == [2, 3]
    torch = pytest.importorskip("torch")
    for n in range(1, 12):
        for k in range(1, 4):
            for s in range(1, 4):
                for p in range(0, k // 2 + 1):
                    if k > n + 2 * p:
                        continue
                    pool = torch.nn.functional.max_pool1d(
                        torch.zeros(1, 1, n), k, s, p, ceil_mode=True)
                    assert conv_output_size(n, k, s, p, ceil_mode=True) == pool.shape[-1]


def test_inception_mult_adds_we19_we20():
    naive = [conv_mult_adds(28, 256, 128, 1), conv_mult_adds(28, 256, 192, 3),
             conv_mult_adds(28, 256, 96, 5)]
    assert naive == [25_690_112, 346_816_512, 481_689_600]
    assert sum(naive) == 854_196_224
    reduced = [conv_mult_adds(28, 256, 64, 1), conv_mult_adds(28, 256, 64, 1),
               conv_mult_adds(28, 256, 128, 1), conv_mult_adds(28, 64, 192, 3),
               conv_mult_adds(28, 64, 96, 5), conv_mult_adds(28, 256, 64, 1)]
    assert sum(reduced) == 271_351_808  # the slide says 358M


def test_receptive_field_of_three_3x3_is_7x7_we18():
    assert receptive_field([3, 3, 3]) == 7
    assert receptive_field([(7, 2), (3, 2)]) == 11
    # check against the impulse response of a stack of convolutions
    x = np.zeros((1, 1, 21)); x[0, 0, 10] = 1
    y = x
    for _ in range(3):
        y = conv1d(y, np.ones((1, 1, 3)), padding=1)
    assert np.count_nonzero(y) == 7


def test_dense_and_jacobian_we08_we11():
    assert dense_params(784, 128, bias=False) + dense_params(128, 10, bias=False) == 101_632
    assert dense_params(3072, 10) == 30_730
    assert jacobian_bytes(64, 4096, 4096) == 256 * 2**30


def test_explain_output_cell_we23_and_agrees_with_conv2d():
    cell = explain_output_cell(LECTURE_003_X, LECTURE_003_K, (0, 0))
    np.testing.assert_array_equal(cell.products, [[[8, -1, -6], [-4, 0, -2], [4, 6, -4]]])
    assert cell.value == 1
    text = str(cell)
    assert "= 1" in text.splitlines()[-1]
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, size=(2, 3, 6, 7)).astype(float)
    w = rng.integers(-2, 3, size=(4, 3, 3, 2)).astype(float)
    b = rng.integers(-2, 3, size=4).astype(float)
    for stride, padding in [(1, 0), (2, 1), ((2, 1), ((0, 1), (2, 0)))]:
        out = conv2d(x, w, b, stride=stride, padding=padding)
        for n, k, i, j in [(0, 0, 0, 0), (1, 3, out.shape[2] - 1, out.shape[3] - 1),
                           (1, 2, 1, 0)]:
            cell = explain_output_cell(x, w, (i, j), stride, padding, b, sample=n,
                                       out_channel=k)
            assert cell.value == pytest.approx(out[n, k, i, j])


def test_explain_output_cell_tf_same_we25():
    cell = explain_output_cell(LECTURE_003_X, LECTURE_003_K, (0, 1), stride=2, padding="same")
    assert cell.value == 2  # the slide's -9 is a sign error; see the docs' erratum


@pytest.mark.parametrize("call, exc, name", [
    (lambda: conv_output_size(0, 3), ValueError, "input_size"),
    (lambda: conv_output_size(7, 3.5), TypeError, "kernel_size"),
    (lambda: conv_output_size(7, 3, stride=0), ValueError, "stride"),
    (lambda: conv_output_size(7, 3, padding=-1), ValueError, "padding"),
    (lambda: conv_output_size(2, 5), ValueError, "kernel_size"),
    (lambda: conv_params(3, 10, 0), ValueError, "kernel_size"),
    (lambda: conv_params(3, 10, 3, groups=2), ValueError, "groups"),
    (lambda: conv_params("3", 10, 3), TypeError, "c_in"),
    (lambda: dense_params(10, 0), ValueError, "n_out"),
    (lambda: conv_mult_adds((28, 28, 1), 3, 3, 3), ValueError, "output_size"),
    (lambda: receptive_field([]), ValueError, "layers"),
    (lambda: receptive_field([3, "x"]), TypeError, "layers[1]"),
    (lambda: receptive_field([(3, 0)]), ValueError, "layers[0]"),
    (lambda: jacobian_bytes(64, 0, 1), ValueError, "d"),
    (lambda: explain_output_cell(LECTURE_003_X, LECTURE_003_K, (2, 0)), ValueError, "index"),
    (lambda: explain_output_cell(LECTURE_003_X, LECTURE_003_K, 0), TypeError, "index"),
    (lambda: explain_output_cell(LECTURE_003_X, np.ones((2, 2, 2, 2)), (0, 0)), ValueError,
     "input channels"),
    (lambda: explain_output_cell(LECTURE_003_X, LECTURE_003_K, (0, 0), out_channel=1),
     ValueError, "out_channel"),
])
def test_bad_input_names_the_argument(call, exc, name):
    with pytest.raises(exc, match=name.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_math_identity_of_parameter_counts():
    assert conv_params(64, 64, 3, bias=False) * 3 == 27 * 64 ** 2
    assert conv_params(64, 64, 7, bias=False) == 49 * 64 ** 2
    assert conv_params(3, 8, (3, 3, 3)) == math.prod((3, 3, 3)) * 3 * 8 + 8
