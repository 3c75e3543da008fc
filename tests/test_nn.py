"""Layers: backward against central differences, PyTorch parity, state_dict, bad input."""
import numpy as np
import pytest

from pyxconv import nn
from pyxconv.models import lenet5, small_resnet
from pyxconv.teach import gradcheck

RNG = np.random.default_rng(0)


def _x(*shape):
    return RNG.normal(size=shape)


def _away_from_kinks(x, margin=0.05):
    """Push values away from 0 so that ReLU-like kinks do not spoil central differences."""
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin, x)


def _distinct(shape):
    """Values with gaps much wider than the difference step, so max-pool switches are stable."""
    return RNG.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.1


LAYER_CASES = [
    ("conv1d", lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), lambda: _x(2, 2, 7)),
    ("conv1d_dilated", lambda: nn.Conv1d(2, 4, 2, dilation=2, groups=2), lambda: _x(2, 2, 6)),
    ("conv2d", lambda: nn.Conv2d(2, 3, 3, padding=1), lambda: _x(2, 2, 5, 4)),
    ("conv2d_strided_same", lambda: nn.Conv2d(3, 2, (3, 2), stride=(2, 1), padding=(1, 0)),
     lambda: _x(1, 3, 5, 5)),
    ("conv2d_same_no_bias", lambda: nn.Conv2d(2, 2, 3, padding="same", bias=False),
     lambda: _x(1, 2, 4, 4)),
    # C_in * kH * kW >= WEIGHT_GRAD_TRANSPOSED_MIN_ROWS: products taken as cols @ g^T
    ("conv2d_many_rows", lambda: nn.Conv2d(15, 2, 3, padding=1), lambda: _x(2, 15, 3, 4)),
    ("conv3d", lambda: nn.Conv3d(2, 2, 2), lambda: _x(1, 2, 3, 3, 3)),
    ("conv_transpose2d", lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1,
                                                     output_padding=1), lambda: _x(2, 2, 3, 3)),
    ("conv_transpose1d", lambda: nn.ConvTranspose1d(2, 3, 3, stride=2, padding=1,
                                                     output_padding=1), lambda: _x(2, 2, 4)),
    ("conv_transpose3d", lambda: nn.ConvTranspose3d(2, 2, 2, stride=2, dilation=1),
     lambda: _x(1, 2, 2, 2, 3)),
    ("linear", lambda: nn.Linear(5, 3), lambda: _x(4, 5)),
    ("linear_3d_input", lambda: nn.Linear(3, 2), lambda: _x(2, 4, 3)),
    ("flatten", lambda: nn.Flatten(), lambda: _x(2, 3, 2, 2)),
    ("batchnorm_train", lambda: nn.BatchNorm2d(3), lambda: _x(4, 3, 2, 3)),
    ("batchnorm_eval", lambda: _with_stats(nn.BatchNorm2d(3)).eval(), lambda: _x(2, 3, 2, 2)),
    ("relu", lambda: nn.ReLU(), lambda: _away_from_kinks(_x(3, 4))),
    ("leaky_relu", lambda: nn.LeakyReLU(0.2), lambda: _away_from_kinks(_x(3, 4))),
    ("prelu_shared", lambda: nn.PReLU(), lambda: _away_from_kinks(_x(2, 3, 4))),
    ("prelu_channels", lambda: nn.PReLU(3, init=0.1), lambda: _away_from_kinks(_x(2, 3, 2, 2))),
    ("elu", lambda: nn.ELU(0.7), lambda: _away_from_kinks(_x(3, 4))),
    ("sigmoid", lambda: nn.Sigmoid(), lambda: _x(3, 4) * 3),
    ("tanh", lambda: nn.Tanh(), lambda: _x(3, 4)),
    ("softplus", lambda: nn.Softplus(beta=2.0, threshold=3.0),
     lambda: _away_from_kinks(_x(3, 4) * 2) + 0.0),
    ("maxpool1d", lambda: nn.MaxPool1d(2), lambda: _distinct((2, 2, 6))),
    ("maxpool2d", lambda: nn.MaxPool2d(2), lambda: _distinct((2, 2, 4, 4))),
    ("maxpool2d_overlap_pad", lambda: nn.MaxPool2d(3, stride=2, padding=1),
     lambda: _distinct((1, 2, 5, 5))),
    ("maxpool3d", lambda: nn.MaxPool3d(2, stride=1, padding=1), lambda: _distinct((1, 2, 3, 3, 2))),
    ("maxpool2d_wide_pad", lambda: nn.MaxPool2d(3, stride=2, padding=2),
     lambda: _distinct((1, 1, 4, 5))),
    ("avgpool1d", lambda: nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False),
     lambda: _x(2, 2, 7)),
    ("avgpool1d_dilated", lambda: nn.AvgPool1d(2, stride=1, padding=2, dilation=3),
     lambda: _x(1, 2, 6)),
    ("avgpool2d_dilated_ceil", lambda: nn.AvgPool2d(2, 2, 1, True, dilation=(2, 1)),
     lambda: _x(1, 2, 5, 4)),
    ("avgpool3d", lambda: nn.AvgPool3d(2, stride=1, padding=1, divisor_override=3),
     lambda: _x(1, 2, 3, 2, 3)),
    ("global_avg_pool", lambda: nn.GlobalAvgPool2d(), lambda: _x(2, 3, 3, 2)),
    ("sequential_cnn", lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(),
                                             nn.Linear(8, 3)), lambda: _x(2, 1, 4, 4)),
    ("residual_identity", lambda: nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1),
                                                            nn.Tanh())), lambda: _x(2, 2, 3, 3)),
    ("residual_projection", lambda: nn.Residual(
        nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Tanh()),
        nn.Conv2d(2, 3, 1, stride=2)), lambda: _x(1, 2, 4, 4)),
    ("concat", lambda: nn.Concat(nn.Conv2d(2, 1, 1), nn.Conv2d(2, 2, 3, padding=1)),
     lambda: _x(1, 2, 3, 3)),
]


