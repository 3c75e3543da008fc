"""pyxconv.onnx: export -> onnxruntime, export -> load, and torch.onnx.export -> load."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pyxconv import models, nn  # noqa: E402
from pyxconv import onnx as pyxconv_onnx  # noqa: E402


def _with_stats(model, seed=0):
    """Random running statistics and affine parameters for every BatchNorm, so eval-form
    BatchNorm is not the identity."""
    rng = np.random.default_rng(seed)
    for _, m in model.named_modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean[:] = rng.standard_normal(c)
            m.running_var[:] = rng.uniform(0.5, 2.0, c)
            m.weight.data[:] = rng.uniform(0.5, 1.5, c)
            m.bias.data[:] = rng.standard_normal(c)
    return model


MODELS = [("lenet5", lambda: models.lenet5(), (1, 1, 32, 32)),
          ("small_resnet", lambda: _with_stats(models.small_resnet()), (1, 1, 28, 28)),
          ("inception", lambda: nn.Sequential(models.inception(8, 4, 4, 6, 2, 3, 5)),
           (1, 8, 12, 12)),
          ("mlp_batchnorm1d", lambda: _with_stats(nn.Sequential(
              nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))),
           (1, 3, 4)),
          ("conv1d_batchnorm1d", lambda: _with_stats(nn.Sequential(
              nn.Conv1d(2, 4, 3, padding=1), nn.BatchNorm1d(4), nn.Tanh(), nn.Flatten(),
              nn.Linear(4 * 7, 2))), (1, 2, 7))]


def _relative_error(got, expected):
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("name, make, shape", MODELS, ids=[m[0] for m in MODELS])
def test_export_runs_in_onnxruntime_and_loads_back_with_a_dynamic_batch(tmp_path, name, make,
                                                                        shape):
    rng = np.random.default_rng(0)
    model = make()
    model.eval()
    path = tmp_path / f"{name}.onnx"
    pyxconv_onnx.export(model, rng.standard_normal(shape).astype(np.float32), path)
    onnx.checker.check_model(onnx.load(str(path)))
    x = rng.standard_normal((3,) + shape[1:]).astype(np.float32)  # exported at N=1
    expected = model(x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert _relative_error(got, expected) < 1e-4
    loaded = pyxconv_onnx.load(path)
    loaded.eval()
    assert _relative_error(loaded(x), expected) < 1e-4


def _torch_net(torch):
    """ConvTranspose2d, ceil-mode max pooling, average pooling, LeakyReLU, Sigmoid, Softmax."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.LeakyReLU(0.1),
        torch.nn.MaxPool2d(2, ceil_mode=True), torch.nn.ConvTranspose2d(4, 3, 2, stride=2),
        torch.nn.AvgPool2d(2), torch.nn.Sigmoid(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 5 * 5, 5), torch.nn.Softmax(dim=1))
    with torch.no_grad():
        net(torch.randn(4, 1, 9, 9))  # running statistics for the BatchNorm
    return net.eval()


def test_a_torch_export_loads_and_agrees(tmp_path):
    torch = pytest.importorskip("torch")
    net = _torch_net(torch)
    x = torch.randn(2, 1, 9, 9)
    path = tmp_path / "torch.onnx"
    torch.onnx.export(net, x, str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    loaded = pyxconv_onnx.load(path)
    loaded.eval()
    x3 = torch.randn(3, 1, 9, 9)
    with torch.no_grad():
        expected = net(x3).numpy()
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"ConvTranspose", "MaxPool", "AveragePool", "LeakyRelu", "Sigmoid",
            "Softmax"} <= ops
    assert any(a.name == "ceil_mode" and a.i == 1 for n in onnx.load(str(path)).graph.node
               if n.op_type == "MaxPool" for a in n.attribute)
    assert _relative_error(loaded(x3.numpy()), expected) < 1e-4


