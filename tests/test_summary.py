"""summary / receptive_field / gradcheck against lecture 002's numbers (worked-examples.md)."""
import numpy as np
import pytest

from pyxconv import nn
from pyxconv.models import googlenet, inception, lenet5
from pyxconv.teach import GradcheckError, gradcheck, receptive_field, summary


def test_we15_ten_5x5_filters_on_32x32x3_have_760_parameters():
    s = summary(nn.Conv2d(3, 10, 5, stride=1, padding=2), (3, 32, 32))
    assert s.output_shape == (10, 32, 32)
    assert s.total_params == 760
    assert s.total_mult_adds == 32 * 32 * 10 * 5 * 5 * 3


def test_we19_naive_inception_module_costs_854m_multiply_adds():
    s = summary(inception(256, 128, None, 192, None, 96, None, naive=True), (256, 28, 28))
    assert s.total_mult_adds == 854_196_224
    assert s.output_shape == (128 + 192 + 96 + 256, 28, 28)


def test_we20_reduced_inception_module_terms_sum_to_271m_not_the_lectures_358m():
    s = summary(inception(256, 128, 64, 192, 64, 96, 64), (256, 28, 28))
    assert s.total_mult_adds == 271_351_808
    assert s.output_shape == (480, 28, 28)


def test_we21_googlenet_layer_table():
    s = summary(googlenet(), (3, 224, 224))
    top = [(r["type"], r["output_shape"]) for r in s.rows if r["depth"] == 0]
    expected = [
        ((64, 112, 112)), (64, 56, 56), (192, 56, 56), (192, 28, 28),
        (256, 28, 28), (480, 28, 28), (480, 14, 14),
        (512, 14, 14), (512, 14, 14), (512, 14, 14), (528, 14, 14), (832, 14, 14),
        (832, 7, 7), (832, 7, 7), (1024, 7, 7),
        (1024, 1, 1), (1024, 1, 1), (1024,), (1000,),
    ]
    assert [shape for _, shape in top] == expected
    # depth 22: layers with parameters along the deepest path (inception modules count 2)
    depth = {"Sequential": 1, "Concat": 2, "Linear": 1}
    top_types = [t for t, _ in top]
    assert top_types[2] == "Sequential"  # the 1x1 + 3x3 stage, depth 2
    assert sum(depth.get(t, 0) for t in top_types) + 1 == 22


def test_summary_table_lists_every_layer_and_totals():
    s = summary(lenet5(), (1, 32, 32))
    assert [r["output_shape"] for r in s.rows][:6] == [(6, 28, 28), (6, 28, 28), (6, 14, 14),
                                                       (16, 10, 10), (16, 10, 10), (16, 5, 5)]
    assert s.total_params == (5 * 5 * 1 * 6 + 6) + (5 * 5 * 6 * 16 + 16) + (400 * 120 + 120) \
        + (120 * 84 + 84) + (84 * 10 + 10)
    assert s.total_mult_adds == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 \
        + 84 * 10
    assert s.flops == 2 * s.total_mult_adds
    text = str(s)
    assert "61,706" in text and "MaxPool2d" in text


def test_summary_names_the_layer_that_rejects_its_input():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match=r"layer 1 \(Conv2d\).*3 channels"):
        summary(model, (1, 8, 8))


def test_we18_three_stacked_3x3_convolutions_see_7x7():
    model = nn.Sequential(*[nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU()) for _ in range(3)])
    assert receptive_field(model) == 7
    assert receptive_field([nn.Conv2d(1, 1, 3)] * 3) == 7
    assert receptive_field([3, 3, 3]) == 7
    # LeNet-5: 5 + (2-1)*1 + (5-1)*2 + (2-1)*2 = 16 pixels of the 32x32 input
    assert receptive_field(lenet5()) == 16


def test_receptive_field_matches_the_support_of_the_input_gradient():
    # a linear stack with positive weights: the input pixels that reach output (0, 0)
    # are exactly those with a non-zero gradient
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, dilation=2),
                          nn.AvgPool2d(2), nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 2))
    for p in model.parameters():
        p.data[...] = 1.0
    x = np.zeros((1, 1, 40, 40), np.float32)
    out = model(x)
    g = np.zeros_like(out)
    g[0, 0, 0, 0] = 1
    support = np.flatnonzero(model.backward(g)[0, 0].sum(axis=0))
    assert receptive_field(model) == support.max() - support.min() + 1


def test_receptive_field_refuses_parallel_paths():
    with pytest.raises(ValueError, match="Concat"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Concat(nn.Conv2d(1, 1, 1))))


def test_gradcheck_catches_a_wrong_backward_and_names_it():
    class Wrong(nn.Linear):
        def backward(self, g):
            gx = super().backward(g)
            self.bias.grad *= 1.01
            return gx

    x = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(GradcheckError, match="bias"):
        gradcheck(Wrong(4, 2), x)
    with pytest.raises(GradcheckError, match="input"):
        gradcheck(np.sin, (x,), backward=lambda g, x: g * np.cos(x) * 1.001)


def test_gradcheck_works_on_a_copy_in_float64():
    layer = nn.Conv2d(1, 2, 3)
    before = layer.state_dict()
    gradcheck(layer, np.random.default_rng(0).normal(size=(1, 1, 4, 4)))
    assert layer.weight.data.dtype == np.float32
    assert not layer.weight.grad.any()
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