def _with_stats(bn):
    bn.running_mean[:] = RNG.normal(size=bn.num_features)
    bn.running_var[:] = RNG.uniform(0.5, 2, size=bn.num_features)
    bn.weight.data[:] = RNG.normal(size=bn.num_features)
    return bn


@pytest.mark.parametrize("per_thread", [1, None])  # every batch split; the default policy
def test_conv2d_layer_gives_the_same_bits_at_any_thread_count(monkeypatch, per_thread):
    import pyxconv
    from pyxconv import _threads, functional as F
    from pyxconv.functional import _conv

    if per_thread is not None:
        monkeypatch.setattr(_threads, "ELEMENTS_PER_THREAD", per_thread)
        _conv._plan_cache.cache_clear()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 6, 14, 14)).astype(np.float32)  # 11 M multiply-adds
    results = []
    for n in (1, 2, 3):
        nn.manual_seed(0)
        conv = nn.Conv2d(6, 16, 5, padding=1)
        with pyxconv.num_threads(n):
            out = conv(x)
            grad_x = conv.backward(np.cos(out))
        results.append((out, grad_x, conv.weight.grad, conv.bias.grad))
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_array_equal(a, b)
    out, grad_x, grad_w, grad_b = results[0]
    w, b = conv.weight.data, conv.bias.data
    np.testing.assert_allclose(out, F.conv2d(x, w, b, padding=1), rtol=1e-5, atol=1e-5)
    expected = F.conv2d_backward(np.cos(out), x, w, padding=1)
    for got, want in zip((grad_x, grad_w, grad_b), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name,make,inp", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_backward_matches_numerical_gradient(name, make, inp):
    layer = make()
    report = gradcheck(layer, inp(), atol=1e-6, rtol=1e-5)
    assert "input" in report
    assert set(report) - {"input"} == {n for n, _ in layer.named_parameters()}


def test_avg_pool_layers_backward_match_numerical_gradient():
    from pyxconv import functional as F
    if not hasattr(F, "avg_pool2d"):
        pytest.skip("functional.avg_pool2d not available yet")
    gradcheck(nn.AvgPool2d(2), _x(2, 2, 4, 4), atol=1e-6, rtol=1e-5)
    gradcheck(nn.AvgPool2d(3, stride=2, padding=1), _x(1, 2, 5, 5), atol=1e-6, rtol=1e-5)


def test_max_unpool_backward_matches_numerical_gradient():
    pool = nn.MaxPool2d(2)
    pool(_distinct((1, 2, 4, 4)))
    unpool = nn.MaxUnpool2d(2)
    indices = pool.indices
    gradcheck(lambda v: unpool(v, indices), (_x(1, 2, 2, 2),),
              backward=lambda g, v: unpool.backward(g), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("make,target", [
    (nn.SoftmaxCrossEntropy, lambda: np.array([0, 3, 1])),
    (nn.BCEWithLogits, lambda: RNG.integers(0, 2, (3, 4)).astype(np.float64)),
], ids=["softmax_ce", "bce"])
def test_loss_backward_matches_numerical_gradient(make, target):
    loss = make()
    gradcheck(loss, (_x(3, 4) * 3, target()), atol=1e-7, rtol=1e-5)


def test_softmax_cross_entropy_matches_plain_formula():
    z = _x(5, 4)
    y = np.array([0, 1, 2, 3, 1])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(5), y]))
    ce = nn.SoftmaxCrossEntropy()
    assert ce(z, y) == pytest.approx(expected, rel=1e-10)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(ce.backward(), (p - onehot) / 5, rtol=1e-10)