def test_the_torch_net_rebuilt_in_pyxconv_exports_to_onnxruntime(tmp_path):
    torch = pytest.importorskip("torch")
    net = _torch_net(torch)
    # the same layers in pyxconv (no Softmax layer: pyxconv applies it in the loss)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.1),
        nn.MaxPool2d(2, ceil_mode=True), nn.ConvTranspose2d(4, 3, 2, stride=2),
        nn.AvgPool2d(2), nn.Sigmoid(), nn.Flatten(), nn.Linear(3 * 5 * 5, 5))
    model.load_state_dict({k: v.numpy() for k, v in net.state_dict().items()})
    model.eval()
    x = torch.randn(3, 1, 9, 9)
    with torch.no_grad():
        expected = net[:-1](x).numpy()
    path = tmp_path / "net.onnx"
    pyxconv_onnx.export(model, x.numpy()[:1], path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert _relative_error(got, expected) < 1e-4
    softmax = np.exp(got) / np.exp(got).sum(axis=1, keepdims=True)
    with torch.no_grad():
        assert _relative_error(softmax, net(x).numpy()) < 1e-4


def test_batchnorm1d_loads_back_as_a_trainable_chain(tmp_path):
    model = MODELS[3][1]()
    model.eval()
    path = tmp_path / "mlp.onnx"
    pyxconv_onnx.export(model, np.zeros((1, 3, 4), np.float32), path)
    loaded = pyxconv_onnx.load(path)
    assert isinstance(loaded, nn.Sequential)
    assert [type(m).__name__ for m in loaded.layers] == [
        "Flatten", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    np.testing.assert_allclose(loaded.layers[2].running_var, model.layers[2].running_var)


def _torch_basic_block(torch, ci, co, stride):
    """torchvision's ResNet BasicBlock (conv-BN-ReLU-conv-BN + strided 1x1 conv-BN
    downsample, ReLU after the sum), with running statistics from a few training steps."""
    t = torch.nn

    class BasicBlock(t.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = t.Conv2d(ci, co, 3, stride, 1, bias=False)
            self.bn1 = t.BatchNorm2d(co)
            self.relu = t.ReLU()
            self.conv2 = t.Conv2d(co, co, 3, 1, 1, bias=False)
            self.bn2 = t.BatchNorm2d(co)
            self.downsample = t.Sequential(t.Conv2d(ci, co, 1, stride, bias=False),
                                           t.BatchNorm2d(co))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + self.downsample(x))

    torch.manual_seed(0)
    block = BasicBlock()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, t.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
        for _ in range(3):
            block(torch.randn(4, ci, 8, 8) * 2 + 0.5)
    return block.eval()


@pytest.mark.parametrize("fold", [True, False], ids=["bn_folded", "bn_nodes"])
def test_a_torch_resnet_block_with_a_strided_downsample_loads_and_agrees(tmp_path, fold):
    torch = pytest.importorskip("torch")
    block = _torch_basic_block(torch, 4, 8, 2)
    path = tmp_path / "block.onnx"
    torch.onnx.export(block, torch.randn(2, 4, 8, 8), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "N"}},
                      do_constant_folding=fold)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Conv", "Add", "Relu"} <= ops
    assert ("BatchNormalization" in ops) != fold  # torch folds eval BN into the convs
    loaded = pyxconv_onnx.load(path)
    x = torch.randn(3, 4, 8, 8)
    with torch.no_grad():
        expected = block(x).numpy()
    got = loaded(x.numpy())
    assert got.shape == (3, 8, 4, 4)
    assert _relative_error(got, expected) < 1e-4


def test_an_equivalent_pyxconv_resnet_block_exports_to_onnxruntime(tmp_path):
    torch = pytest.importorskip("torch")
    block = _torch_basic_block(torch, 4, 8, 2)
    model = nn.Sequential(models.resnet_block(4, 8, stride=2), nn.ReLU())
    names = {"conv1": "0.body.0", "bn1": "0.body.1", "conv2": "0.body.3", "bn2": "0.body.4",
             "downsample.0": "0.shortcut.0", "downsample.1": "0.shortcut.1"}
    state = {}
    for key, value in block.state_dict().items():
        prefix, leaf = key.rsplit(".", 1)
        state[f"{names[prefix]}.{leaf}"] = value.numpy()
    model.load_state_dict(state)
    model.eval()
    x = torch.randn(3, 4, 8, 8)
    with torch.no_grad():
        expected = block(x).numpy()
    assert _relative_error(model(x.numpy()), expected) < 1e-5  # the same network
    path = tmp_path / "block.onnx"
    proto = pyxconv_onnx.export(model, x.numpy()[:1], path)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("BatchNormalization") == 3 and ops.count("Add") == 1
    convs = [{a.name: list(a.ints) for a in n.attribute} for n in proto.graph.node
             if n.op_type == "Conv"]
    assert [c["kernel_shape"] for c in convs] == [[3, 3], [3, 3], [1, 1]]
    assert convs[2]["strides"] == [2, 2]  # the strided 1x1 downsample
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert _relative_error(got, expected) < 1e-4
    assert _relative_error(pyxconv_onnx.load(path)(x.numpy()), expected) < 1e-4