def test_bce_with_logits_is_stable_for_large_logits():
    bce = nn.BCEWithLogits()
    assert bce(np.array([1000.0, -1000.0]), np.array([1.0, 0.0])) == pytest.approx(0.0)
    assert bce(np.array([-1000.0]), np.array([1.0])) == pytest.approx(1000.0)


def test_activations_match_their_formulas():
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(nn.ReLU()(x), np.maximum(x, 0))
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(nn.ELU(2.0)(x), np.where(x > 0, x, 2.0 * (np.exp(x) - 1)))
    np.testing.assert_allclose(nn.Sigmoid()(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(nn.Tanh()(x), np.tanh(x))
    np.testing.assert_allclose(nn.Softplus()(x), np.log1p(np.exp(x)))
    np.testing.assert_allclose(nn.Softplus(threshold=1.0)(x),
                               np.where(x > 1, x, np.log1p(np.exp(x))))
    p = nn.PReLU(2, init=0.5)
    x2 = np.array([[[-2.0], [-4.0]]], np.float32)
    p.weight.data[:] = [0.5, 0.25]
    np.testing.assert_allclose(p(x2).ravel(), [-1.0, -1.0])


def test_relu_layer_reproduces_lecture_map_we27():
    # WE-27: ReLU zeroes the negative entries of the feature map
    x = np.array([[-2, 3, -1, 0], [4, -5, 6, -7], [0, 1, -2, 3], [-4, 5, 0, -6]], float)
    np.testing.assert_array_equal(nn.ReLU()(x), np.clip(x, 0, None))


def test_dropout_scales_kept_units_and_is_identity_in_eval():
    d = nn.Dropout(0.25, seed=1)
    x = np.ones((200, 50), np.float32)
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), y)
    d.eval()
    assert d(x) is x


def test_batchnorm_running_statistics_follow_pytorch_rule():
    bn = nn.BatchNorm2d(2, momentum=0.5, dtype=np.float64)
    x = _x(3, 2, 2, 2)
    bn(x)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean, 0.5 * mean)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * var)
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    expected = (x - bn.running_mean[:, None, None]) / np.sqrt(bn.running_var[:, None, None]
                                                              + 1e-5)
    np.testing.assert_allclose(bn(x), expected)


def test_parameters_state_dict_keys_and_shapes_follow_pytorch():
    model = lenet5()
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                           "9.weight", "9.bias", "11.weight", "11.bias"]
    assert state["0.weight"].shape == (6, 1, 5, 5)
    assert state["7.weight"].shape == (120, 400)
    assert sum(p.data.size for p in model.parameters()) == 61706
    keys = list(small_resnet().state_dict())
    assert "1.running_mean" in keys and "1.num_batches_tracked" in keys
    assert "3.body.0.weight" in keys and "5.shortcut.0.weight" in keys


def test_zero_grad_train_eval_propagate_to_children():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.Linear(2, 1)))
    model.eval()
    assert not model[1][0].training
    model.train()
    assert model[1][0].training
    model(np.ones((3, 2), np.float32))
    model.backward(np.ones((3, 1), np.float32))
    assert any(p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert not any(p.grad.any() for p in model.parameters())


def test_save_and_load_round_trip_through_npz(tmp_path):
    nn.manual_seed(1)
    a = small_resnet(width=4)
    a(RNG.normal(size=(2, 1, 8, 8)).astype(np.float32))  # moves the running statistics
    a.save(tmp_path / "w.npz")
    nn.manual_seed(2)
    b = small_resnet(width=4).load(tmp_path / "w.npz")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.pop("3.bias"), "missing keys \\['3.bias'\\]"),
    (lambda s: s.update({"12.weight": np.zeros(3)}), "unexpected keys \\['12.weight'\\]"),
    (lambda s: s.update({"7.weight": np.zeros((120, 401))}),
     r"7.weight: expected shape \(120, 400\), got \(120, 401\)"),
], ids=["missing", "extra", "misshaped"])
def test_load_state_dict_with_bad_keys_raises_and_changes_nothing(edit, match):
    model = lenet5()
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}
    edit(state)
    with pytest.raises(ValueError, match=match):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("layer,x,match", [
    (nn.Conv2d(3, 4, 3), np.zeros((1, 2, 5, 5), np.float32),
     r"Conv2d expected input of layout \(N, C, H, W\) with 3 channels, got shape \(1, 2, 5, 5\)"),
    (nn.Conv2d(3, 4, 3), np.zeros((3, 5, 5), np.float32), r"got shape \(3, 5, 5\)"),
    (nn.Conv1d(1, 1, 3), np.zeros((1, 1, 4, 4), np.float32), "Conv1d expected"),
    (nn.Linear(4, 2), np.zeros((3, 5), np.float32), r"Linear expected .*\(N, 4\).*\(3, 5\)"),
    (nn.BatchNorm2d(3), np.zeros((2, 4, 2, 2), np.float32), "BatchNorm2d expected .*3 channels"),
    (nn.MaxPool2d(2), np.zeros((2, 4), np.float32), "MaxPool2d expected"),
    (nn.Conv2d(1, 1, 5), np.zeros((1, 1, 3, 3), np.float32), "kernel does not fit"),
], ids=["conv2d_channels", "conv2d_ndim", "conv1d_ndim", "linear", "bn", "pool", "conv_small"])
def test_bad_input_shape_raises_clearly(layer, x, match):
    with pytest.raises(ValueError, match=match):
        layer(x)


def test_failed_forward_leaves_previous_cache_usable():
    conv = nn.Conv2d(2, 3, 3)
    x = _x(1, 2, 5, 5).astype(np.float32)
    conv(x)
    with pytest.raises(ValueError):
        conv(np.zeros((1, 3, 5, 5), np.float32))
    conv.backward(np.ones((1, 3, 3, 3), np.float32))  # still the cached good input
    assert conv._x is x


def test_residual_shape_mismatch_names_both_shapes():
    block = nn.Residual(nn.Conv2d(2, 3, 1))
    with pytest.raises(ValueError, match=r"body output shape \(1, 3, 2, 2\).*\(1, 2, 2, 2\)"):
        block(np.zeros((1, 2, 2, 2), np.float32))


def test_init_functions_have_the_documented_spread():
    w = nn.Parameter(np.empty((200, 100, 3, 3)))
    nn.init.kaiming_normal_(w, rng=0)
    assert w.data.std() == pytest.approx(np.sqrt(2 / 900), rel=0.02)
    nn.init.kaiming_uniform_(w, rng=0)
    assert np.abs(w.data).max() <= np.sqrt(6 / 900)
    assert w.data.std() == pytest.approx(np.sqrt(2 / 900), rel=0.02)
    nn.init.xavier_uniform_(w, rng=0)
    assert w.data.std() == pytest.approx(np.sqrt(2 / (900 + 1800)), rel=0.02)
    nn.init.xavier_normal_(w, rng=0)
    assert w.data.std() == pytest.approx(np.sqrt(2 / (900 + 1800)), rel=0.02)
    lin = nn.Linear(400, 120)
    assert np.abs(lin.weight.data).max() <= 1 / 20 and np.abs(lin.bias.data).max() <= 1 / 20


# --------------------------------------------------------------------------- PyTorch parity

def _torch_lenet(torch):
    t = torch.nn
    return t.Sequential(t.Conv2d(1, 6, 5), t.ReLU(), t.MaxPool2d(2), t.Conv2d(6, 16, 5),
                        t.ReLU(), t.MaxPool2d(2), t.Flatten(), t.Linear(400, 120), t.ReLU(),
                        t.Linear(120, 84), t.ReLU(), t.Linear(84, 10))


def test_lenet_matches_pytorch_outputs_and_gradients():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = _torch_lenet(torch).double()
    model = lenet5().astype(np.float64)
    model.load_state_dict(tmodel.state_dict())
    x = RNG.normal(size=(4, 1, 32, 32))
    y = np.array([1, 0, 9, 3])
    ce = nn.SoftmaxCrossEntropy()
    loss = ce(model(x), y)
    gx = model.backward(ce.backward())
    xt = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tmodel(xt), torch.tensor(y))
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-10)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    tgrads = {k: p.grad.numpy() for k, p in tmodel.named_parameters()}
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[k], rtol=1e-8, atol=1e-12, err_msg=k)


def test_resnet_with_batchnorm_matches_pytorch_in_train_and_eval():
    torch = pytest.importorskip("torch")
    t = torch.nn

    class Residual(t.Module):
        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body = body
            if shortcut is not None:
                self.shortcut = shortcut

        def forward(self, x):
            s = self.shortcut(x) if hasattr(self, "shortcut") else x
            return self.body(x) + s

    def block(ci, co, stride):
        body = t.Sequential(t.Conv2d(ci, co, 3, stride, 1, bias=False), t.BatchNorm2d(co),
                            t.ReLU(), t.Conv2d(co, co, 3, 1, 1, bias=False), t.BatchNorm2d(co))
        sc = None
        if stride != 1 or ci != co:
            sc = t.Sequential(t.Conv2d(ci, co, 1, stride, bias=False), t.BatchNorm2d(co))
        return Residual(body, sc)

    w = 4
    tmodel = t.Sequential(t.Conv2d(1, w, 3, padding=1, bias=False), t.BatchNorm2d(w), t.ReLU(),
                          block(w, w, 1), t.ReLU(), block(w, 2 * w, 2), t.ReLU(),
                          block(2 * w, 4 * w, 2), t.ReLU(), t.AdaptiveAvgPool2d(1), t.Flatten(),
                          t.Linear(4 * w, 10)).double()
    model = small_resnet(width=w).astype(np.float64)
    model.load_state_dict(tmodel.state_dict())
    assert list(model.state_dict()) == list(tmodel.state_dict())
    x = RNG.normal(size=(3, 1, 8, 8))
    g = RNG.normal(size=(3, 10))
    out = model(x)
    gx = model.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    tout = tmodel(xt)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-7, atol=1e-10)
    tgrads = dict(tmodel.named_parameters())
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[k].grad.numpy(), rtol=1e-7, atol=1e-10,
                                   err_msg=k)
    tstate = tmodel.state_dict()
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(v, tstate[k].numpy(), rtol=1e-10, err_msg=k)
    model.eval()
    tmodel.eval()
    np.testing.assert_allclose(model(x), tmodel(xt).detach().numpy(), rtol=1e-8, atol=1e-10)


def test_other_layers_match_pytorch():
    torch = pytest.importorskip("torch")
    t = torch.nn
    pairs = [
        (nn.Conv1d(3, 4, 3, stride=2, padding=1, groups=1), t.Conv1d(3, 4, 3, 2, 1), (2, 3, 9)),
        (nn.Conv3d(2, 2, 2, padding=1), t.Conv3d(2, 2, 2, padding=1), (1, 2, 3, 3, 3)),
        (nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),
         t.ConvTranspose2d(2, 3, 3, 2, 1, 1), (2, 2, 3, 3)),
        (nn.ConvTranspose1d(2, 4, 3, stride=2, padding=1, output_padding=1),
         t.ConvTranspose1d(2, 4, 3, 2, 1, 1), (2, 2, 5)),
        (nn.ConvTranspose3d(2, 2, 3, stride=2, padding=1, dilation=1),
         t.ConvTranspose3d(2, 2, 3, 2, 1), (1, 2, 3, 2, 3)),
        (nn.PReLU(3), t.PReLU(3), (2, 3, 4)),
        (nn.ELU(0.5), t.ELU(0.5), (3, 5)),
        (nn.Softplus(2.0, 1.0), t.Softplus(2.0, 1.0), (3, 5)),
        (nn.LeakyReLU(0.3), t.LeakyReLU(0.3), (3, 5)),
    ]
    for ours, theirs, shape in pairs:
        theirs = theirs.double()
        ours.astype(np.float64)
        ours.load_state_dict(theirs.state_dict())
        x = RNG.normal(size=shape)
        xt = torch.tensor(x, requires_grad=True)
        tout = theirs(xt)
        g = RNG.normal(size=tout.shape)
        tout.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        for k, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad, dict(theirs.named_parameters())[k].grad.numpy(),
                                       rtol=1e-10, atol=1e-12)


def test_non_array_input_raises_type_error():
    with pytest.raises(TypeError, match="Conv2d expects an ndarray, got list"):
        nn.Conv2d(1, 1, 1)([[1.0]])
    with pytest.raises(TypeError, match="Linear expects an ndarray"):
        nn.Linear(1, 1)([1.0])


def test_concat_rejects_branches_with_different_sizes():
    from pyxconv.teach import summary
    block = nn.Concat(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="differ outside dim 1"):
        summary(block, (1, 5, 5))


def test_conv2d_cached_columns_and_functional_paths_agree(monkeypatch):
    from pyxconv.nn import _layers

    x = _x(3, 2, 7, 6)
    g = _x(3, 4, 4, 2)
    results = []
    for limit in (_layers.COLUMN_CACHE_BYTES, 0):
        monkeypatch.setattr(_layers, "COLUMN_CACHE_BYTES", limit)
        nn.manual_seed(3)
        conv = nn.Conv2d(2, 4, 3, stride=(2, 2), padding=1, dilation=(1, 2)).astype(np.float64)
        out = conv(x)
        assert (conv._cols is not None) == (limit > 0)
        results.append((out, conv.backward(g), conv.weight.grad.copy(), conv.bias.grad.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_grouped_conv2d_backward_matches_numerical_gradient():
    gradcheck(nn.Conv2d(4, 2, 3, groups=2, padding=1), _x(2, 4, 4, 4), atol=1e-6, rtol=1e-5)


def test_conv2d_backward_rejects_a_wrong_gradient_shape():
    conv = nn.Conv2d(1, 2, 3)
    conv(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"grad_out of shape \(1, 2, 3, 3\)"):
        conv.backward(np.zeros((1, 2, 4, 4), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_relu_follows_torch_rules_for_nan_zero_and_masked_gradients(dtype):
    relu = nn.ReLU()
    x = np.array([-1.0, 0.0, -0.0, 2.0, np.nan, -np.inf, np.inf], dtype)
    out = relu(x)
    computed = np.float32 if dtype == np.float16 else dtype  # half runs in float32
    np.testing.assert_array_equal(out, np.array([0, 0, 0, 2, np.nan, 0, np.inf], computed))
    # 0 if x < 0 else x, as torch.relu: -0.0 is kept
    assert out.dtype == computed and list(np.signbit(out[:3])) == [False, False, True]
    grad = np.array([-3.0, -np.inf, np.nan, 5.0, 7.0, -1.0, 2.0], dtype)
    grad_in = relu.backward(grad)
    # a select: +0 where out <= 0, whatever the gradient; the gradient where out is NaN
    np.testing.assert_array_equal(grad_in, np.array([0, 0, 0, 5, 7, 0, 2], computed))
    assert not np.signbit(grad_in).any()


def test_relu_matches_a_plain_formula_on_threads_and_pytorch():
    import pyxconv

    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 6, 28, 28)).astype(np.float32)  # above the 1-thread grain
    g = rng.standard_normal(x.shape).astype(np.float32)
    expected_out = np.where(x < 0, np.float32(0), x)
    expected_grad = np.where(expected_out <= 0, np.float32(0), g)
    for n in (1, 2, 3):
        relu = nn.ReLU()
        with pyxconv.num_threads(n):
            np.testing.assert_array_equal(relu(x[:, :, ::2]), expected_out[:, :, ::2])
            np.testing.assert_array_equal(relu.backward(g[:, :, ::2]), expected_grad[:, :, ::2])
    torch = pytest.importorskip("torch")
    x[0, 0, 0, :3] = [-0.0, 0.0, np.nan]
    tx = torch.from_numpy(x).requires_grad_()
    torch.relu(tx).backward(torch.from_numpy(g))
    relu = nn.ReLU()
    for ours, theirs in ((relu(x), torch.relu(tx).detach().numpy()),
                         (relu.backward(g), tx.grad.numpy())):
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))  # -0.0 too


def test_relu_keeps_the_shape_of_a_0d_array():
    relu = nn.ReLU()
    out = relu(np.array(-2.0))
    assert out.shape == () and out == 0
    assert relu.backward(np.array(3.0)).shape == ()


def test_relu_backward_rejects_a_gradient_of_another_shape():
    relu = nn.ReLU()
    relu(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 3\)"):
        relu.backward(np.ones((3, 2), np.float32))


def test_conv2d_refuses_a_weight_replaced_by_one_of_another_shape():
    conv = nn.Conv2d(4, 3, 3)
    out = conv(np.ones((2, 4, 5, 5), np.float32))
    conv.weight.data = np.ones((3, 1, 1, 1), np.float32)  # K = 1 instead of 36
    with pytest.raises(ValueError, match=r"weight \(3, 1, 1, 1\).*expected \(3, 4, 3, 3\)"):
        conv.backward(np.ones_like(out))
    with pytest.raises(ValueError, match="another shape"):
        conv(np.ones((2, 4, 5, 5), np.float32))


def test_conv2d_takes_a_float64_gradient_for_a_float32_layer():
    conv = nn.Conv2d(2, 3, 3)
    x = RNG.normal(size=(2, 2, 5, 5)).astype(np.float32)
    out = conv(x)
    g = RNG.normal(size=out.shape)
    grad_x = conv.backward(g)
    assert grad_x.dtype == np.float32
    expected = conv.backward(g.astype(np.float32))
    np.testing.assert_array_equal(grad_x, expected)


